"""Combining open-loop generators' results and writing the overload report."""

from __future__ import annotations

import json

import pytest

from loadtest.open_loop import merge, summarise
from loadtest.overload import write_report


def _part(rate, ok_ms, rejected_ms, sending_s=2.0):
    latencies = {"OK": [value / 1e3 for value in ok_ms]}
    if rejected_ms:
        latencies["RESOURCE_EXHAUSTED"] = [value / 1e3 for value in rejected_ms]
    return summarise(rate, len(ok_ms) + len(rejected_ms), sending_s, latencies)


def test_merge_adds_generators_and_takes_percentiles_over_all_calls():
    step = merge([_part(100, [10.0] * 150, [1.0] * 50), _part(100, [30.0] * 50, [3.0] * 150, sending_s=2.5)])

    assert step["target_rate"] == 200
    assert step["calls"] == 400
    assert step["offered_rate"] == pytest.approx(400 / 2.5)
    assert step["codes"]["OK"]["count"] == 200 and step["codes"]["OK"]["per_s"] == pytest.approx(80)
    assert step["codes"]["OK"]["p50_ms"] == 10.0 and step["codes"]["OK"]["max_ms"] == 30.0
    assert step["codes"]["RESOURCE_EXHAUSTED"]["p50_ms"] == 3.0


def test_report_has_one_row_per_step_and_names_unexpected_codes(tmp_path):
    quiet = merge([_part(100, [12.0] * 200, [])])
    busy = merge([_part(800, [300.0] * 700, [1.0] * 900)])
    busy["codes"]["CANCELLED"] = {"count": 3, "per_s": 1.5, "p50_ms": 5.0, "p99_ms": 9.0, "max_ms": 9.0}
    report = {"command": "python -m loadtest.overload", "started": "now", "cpus": 2, "python": "3.11",
              "generators": 1, "step_s": 2.0, "steps": [quiet, busy]}

    write_report(report, tmp_path)

    table = [line for line in (tmp_path / "overload.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header + 2 steps
    assert table[1].startswith("| 100 | 100 | 100 | 12 / 12 | 0 | - |")
    assert table[1].endswith("| - |")  # no send lag recorded in these parts
    assert table[2].startswith("| 800 | 800 | 350 | 300 / 300 | 450 | 1 / 1 |")
    assert "CANCELLED" in (tmp_path / "overload.md").read_text()
    assert json.loads((tmp_path / "overload.json").read_text())["steps"][1]["calls"] == 1600
    assert (tmp_path / "overload.png").stat().st_size > 0
