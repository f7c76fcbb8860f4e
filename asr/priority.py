"""Running Whisper below the text path in CPU priority, including under autogroup scheduling.

Linux with `kernel.sched_autogroup_enabled=1` (the default on most distributions) first shares
the CPU between sessions, and a nice value only counts against processes of the same session.
Triton runs in its own session, so a Whisper worker at nice +10 in the gateway's session still
got as much CPU as all of Triton: with 10% of calls as voice clips, Triton's executions took
1.6 s instead of 8 ms (2 cores). A worker therefore starts its own session and gives that
session's autogroup the same nice value. Even at 19 the autogroup still competes, at about 1.5%
of a nice-0 group's weight: Whisper then runs mostly, not only, on otherwise idle CPU.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
OWN_AUTOGROUP = Path("/proc/self/autogroup")
AUTOGROUP_ATTEMPTS = 8


def lower_priority(niceness: int) -> None:
    """Adds niceness (0-19) to the nice value of this process's threads and gives the process an
    autogroup of its own at that nice value; 19 also selects SCHED_IDLE. Threads started later
    inherit it. (Inside a cpu cgroup other than the root, as in most containers, autogroups do not
    apply and the per-thread values are what counts; give Whisper its own container there.)"""
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


def autogroup_nice(pid: int | None = None) -> int | None:
    """The autogroup nice value of `pid` (default: this process); None where the kernel has no
    autogroup support, or where the process is in the root group (init's session: the kernel then
    prints nothing), which weighs as nice 0."""
    try:  # "/autogroup-255 nice 10"
        return int(_autogroup_file(pid).read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _own_autogroup(niceness: int) -> None:
    try:
        os.setsid()  # a new session gets a new autogroup
    except OSError as err:  # a process group leader: it stays in its parent's autogroup, where its nice applies
        logger.warning("Whisper worker %d keeps its parent's session: %s", os.getpid(), err)
        return
    set_autogroup_nice(niceness)


def set_autogroup_nice(niceness: int, pid: int | None = None) -> bool:
    """Gives the autogroup of `pid` (default: this process) that nice value; False if refused.

    Raising it needs no privilege for one's own processes. Without CAP_SYS_ADMIN the kernel takes
    one autogroup change per 100 ms machine-wide (EAGAIN otherwise), which workers restarted
    together can hit: retry, since a new autogroup left at nice 0 would weigh as much as all of
    Triton."""
    path = _autogroup_file(pid)
    for attempt in range(AUTOGROUP_ATTEMPTS):
        try:
            path.write_text(f"{niceness}\n")
            return True
        except BlockingIOError:
            time.sleep(0.11 * (attempt + 1))
        except OSError as err:
            logger.error("process %s: could not set its autogroup's nice value: %s", pid or os.getpid(), err)
            return False
    logger.error("process %s: the kernel refused to set its autogroup's nice value %d times",
                 pid or os.getpid(), AUTOGROUP_ATTEMPTS)
    return False


def _autogroup_file(pid: int | None) -> Path:
    return OWN_AUTOGROUP if pid is None else Path(f"/proc/{pid}/autogroup")
