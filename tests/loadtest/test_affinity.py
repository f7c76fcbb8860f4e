"""Pinning generators and the stack to separate CPUs (loadtest/affinity.py, overload --generator-cpus)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.affinity import other_cpus, parse_cpus
from loadtest.overload import report_stem


def test_cpu_lists_parse_like_taskset():
    assert parse_cpus("1") == {1}
    assert parse_cpus("0, 2-3") == {0, 2, 3}
    for bad in (",", "1-", "3-1", "x"):
        with pytest.raises(ValueError):
            parse_cpus(bad)


def test_the_server_gets_the_cpus_the_generators_do_not():
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("needs two CPUs")
    taken = {min(allowed)}
    assert other_cpus(taken) == allowed - taken
    with pytest.raises(ValueError, match="leave none"):
        other_cpus(allowed)
    with pytest.raises(ValueError, match="not available"):
        other_cpus({max(allowed) + 1000})


def test_pinning_reaches_threads_already_running_and_children():
    """In a child process, so this test process keeps its CPUs."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("with one CPU, pinning to it changes nothing")
    code = """
import os, subprocess, sys, threading
from loadtest.affinity import pin_process
cpu = min(os.sched_getaffinity(0))
started = threading.Event(); stop = threading.Event(); seen = []
def worker():
    started.set(); stop.wait(); seen.append(os.sched_getaffinity(0))
thread = threading.Thread(target=worker); thread.start(); started.wait()
pin_process({cpu})
stop.set(); thread.join()
child = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                       capture_output=True, text=True, check=True).stdout.strip()
print(sorted(seen[0]), child, [cpu])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    thread_cpus, child_cpus, expected = out[0], out[1], out[2]
    assert thread_cpus == child_cpus == expected


def test_pinned_runs_are_written_apart_from_shared_ones():
    assert report_stem({"voice_share": 0.0, "generator_cpus": ""}) == "overload"
    assert report_stem({"voice_share": 0.0, "generator_cpus": "1"}) == "overload_pinned"
    assert report_stem({"voice_share": 0.1, "generator_cpus": "1"}) == "mixed_overload_pinned"
