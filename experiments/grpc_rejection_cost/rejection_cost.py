"""What gRPC Python itself spends to turn a call away, with no model and no gateway behind it.

    python -m experiments.grpc_rejection_cost.rejection_cost                       # sync and aio servers, 500-4000 calls/s
    python -m experiments.grpc_rejection_cost.rejection_cost --rates 1000,2000 --servers sync --seconds 10

Past saturation the gateway answers RESOURCE_EXHAUSTED from gRPC's own limit
(`maximum_concurrent_rpcs`): the call never reaches our code, but receiving it and sending the
status still costs CPU, on the one thread that serves every call of a grpc.server. This starts a
server with the gateway's service whose one allowed call is held open, so that every other call is
turned away, on CPU 0 alone; h2load (experiments/grpc_rejection_cost/flood.py) sends calls at each rate from CPU 1. Per
rate: the server's CPU per call, and the latency of the rejections as h2load timed them. The same
for grpc.aio's server, which the gateway could move to.
Writes rejection_cost.{json,md,png} into this folder (--out-dir to change).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from experiments.grpc_rejection_cost.flood import classify_text_flood, durations_ms
from loadtest import plots

RESULTS_DIR = Path(__file__).with_name("results")
SERVERS = ("sync", "aio")
SERVER_CPU, CLIENT_CPU = 0, 1
STARTUP_TIMEOUT_S = 60.0


def serve(kind: str) -> None:
    """The child: a server that can take one call at a time, printing its port; runs until killed."""
    pin_process({SERVER_CPU})  # before gRPC starts its threads: they inherit it
    import grpc

    from contract.pb import moderation_pb2, moderation_pb2_grpc

    release = threading.Event()  # never set: the one call admitted stays open

    class HoldingServicer(moderation_pb2_grpc.ModerationServicer):
        def ClassifyText(self, request, context):
            print("held", flush=True)  # the parent waits for this before it sends anything else
            release.wait()
            return moderation_pb2.Verdict()

    handlers = futures.ThreadPoolExecutor(max_workers=1)
    if kind == "sync":
        server = grpc.server(handlers, maximum_concurrent_rpcs=1)
        moderation_pb2_grpc.add_ModerationServicer_to_server(HoldingServicer(), server)
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        server.start()
        server.wait_for_termination()
        return
    import asyncio

    async def main() -> None:
        server = grpc.aio.server(migration_thread_pool=handlers, maximum_concurrent_rpcs=1)
        moderation_pb2_grpc.add_ModerationServicer_to_server(HoldingServicer(), server)
        print(server.add_insecure_port("127.0.0.1:0"), flush=True)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


def measure(kind: str, rates: list[float], seconds: float, work_dir: Path) -> list[dict]:
    """One server of `kind`, every rate in turn against it."""
    import grpc

    from contract.pb import moderation_pb2, moderation_pb2_grpc

    server = subprocess.Popen([sys.executable, "-m", "experiments.grpc_rejection_cost.rejection_cost", "--serve", kind],
                              stdout=subprocess.PIPE, text=True)
    try:
        address = f"127.0.0.1:{int(_read_line(server, STARTUP_TIMEOUT_S))}"
        with grpc.insecure_channel(address) as channel:
            stub = moderation_pb2_grpc.ModerationStub(channel)
            holder = stub.ClassifyText.future(moderation_pb2.ClassifyTextRequest(text="hold"), timeout=3600)
            if _read_line(server, STARTUP_TIMEOUT_S) != "held":
                raise RuntimeError("the server did not take the holding call")
            _check_rejected(stub)  # the one slot is taken: from here on every call is turned away
            rows = [_one_rate(address, server.pid, rate, seconds, work_dir) for rate in rates]
            holder.cancel()
        for row in rows:
            row["server"] = kind
            print(f"{kind} {row['target_rate']:g}/s: {row['cpu_us_per_call']:.0f} us of server CPU per call, "
                  f"rejections p50 {row['p50_ms']:.2f} / p99 {row['p99_ms']:.2f} ms", flush=True)
        return rows
    finally:
        server.kill()
        server.wait()


def _read_line(process: subprocess.Popen, timeout_s: float) -> str:
    """The child's next line of stdout, stripped; RuntimeError if none comes within timeout_s."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            raise RuntimeError(f"the server child said nothing for {timeout_s:.0f} s")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"the server child exited with {process.wait()}")
    return line.strip()


def _check_rejected(stub) -> None:
    import grpc

    from contract.pb import moderation_pb2

    try:
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="probe"), timeout=30)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return
        raise RuntimeError(f"a call past the limit got {err.code().name}, not RESOURCE_EXHAUSTED") from err
    raise RuntimeError("a call past the limit was answered")


def _one_rate(address: str, server_pid: int, rate: float, seconds: float, work_dir: Path) -> dict:
    log = work_dir / f"rate{rate:g}.log"
    log.unlink(missing_ok=True)  # h2load appends
    cpu_before = _cpu_seconds(server_pid)
    flood = classify_text_flood(address, rate, seconds, work_dir, cpus={CLIENT_CPU}, log_path=log,
                                expect="RESOURCE_EXHAUSTED")
    result = flood.finish(timeout_s=seconds + 120)
    server_cpu = _cpu_seconds(server_pid) - cpu_before
    durations = np.array(durations_ms(log))
    if not len(durations):
        raise RuntimeError(f"no call was answered at {rate:g}/s ({result.failed} failed)")
    return {"target_rate": rate, "calls": result.calls, "answered": len(durations), "seconds": result.run_seconds,
            "server_cores": server_cpu / result.run_seconds, "cpu_us_per_call": server_cpu / len(durations) * 1e6,
            "client_cores": result.as_dict()["cpu_cores"],
            "p50_ms": float(np.percentile(durations, 50)), "p99_ms": float(np.percentile(durations, 99)),
            "max_ms": float(durations.max())}


def write_report(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rejection_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# What gRPC Python spends to turn a call away", "", f"Command: `{report['command']}`", "",
             f"Started {report['started']}; {report['cpus']} CPUs; grpcio {report['grpcio']}; the server on CPU "
             f"{SERVER_CPU} alone, h2load on CPU {CLIENT_CPU}; {report['seconds']:g} s per rate. Every call but one "
             "held open is answered RESOURCE_EXHAUSTED by gRPC's `maximum_concurrent_rpcs`.", "",
             "| server | target calls/s | answered | server cores | server CPU us per call | rejection p50 / p99 / max ms "
             "| h2load cores |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in report["rows"]:
        lines.append(f"| {row['server']} | {row['target_rate']:g} | {row['answered']} of {row['calls']} | "
                     f"{row['server_cores']:.2f} | {row['cpu_us_per_call']:.0f} | {row['p50_ms']:.2f} / "
                     f"{row['p99_ms']:.2f} / {row['max_ms']:.1f} | {row['client_cores']:.2f} |")
    lines += ["", "Server CPU is user + system time of the server process (/proc, 10 ms ticks) over h2load's run, "
              "so it also covers answers still arriving after the last call was sent."]
    (out_dir / "rejection_cost.md").write_text("\n".join(lines) + "\n")
    _plot(report["rows"], out_dir / "rejection_cost.png")


def _plot(rows: list[dict], path: Path) -> None:
    figure, cpu_axis, latency_axis = plots.panels(2)
    for kind in sorted({row["server"] for row in rows}):
        mine = [row for row in rows if row["server"] == kind]
        rates = [row["target_rate"] for row in mine]
        cpu_axis.plot(rates, [row["cpu_us_per_call"] for row in mine], "o-", label=kind)
        latency_axis.plot(rates, [row["p99_ms"] for row in mine], "o-", label=f"{kind} p99")
    cpu_axis.set(xlabel="calls/s turned away", ylabel="us of server CPU per call", title="cost of a rejection")
    latency_axis.set(xlabel="calls/s turned away", ylabel="ms", yscale="log", title="rejection latency p99")
    plots.save(figure, path, cpu_axis, latency_axis)


def pin_process(cpus: set[int]) -> None:
    """Runs every thread of this process on `cpus`; an affinity belongs to a thread on Linux."""
    for name in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(name), cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far (/proc/<pid>/stat, after "pid (name)")."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.grpc_rejection_cost.rejection_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="500,1000,2000,4000", help="calls/s, one run each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--servers", default=",".join(SERVERS), help="sync, aio or both")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)  # the server child
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    rates = [float(value) for value in args.rates.split(",")]
    kinds = [kind for kind in args.servers.split(",") if kind]
    if min(rates) <= 0 or args.seconds <= 0 or not kinds or set(kinds) - set(SERVERS):
        parser.error("rates and --seconds must be positive; --servers takes sync and/or aio")
    if not {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0):
        parser.error(f"needs CPUs {SERVER_CPU} and {CLIENT_CPU}")
    import grpc

    report = {"command": "python -m experiments.grpc_rejection_cost.rejection_cost " + " ".join(argv if argv is not None else sys.argv[1:]),
              "started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "grpcio": grpc.__version__, "seconds": args.seconds, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            report["rows"] += measure(kind, rates, args.seconds, Path(tmp))
    write_report(report, args.out_dir)
    print(f"wrote {args.out_dir}/rejection_cost.{{md,json,png}}")


if __name__ == "__main__":
    main()

