"""Calls at a fixed rate sent by h2load (nghttp2's C load generator) instead of Python.

A Python open-loop generator spends about a core at a few thousand calls/s; h2load a tenth of that
(docs/decisions/0003-h2load-flood.md). h2load speaks plain HTTP/2, which is all a unary gRPC call is:
a POST to /package.Service/Method with `content-type: application/grpc` and the request message
behind a 5-byte frame header. It cannot read gRPC's status, which travels in the `grpc-status`
trailer of an HTTP 200 answer, so it counts a call the servicer failed as a success: before it
starts, `Flood` sends the same request once through gRPC and refuses to run if the status is not
the one expected.

Every flood call carries the same ordinary chat message (FLOOD_TEXT), so Triton sees one length.
"""

from __future__ import annotations

import math
import re
import resource
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

FLOOD_TEXT = "anyone want to queue ranked after this? need a support main, not feeding pls"
# Connections, each pacing its share of the rate on its own timer. h2load's timer ticks at most
# every 10 ms and sends what fell due since the last tick, so above 100 calls/s a connection sends
# in small bursts: one connection per 100 calls/s keeps to one call per tick.
MIN_CLIENTS, MAX_CLIENTS, CALLS_PER_CLIENT = 8, 64, 100.0
MAX_STREAMS = 4096  # calls in flight per connection: open loop, never waiting for answers
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")
_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s)")
_SECONDS_PER = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


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
    calls: int  # sent (h2load's "started"; a lost connection leaves some of those asked for unsent)
    answered: int  # got an HTTP/2 response (any gRPC status)
    failed: int  # asked for but not answered: unsent, reset or timed out (h2load: succeeded + failed = total)
    seconds: float  # the schedule's length: calls were paced over it
    run_seconds: float  # h2load's whole run: connecting, sending, and the last answers
    cpu_seconds: float  # h2load's own user + system time

    def as_dict(self) -> dict:
        return {"calls": self.calls, "answered": self.answered, "failed": self.failed, "seconds": self.seconds,
                "run_seconds": self.run_seconds, "rate": self.calls / self.seconds,
                "cpu_cores": self.cpu_seconds / self.run_seconds if self.run_seconds else 0.0}


def parse_summary(output: str, seconds: float, cpu_seconds: float) -> FloodResult:
    """h2load's closing summary -> FloodResult (seconds: the schedule's length); ValueError if it
    printed none (it failed to start)."""
    requests, finished = _REQUESTS.search(output), _FINISHED.search(output)
    if requests is None or finished is None:
        raise ValueError(f"h2load printed no summary: {output.strip()[-400:]!r}")
    _total, started, _done, succeeded, failed = map(int, requests.groups())
    return FloodResult(calls=started, answered=succeeded, failed=failed, seconds=seconds,
                       run_seconds=float(finished[1]) * _SECONDS_PER[finished[2]], cpu_seconds=cpu_seconds)


class FloodError(RuntimeError):
    """The flood's request does not get the gRPC status the caller expects."""


def grpc_status(address: str, method: str, request: bytes, deadline_s: float) -> str:
    """The status code name one call of the serialized `request` gets, read by gRPC from the trailers."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method)  # no (de)serializers: bytes in and out
        try:
            call(request, timeout=deadline_s)
        except grpc.RpcError as err:
            return err.code().name
    return "OK"


class Flood:
    """One h2load run: `rate` calls per second for `seconds`, started at once, after one call of the
    same request got gRPC status `expect` (FloodError if not)."""

    def __init__(self, address: str, method: str, request: bytes, rate: float, seconds: float, work_dir: Path,
                 cpus: set[int] | None = None, deadline_s: float = 2.0, log_path: Path | None = None,
                 expect: str = "OK"):
        if rate <= 0 or seconds <= 0:
            raise ValueError("a flood needs a positive rate and duration")
        status = grpc_status(address, method, request, deadline_s)
        if status != expect:
            raise FloodError(f"{method} with the flood's request got gRPC status {status}, not {expect}; "
                             "h2load would have counted every such call as a success")
        body = work_dir / "flood_request.bin"
        body.write_bytes(grpc_frame(request))
        clients = min(max(MIN_CLIENTS, math.ceil(rate / CALLS_PER_CLIENT)), MAX_CLIENTS,
                      max(1, round(rate * seconds)))  # --requests may not be fewer than --clients
        self.seconds = seconds
        command = [h2load_path(), "--clients", str(clients), "--max-concurrent-streams", str(MAX_STREAMS),
                   "--rps", f"{rate / clients:.3f}", "--requests", str(max(clients, round(rate * seconds))),
                   "--data", str(body), "--header", "content-type: application/grpc", "--header", "te: trailers",
                   "--header", f"grpc-timeout: {round(deadline_s * 1000)}m",  # the probe's deadline
                   f"http://{address}{method}"]
        if log_path is not None:  # one line per call: start (us since epoch), HTTP status, duration (us)
            command[1:1] = ["--log-file", str(log_path)]
        if cpus:  # through taskset: h2load sends from a thread of its own, which must inherit the CPUs
            command = ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus)))] + command
        # a session of its own, as a client on another machine
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self._process.pid

    def finish(self, timeout_s: float) -> FloodResult:
        """Waits for the last answers. h2load's CPU time is what reaping it adds to this process's
        account of its children (call this while no other child is being reaped)."""
        before = _children_cpu_seconds()
        try:
            output, _ = self._process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"h2load did not finish within {timeout_s:.0f} s") from None
        return parse_summary(output, self.seconds, _children_cpu_seconds() - before)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def classify_text_flood(address: str, rate: float, seconds: float, work_dir: Path, cpus: set[int] | None = None,
                        deadline_s: float = 2.0, log_path: Path | None = None, expect: str = "OK") -> Flood:
    """A Flood of the gateway's ClassifyText calls, each carrying FLOOD_TEXT."""
    from contract.pb import moderation_pb2

    service = moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name
    request = moderation_pb2.ClassifyTextRequest(text=FLOOD_TEXT).SerializeToString()
    return Flood(address, f"/{service}/ClassifyText", request, rate, seconds, work_dir, cpus, deadline_s, log_path,
                 expect)


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
