"""Pinning the load generators and the server to separate CPUs of one box.

On 2 shared cores the Python load generators take 0.6-0.9 of them at 2,000-4,000 calls/s, so
past about 5x overload a fall in answered calls says more about the generators than about the
server. With `loadtest.overload --generator-cpus 1` the generators run on CPU 1 only and the
stack (gateway, Triton, Whisper) on the others: the server then has fewer cores, so its peak is
lower, but what happens past that peak is the server's own doing.
"""

from __future__ import annotations

import os


def parse_cpus(value: str) -> set[int]:
    """'1' or '0,2-3' -> {1} or {0, 2, 3}."""
    cpus: set[int] = set()
    for part in value.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        low, high = int(first), int(last) if dash else int(first)  # int("") fails: "1-" is refused
        if high < low:
            raise ValueError(f"CPU range {part!r} runs backwards")
        cpus.update(range(low, high + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {value!r}")
    return cpus


def other_cpus(taken: set[int]) -> set[int]:
    """The CPUs this process may use, less `taken`; ValueError if that leaves none or takes unknown ones."""
    allowed = os.sched_getaffinity(0)
    if not taken <= allowed:
        raise ValueError(f"CPUs {sorted(taken - allowed)} are not available here (allowed: {sorted(allowed)})")
    rest = allowed - taken
    if not rest:
        raise ValueError(f"CPUs {sorted(taken)} leave none for the server")
    return rest


def pin_process(cpus: set[int]) -> None:
    """Runs every thread of this process on `cpus`; threads and processes started later inherit it.
    (On Linux an affinity belongs to a thread: the calling thread alone would leave the others.)"""
    for name in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            pass
