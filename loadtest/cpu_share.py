"""Who used the CPU during a load step: the load generators, the gateway, Triton, Whisper.

On one box the load generators share the cores with the server; past about 2x overload they use
a large part of them. Each step of `loadtest.overload` therefore reports how many cores each part
used, so that a fall in answered calls can be told apart from the generators' own cost.

Counted from /proc: this process (the gateway, when the runner started it) and its descendants,
by process name (Triton) or command line (multiprocessing's workers: Whisper). A Whisper worker
replaced during a step is counted under "generators" once reaped; the step still shows it. Generators are children that have exited by the end of a step, so their CPU
comes from `getrusage(RUSAGE_CHILDREN)`, which counts children once they are reaped.
"""

from __future__ import annotations

import os
import resource
import time

from loadtest import procfs

ROLES = ("generators", "gateway", "triton", "whisper")


def snapshot() -> dict[str, float]:
    """CPU seconds used so far, per role, plus the time of the snapshot ("at")."""
    used = dict.fromkeys(ROLES, 0.0)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["generators"] = children.ru_utime + children.ru_stime
    used["gateway"] = procfs.cpu_seconds(os.getpid())
    for pid in procfs.descendants(os.getpid()):
        role = _role(procfs.command_name(pid), procfs.command_line(pid))
        if role is not None:
            used[role] += procfs.cpu_seconds(pid)
    used["at"] = time.monotonic()
    return used


def cores_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Average cores per role between two snapshots (1.0 = one core busy all the time)."""
    elapsed = after["at"] - before["at"]
    return {role: max(0.0, after[role] - before[role]) / elapsed for role in ROLES} if elapsed > 0 else {}


def _role(name: str, command: str) -> str | None:
    if name.startswith(("tritonserver", "triton_python")):  # the server and its python backend stubs
        return "triton"
    if "--multiprocessing-fork" in command:  # processes spawned by multiprocessing: the Whisper workers
        return "whisper"
    return None
