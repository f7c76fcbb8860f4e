"""loadtest.cpu_share: CPU per part of the stack, from /proc and the reaped children's usage."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from loadtest.cpu_share import ROLES, cores_used, snapshot

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def _burn_here(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_reaped_child_counts_as_generator_and_this_process_as_gateway():
    before = snapshot()
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.6)], check=True)
    _burn_here(0.3)
    after = snapshot()

    cores = cores_used(before, after)
    assert set(cores) == set(ROLES)
    elapsed = after["at"] - before["at"]
    tick = 1 / os.sysconf("SC_CLK_TCK")  # /proc counts CPU time in clock ticks: user and system each round down
    assert 0.55 <= cores["generators"] * elapsed <= 1.2  # the child's 0.6 s, plus its interpreter start
    assert 0.3 - 2 * tick <= cores["gateway"] * elapsed <= 0.8  # (a session's Triton, if running, is counted apart)


def test_a_running_descendant_is_counted_by_its_command_line():
    # multiprocessing's "--multiprocessing-fork" argument is how the Whisper workers are recognised
    worker = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=10), "--multiprocessing-fork"])
    try:
        time.sleep(1.0)  # past the interpreter's start
        before = snapshot()
        time.sleep(1.0)
        after = snapshot()
    finally:
        worker.kill()
        worker.wait()
    assert cores_used(before, after)["whisper"] > 0.2  # busy all the time, on a shared 2-core box
