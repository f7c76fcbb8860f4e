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
from pathlib import Path

ROLES = ("generators", "gateway", "triton", "whisper")


def snapshot() -> dict[str, float]:
    """CPU seconds used so far, per role, plus the time of the snapshot ("at")."""
    used = dict.fromkeys(ROLES, 0.0)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["generators"] = children.ru_utime + children.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid, (cpu_ticks, name, command) in _descendants(os.getpid()).items():
        role = "gateway" if pid == os.getpid() else _role(name, command)
        if role is not None:
            used[role] += cpu_ticks / tick
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


def _descendants(root: int) -> dict[int, tuple[int, str, str]]:
    """pid -> (user + system ticks, name, command line) for root and every process below it."""
    parents: dict[int, int] = {}
    info: dict[int, tuple[int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it exited meanwhile
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        info[pid] = (int(fields[11]) + int(fields[12]), name, command)
    found = {pid for pid in info if pid == root}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found and pid not in found}
        found |= below
        grew = bool(below)
    return {pid: info[pid] for pid in found}
