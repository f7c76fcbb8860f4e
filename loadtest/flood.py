"""The excess of an overload step, sent by h2load (nghttp2's C load generator) instead of Python.

The Python open-loop generators spend about 0.4 ms of CPU per call: at 10x overload on 2 shared
cores they took a whole core of the two, so the fall in answered calls measured there was mostly
the generators' doing. h2load sent 2,600 calls/s for 0.10-0.12 of a core. It speaks plain HTTP/2,
which is all a unary gRPC call is: a POST to /package.Service/Method with `content-type:
application/grpc` and the request message behind a 5-byte frame header. It cannot read gRPC's
status (a trailer) nor time calls apart by it, so `loadtest.overload --flood` keeps a Python probe
for those and counts what the server answered in total from Triton's counters.

Every flood call carries the same ordinary chat message (FLOOD_TEXT), so Triton sees one length.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLOOD_TEXT = "anyone want to queue ranked after this? need a support main, not feeding pls"
CLIENTS = 8  # connections; each paces its share of the rate on its own timer
MAX_STREAMS = 4096  # calls in flight per connection: open loop, never waiting for answers
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored, (\d+) timeout")
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")


def h2load_path() -> str:
    """The h2load binary; a clear error where the Debian package nghttp2-client is missing."""
    path = shutil.which("h2load")
    if path is None:
        raise FileNotFoundError("h2load is not installed (Debian/Ubuntu: apt-get install nghttp2-client)")
    return path


def grpc_frame(message: bytes) -> bytes:
    """A serialized message as one gRPC length-prefixed frame: uncompressed flag, then its length."""
    return b"\0" + struct.pack(">I", len(message)) + message


@dataclass(frozen=True)
class FloodResult:
    calls: int  # requested
    answered: int  # got an HTTP/2 response (any gRPC status)
    failed: int  # streams reset or connections lost
    seconds: float
    cpu_seconds: float  # h2load's own user + system time

    def as_dict(self) -> dict:
        return {"calls": self.calls, "answered": self.answered, "failed": self.failed, "seconds": self.seconds,
                "rate": self.calls / self.seconds if self.seconds else 0.0,
                "cpu_cores": self.cpu_seconds / self.seconds if self.seconds else 0.0}


def parse_summary(output: str, cpu_seconds: float) -> FloodResult:
    """h2load's closing summary -> FloodResult; ValueError if it printed none (it failed to start)."""
    requests, finished = _REQUESTS.search(output), _FINISHED.search(output)
    if requests is None or finished is None:
        raise ValueError(f"h2load printed no summary: {output.strip()[-400:]!r}")
    total, _started, _done, succeeded, failed, errored, timeout = map(int, requests.groups())
    seconds = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    return FloodResult(calls=total, answered=succeeded, failed=failed + errored + timeout, seconds=seconds,
                       cpu_seconds=cpu_seconds)


class Flood:
    """One h2load run: `rate` ClassifyText calls per second for `seconds`, started at once."""

    def __init__(self, address: str, method: str, request: bytes, rate: float, seconds: float, work_dir: Path,
                 cpus: set[int] | None = None, deadline_s: float = 2.0, log_path: Path | None = None):
        if rate <= 0 or seconds <= 0:
            raise ValueError("a flood needs a positive rate and duration")
        body = work_dir / "flood_request.bin"
        body.write_bytes(grpc_frame(request))
        clients = max(1, min(CLIENTS, int(rate)))  # h2load wants at least one call/s per connection
        command = [h2load_path(), "--clients", str(clients), "--max-concurrent-streams", str(MAX_STREAMS),
                   "--rps", f"{rate / clients:.3f}", "--requests", str(max(clients, round(rate * seconds))),
                   "--data", str(body), "--header", "content-type: application/grpc", "--header", "te: trailers",
                   "--header", f"grpc-timeout: {round(deadline_s * 1000)}m",  # the probe's deadline
                   f"http://{address}{method}"]
        if log_path is not None:  # one line per call: start (us since epoch), HTTP status, duration (us)
            command[1:1] = ["--log-file", str(log_path)]
        # a session of its own, as a client on another machine (see loadtest.overload.run_step)
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True)
        if cpus:
            os.sched_setaffinity(self._process.pid, cpus)  # h2load runs one thread (no --threads)

    def finish(self, timeout_s: float) -> FloodResult:
        """Waits for the last answers. h2load's CPU time is what reaping it adds to this process's
        account of its children (call this while no other child is being reaped)."""
        before = _children_cpu_seconds()
        try:
            output, _ = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"h2load did not finish within {timeout_s:.0f} s") from None
        return parse_summary(output, _children_cpu_seconds() - before)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def durations_ms(log_path: Path) -> list[float]:
    """Per-call durations from an h2load --log-file, calls that got a response only (status -1: none)."""
    durations = []
    for line in log_path.read_text().splitlines():
        _start, status, duration_us = line.split("\t")[:3]
        if int(status) > 0:
            durations.append(int(duration_us) / 1e3)
    return durations


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
