"""Version switch under load: time to move all traffic, and latency before, during and after.

    python -m loadtest.switch_benchmark --callers 16 --duration-s 40

Starts Triton on a temporary copy of the model repository and the gateway with its admin API,
keeps N callers sending ClassifyText, publishes a new version (a real variant of the shipped
model), activates it, later rolls back, and records every response's time, latency, version and
status. Writes loadtest/results/switch_benchmark.{json,md} and a PNG of latency over time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest import plots
from loadtest.corpus import chat_messages

RESULTS_DIR = Path(__file__).with_name("results")
TOKEN = "switch-benchmark-token-0123456789abcdef"  # 32+ characters, as the gateway demands


def run_callers(stub, messages, callers: int, stop: threading.Event, records: list) -> list[threading.Thread]:
    import grpc

    from contract.pb import moderation_pb2

    def caller(k: int) -> None:
        i = k
        while not stop.is_set():
            started = time.perf_counter()
            try:
                reply = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=messages[i % len(messages)]), timeout=30)
                records.append((started, time.perf_counter() - started, reply.model_version, "OK"))
            except grpc.RpcError as err:
                records.append((started, time.perf_counter() - started, "", err.code().name))
            i += callers

    threads = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(callers)]
    for thread in threads:
        thread.start()
    return threads


def _percentile_ms(latencies_s, q: float) -> float:
    return float(np.percentile(latencies_s, q) * 1e3) if latencies_s else float("nan")


@dataclass(frozen=True)
class SwitchResult:
    """What the callers saw across ActivateVersion and Rollback."""

    requests: int
    failed: int
    activation_call_s: float
    activate_to_all_traffic_new_s: float  # until the last call answered by the old version
    old_version_requests_started_after_switch: int
    rollback_call_s: float
    steady_p50_ms: float
    steady_p99_ms: float
    during_switch_p50_ms: float
    during_switch_p99_ms: float
    events_s: dict[str, float]  # since the first call
    load_ms: float | None  # Triton's load of the new version, as ActivateVersion reported it


def summarize(records, events: dict) -> SwitchResult:
    records = sorted(records)
    t0 = records[0][0]
    activate_at, activated_at = events["activate_start"], events["activate_end"]
    old_after = [r for r in records if r[2] == "1" and activated_at <= r[0] < events["rollback_start"]]
    last_old = max((r[0] + r[1] for r in records if r[2] == "1" and r[0] <= events["rollback_start"]), default=activate_at)
    steady = [r[1] for r in records if r[0] + r[1] < activate_at]
    during = [r[1] for r in records if activate_at <= r[0] <= activated_at]
    return SwitchResult(
        requests=len(records),
        failed=sum(1 for r in records if r[3] != "OK"),
        activation_call_s=activated_at - activate_at,
        activate_to_all_traffic_new_s=max(last_old, activated_at) - activate_at,
        old_version_requests_started_after_switch=len(old_after),
        rollback_call_s=events["rollback_end"] - events["rollback_start"],
        steady_p50_ms=_percentile_ms(steady, 50), steady_p99_ms=_percentile_ms(steady, 99),
        during_switch_p50_ms=_percentile_ms(during, 50), during_switch_p99_ms=_percentile_ms(during, 99),
        events_s={k: v - t0 for k, v in events.items() if k.endswith(("_start", "_end"))},
        load_ms=events.get("load_ms"),
    )


def plot(records, events: dict, path: Path) -> None:
    t0 = min(r[0] for r in records)
    figure, axes = plots.panels(1, (9, 4))
    for version, colour in (("1", "tab:blue"), ("2", "tab:orange"), ("", "tab:red")):
        xs = [r[0] - t0 for r in records if r[2] == version]
        ys = [r[1] * 1e3 for r in records if r[2] == version]
        if xs:
            axes.scatter(xs, ys, s=3, color=colour, label=f"version {version}" if version else "failed")
    for name in ("activate_start", "activate_end", "rollback_start", "rollback_end"):
        axes.axvline(events[name] - t0, color="grey", linestyle="--", linewidth=0.8)
        axes.text(events[name] - t0, axes.get_ylim()[1] * 0.95, name.replace("_", " "), rotation=90, fontsize=7, va="top")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("ClassifyText latency (ms)")
    axes.set_yscale("log")
    axes.set_title("Latency across ActivateVersion and Rollback under load")
    axes.legend(loc="upper left", markerscale=4)
    plots.save(figure, path, axes)


def main(argv=None) -> None:
    import grpc

    from contract.pb import admin_pb2, admin_pb2_grpc, moderation_pb2_grpc
    from gateway.secrets_files import write_secret_file
    from gateway.server import create_server
    from gateway.settings import Settings
    from gateway.triton_process import TritonProcess
    from loadtest.model_variants import Temperature, copy_repository, make_variant_export

    parser = argparse.ArgumentParser(prog="loadtest.switch_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--settle-s", type=float, default=10.0, help="steady load before the switch and after each step")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="switch-bench-"))
    model_dir = copy_repository(Path(args.model_repository), work / "repo")
    token_file = work / "token"
    write_secret_file(token_file, TOKEN)
    export = make_variant_export(model_dir / "1", work / "variant", lambda b: Temperature(b, 2.0))
    from export.repository import publish_directory

    auth = [("authorization", f"Bearer {TOKEN}")]
    records: list = []
    events: dict = {}
    with TritonProcess(work / "repo", log_path=work / "triton.log") as triton:
        settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", triton_url=triton.grpc_url, model_repository=str(work / "repo"),
                            admin_listen_address="127.0.0.1:0", admin_token_file=str(token_file),
                            voice_enabled=False, log_level="WARNING", triton_timeout_s=20.0)
        gateway, port = create_server(settings, triton_control_key=triton.control_key)
        gateway.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, \
                    grpc.insecure_channel(f"127.0.0.1:{gateway.admin_port}") as admin_channel:
                stub, admin = moderation_pb2_grpc.ModerationStub(channel), admin_pb2_grpc.ModelAdminStub(admin_channel)
                stop = threading.Event()
                threads = run_callers(stub, chat_messages(512), args.callers, stop, records)
                print(f"{args.callers} callers; steady for {args.settle_s:.0f} s", flush=True)
                time.sleep(args.settle_s)
                version = publish_directory(export, model_dir).name
                events["activate_start"] = time.perf_counter()
                reply = admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version=version), metadata=auth, timeout=300)
                events["activate_end"] = time.perf_counter()
                events["load_ms"] = reply.load_ms
                print(f"activated {version}: load {reply.load_ms:.0f} ms, switch {reply.switch_ms:.0f} ms", flush=True)
                time.sleep(args.settle_s)
                events["rollback_start"] = time.perf_counter()
                admin.Rollback(admin_pb2.RollbackRequest(), metadata=auth, timeout=300)
                events["rollback_end"] = time.perf_counter()
                time.sleep(args.settle_s)
                stop.set()
                for thread in threads:
                    thread.join()
        finally:
            gateway.stop(0)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dataclasses.asdict(summarize(records, events))
    (out / "switch_benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(records, events, out / "switch_latency.png")
    lines = ["# Version switch under load", "", "Command: `python -m loadtest.switch_benchmark` "
             f"({args.callers} callers).", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items() if k != "events_s"]
    (out / "switch_benchmark.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
