"""Memory soak: gateway and Triton RSS over a long steady load.

    python -m loadtest.soak --minutes 10 --users 8

Starts `moderation-serve` (Triton + gateway) on free ports, runs Locust headless at a steady
load, samples the resident memory of the gateway process and of Triton with its python-backend
stub every --sample-s seconds, and writes loadtest/results/soak.{json,md} and soak_rss.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.triton_process import free_port
from loadtest import plots

RESULTS_DIR = Path(__file__).with_name("results")
PROC = Path("/proc")


@dataclass(frozen=True)
class RssSample:
    t_s: float  # since the load started
    gateway_mb: float
    triton_mb: float  # tritonserver and its python-backend stubs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=8, help="about half the saturation load on 2 cores")
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    serve = subprocess.Popen([str(bin_dir / "moderation-serve"), "--listen-address", f"127.0.0.1:{port}",
                              "--admin-listen-address", "", "--voice-enabled", "false", "--log-level", "WARNING",
                              "--triton-grpc-port", str(free_port()), "--triton-http-port", str(free_port()),
                              "--triton-metrics-port", str(free_port())],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = []
    try:
        _wait_healthy(f"127.0.0.1:{port}")
        duration_s = int(args.minutes * 60)
        locust = subprocess.Popen([str(bin_dir / "locust"), "-f", "loadtest/locustfile.py", "--headless",
                                   "--host", f"127.0.0.1:{port}", "-u", str(args.users), "-r", str(args.users),
                                   "-t", f"{duration_s}s", "--only-summary"],
                                  env=dict(os.environ, LOADTEST_VOICE_WEIGHT="0", LOADTEST_BATCH_WEIGHT="0"),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        while locust.poll() is None:
            # Triton and its python-backend stubs; the gateway's Whisper workers are its own children too
            triton = [p for p in _descendants(serve.pid) if _command_name(p).startswith(("tritonserver", "triton_python"))]
            samples.append(RssSample(time.monotonic() - started, _rss_mb(serve.pid), sum(map(_rss_mb, triton))))
            print(f"{samples[-1].t_s:6.0f} s  gateway {samples[-1].gateway_mb:.0f} MB  "
                  f"triton+stub {samples[-1].triton_mb:.0f} MB", flush=True)
            time.sleep(args.sample_s)
        summary_text = locust.stdout.read()
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    _write(samples, args, summary_text, Path(args.out_dir))


def _wait_healthy(address: str, timeout_s: float = 240) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(1)
    raise SystemExit("the gateway did not become healthy")


def _growth(values: list[float]) -> float:
    """Last quarter's mean over the first quarter's (after warm-up), minus one."""
    quarter = max(1, len(values) // 4)
    first, last = values[1 : 1 + quarter] or values[:1], values[-quarter:]
    return sum(last) / len(last) / (sum(first) / len(first)) - 1


def _write(samples: list[RssSample], args, locust_summary: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report = {"minutes": args.minutes, "users": args.users, "samples": [dataclasses.asdict(s) for s in samples],
              "gateway_growth": _growth([s.gateway_mb for s in samples]),
              "triton_growth": _growth([s.triton_mb for s in samples])}
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    figure, axes = plots.panels(1, (8, 3.5))
    axes.plot([s.t_s for s in samples], [s.gateway_mb for s in samples], label="gateway")
    axes.plot([s.t_s for s in samples], [s.triton_mb for s in samples], label="Triton + python stub")
    axes.set(xlabel="time (s)", ylabel="RSS (MB)",
             title=f"Memory over a {args.minutes:.0f}-minute soak, {args.users} Locust users")
    plots.save(figure, out / "soak_rss.png", axes)
    tail = "\n".join(line for line in locust_summary.splitlines()[-25:])
    (out / "soak.md").write_text(
        f"# Memory soak\n\nCommand: `python -m loadtest.soak --minutes {args.minutes:g} --users {args.users}`\n\n"
        f"RSS growth, last quarter vs first quarter after warm-up: gateway {report['gateway_growth']:+.1%}, "
        f"Triton + stub {report['triton_growth']:+.1%}.\n\n![rss](soak_rss.png)\n\nLocust summary:\n\n```\n{tail}\n```\n")
    print(f"gateway RSS growth {report['gateway_growth']:+.1%}, Triton {report['triton_growth']:+.1%}")


def _descendants(root: int) -> list[int]:
    """Every process below root, by parent pid (a process's children list would miss children
    started from its other threads, such as restarted Whisper workers)."""
    parents = {int(entry.name): _parent(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit()}
    found: list[int] = []
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


def _parent(pid: int) -> int:
    try:  # the fields after "pid (name)": state, ppid, ...
        return int((PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:  # exited meanwhile
        return 0


def _command_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def _rss_mb(pid: int) -> float:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    main()
