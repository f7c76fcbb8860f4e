"""experiments.grpc_rejection_cost.rejection_cost: a real gRPC server turns every flood call away, and the report shows it."""

from __future__ import annotations

import os
import shutil

import pytest

from experiments.grpc_rejection_cost.rejection_cost import measure, write_report


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_every_call_past_the_held_one_is_answered_and_costs_server_cpu(tmp_path):
    rows = measure("sync", [200.0], seconds=1.0, work_dir=tmp_path)

    (row,) = rows
    assert row["server"] == "sync" and row["calls"] == 200
    assert row["answered"] == 200  # each got a response (RESOURCE_EXHAUSTED: the one slot is held)
    assert row["server_cores"] > 0 and row["cpu_us_per_call"] > 0
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]

    write_report({"command": "python -m experiments.grpc_rejection_cost.rejection_cost", "started": "now", "cpus": 2, "grpcio": "x",
                  "seconds": 1.0, "rows": rows}, tmp_path)
    table = [line for line in (tmp_path / "rejection_cost.md").read_text().splitlines() if line.startswith("| sync")]
    assert len(table) == 1 and table[0].startswith("| sync | 200 | 200 of 200 |")
    assert (tmp_path / "rejection_cost.png").stat().st_size > 0
