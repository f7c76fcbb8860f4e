"""Running Whisper below the text path in CPU priority, including under autogroup scheduling.

Linux with `kernel.sched_autogroup_enabled=1` (the default on most distributions) first shares
the CPU between sessions, and a nice value only counts against processes of the same session.
Triton runs in its own session, so a Whisper worker at nice +10 in the gateway's session still
got as much CPU as all of Triton: with 10% of calls as voice clips, Triton's executions took
1.6 s instead of 8 ms (2 cores). A worker therefore starts its own session and gives that
session's autogroup the same nice value.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
OWN_AUTOGROUP = Path("/proc/self/autogroup")


def lower_priority(niceness: int) -> None:
    """Adds niceness (0-19) to the nice value of this process's threads and gives the process an
    autogroup of its own at that nice value; 19 also selects SCHED_IDLE (runs only on otherwise
    idle CPU). Threads started later inherit it."""
    if not niceness:
        return
    # On Linux a nice value belongs to a thread, and threads already started (numpy's, from the
    # imports that unpickled this process's arguments) keep theirs: set it on every thread.
    target = os.getpriority(os.PRIO_PROCESS, 0) + niceness
    for thread_id in _thread_ids():
        try:
            os.setpriority(os.PRIO_PROCESS, thread_id, target)
            if niceness >= 19 and hasattr(os, "SCHED_IDLE"):
                os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    if autogroups_enabled():
        _own_autogroup(niceness)


def _thread_ids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: only this thread
        return [0]


def autogroups_enabled() -> bool:
    try:
        return AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


def autogroup_nice() -> int | None:
    """This process's autogroup nice value, None where there are no autogroups."""
    try:  # "/autogroup-255 nice 10"
        return int(OWN_AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _own_autogroup(niceness: int) -> None:
    try:
        os.setsid()  # a new session gets a new autogroup
        OWN_AUTOGROUP.write_text(f"{niceness}\n")
    except OSError as err:  # e.g. a process group leader, or a kernel that refuses: plain nice still applies
        logger.warning("could not lower the autogroup priority of pid %d: %s", os.getpid(), err)
