"""Combining open-loop generators' results and writing the overload report."""

from __future__ import annotations

import json

import pytest

from loadtest.open_loop import CodeStats, merge, summarise
from loadtest.overload import OverloadReport, write_report


def _part(rate, ok_ms, rejected_ms, sending_s=2.0):
    latencies = {"OK": [value / 1e3 for value in ok_ms]}
    if rejected_ms:
        latencies["RESOURCE_EXHAUSTED"] = [value / 1e3 for value in rejected_ms]
    return summarise(rate, len(ok_ms) + len(rejected_ms), sending_s, latencies)


def test_merge_adds_generators_and_takes_percentiles_over_all_calls():
    step = merge([_part(100, [10.0] * 150, [1.0] * 50), _part(100, [30.0] * 50, [3.0] * 150, sending_s=2.5)])

    assert step.target_rate == 200
    assert step.calls == 400
    assert step.offered_rate == pytest.approx(400 / 2.5)
    assert step.codes["OK"].count == 200 and step.codes["OK"].per_s == pytest.approx(80)
    assert step.codes["OK"].p50_ms == 10.0 and step.codes["OK"].max_ms == 30.0
    assert step.codes["RESOURCE_EXHAUSTED"].p50_ms == 3.0


def test_report_has_one_row_per_step_and_names_unexpected_codes(tmp_path):
    quiet = merge([_part(100, [12.0] * 200, [])])
    busy = merge([_part(800, [300.0] * 700, [1.0] * 900)])
    busy.codes["CANCELLED"] = CodeStats(count=3, per_s=1.5, p50_ms=5.0, p99_ms=9.0, max_ms=9.0)
    report = OverloadReport(command="python -m loadtest.overload", started="now", cpus=2, python="3.11",
                            generators=1, step_s=2.0, steps=[quiet, busy])

    write_report(report, tmp_path)

    table = [line for line in (tmp_path / "overload.md").read_text().splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header + 2 steps
    assert table[1].startswith("| 100 | 100 | 100 | 12 / 12 | 0 | - |")
    assert table[1].endswith("| - |")  # no send lag recorded in these parts
    assert table[2].startswith("| 800 | 800 | 350 | 300 / 300 | 450 | 1 / 1 |")
    assert table[2].endswith("| 0 | 0 | - |")
    assert "CANCELLED" in (tmp_path / "overload.md").read_text()
    assert json.loads((tmp_path / "overload.json").read_text())["steps"][1]["calls"] == 1600
    assert (tmp_path / "overload.png").stat().st_size > 0


def test_voice_calls_are_merged_and_reported_apart_from_text(tmp_path):
    from loadtest.open_loop import call_kind

    kinds = [call_kind(index, 0.1) for index in range(200)]
    assert kinds.count("voice") == 20 and "voice" not in kinds[:9]  # spread, not bunched at the start
    parts = []
    for voice_ok in ([2000.0] * 5, [3000.0] * 5):
        part = _part(50, [20.0] * 90, [])
        part["calls"] = 100  # 90 text calls and 10 voice calls
        part["voice_latencies_ms"] = {"OK": voice_ok, "RESOURCE_EXHAUSTED": [2.0] * 5}
        part["voice_messages"] = {"RESOURCE_EXHAUSTED": "overloaded: speech recognition queue is full"}
        parts.append(part)
    step = merge(parts)
    assert step.codes["OK"].count == 180 and set(step.codes) == {"OK"}
    assert step.voice_codes["OK"].count == 10 and step.voice_codes["OK"].max_ms == 3000.0
    assert step.voice_codes["RESOURCE_EXHAUSTED"].first_message.startswith("overloaded: speech")

    report = OverloadReport(command="python -m loadtest.overload --voice-share 0.1", started="now", cpus=2,
                            python="3.11", generators=2, step_s=2.0, voice_share=0.1, steps=[step])
    write_report(report, tmp_path)
    text = (tmp_path / "mixed_overload.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 100 |")]
    assert len(rows) == 2  # one text row, one voice row
    assert rows[0].startswith("| 100 | 100 | 90 | 20 / 20 | 0 |")
    assert rows[1].startswith("| 100 | 100 | 5 | 2500 / 3000 | 5 | 2 / 2 |")
    assert "10% of calls ClassifyVoice" in text
    assert (tmp_path / "mixed_overload.png").stat().st_size > 0 and not (tmp_path / "overload.md").exists()

