"""`python -m loadtest.run_load`: the step load of issue 7 in one command.

    python -m loadtest.run_load                                # Triton + gateway on free ports
    python -m loadtest.run_load --users 4,8,16,32,64 --step-s 30 --naive-model runs/default-v1/model
    python -m loadtest.run_load --host 127.0.0.1:50051 --triton-metrics-url http://127.0.0.1:8002/metrics

Without --host it starts the real tritonserver on the model repository and the gateway
(create_server, in this process) on free loopback ports; voice is on only when --voice-weight > 0.
Each user count is its own headless Locust run (loadtest/locustfile.py, all users spawned in the
first second, statistics reset once they are) with its CSV files under RESULTS/raw/. Triton's
Prometheus counters are read before and after each run. --naive-model runs the same steps
against loadtest/naive_server.py (a transformers pipeline behind the same RPC; single messages
only) after the gateway's, and reports the ratio of peak throughputs. Writes load_summary.md,
load_results.json and three PNGs into --out-dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract import tensors
from loadtest.load_report import TEXT_TASK, LoadSeries, StepResult, ratio, write_results
from loadtest.locust_stats import LocustRun, read_run
from loadtest.triton_metrics import scrape, step_delta

REPO_DIR = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RESULTS_DIR = Path(__file__).with_name("results")
LOCUST_GRACE_S = 60.0  # Locust start-up and stop time allowed beyond a step's run time
LOCUST_STOP_TIMEOUT_S = 5  # calls in flight at the end of a step may finish within this
SERVING_TIMEOUT_S = 180.0  # Triton loading the model, or the naive server loading its pipeline
WARM_UP_CALLS = 64  # sequential ClassifyText calls before the first step


@dataclass(frozen=True)
class LoadOptions:
    users: tuple[int, ...]
    step_s: int
    text_weight: int  # ChatUser's ClassifyText task weight
    batch_weight: int  # ChatUser's ClassifyTextBatch task weight
    batch_size: int  # messages per ClassifyTextBatch
    voice_weight: int  # VoiceUser's weight against ChatUser's 10; 0: no voice at all
    locust_processes: int
    raw_dir: Path
    user_rate: float = 0.0  # chat calls/s per ChatUser; 0: closed loop

    def __post_init__(self) -> None:
        if not self.users or min(self.users) < 1:
            raise ValueError(f"user counts must be >= 1, got {self.users}")
        if self.step_s < 5:
            raise ValueError(f"step_s must be >= 5, got {self.step_s}")
        if min(self.text_weight, self.batch_weight, self.voice_weight) < 0 or self.batch_size < 1:
            raise ValueError("task weights must be >= 0 and the batch size >= 1")
        if self.user_rate < 0:
            raise ValueError(f"user_rate must be >= 0, got {self.user_rate}")
        if self.locust_processes < 1:
            raise ValueError(f"locust_processes must be >= 1, got {self.locust_processes}")
        if self.text_weight + self.batch_weight == 0:
            raise ValueError("text and batch weights are both 0: ChatUser would have no task")

    @property
    def mix(self) -> str:
        return (f"ChatUser (weight 10): ClassifyText {self.text_weight}, ClassifyTextBatch of {self.batch_size} "
                f"{self.batch_weight}; VoiceUser weight {self.voice_weight}; {self.step_s} s per step"
                + (f"; each ChatUser paced at {self.user_rate:g} calls/s" if self.user_rate else ""))


def run_steps(label: str, address: str, options: LoadOptions, metrics_url: str | None = None,
              model_name: str = tensors.MODEL_NAME) -> LoadSeries:
    """One headless Locust run per user count against address; Triton deltas when metrics_url is set."""
    series = LoadSeries(label, address)
    for index, users in enumerate(options.users, start=1):
        print(f"[{index}/{len(options.users)}] {label}: {users} users for {options.step_s} s ...", flush=True)
        before = scrape(metrics_url, model_name) if metrics_url else None
        started = time.monotonic()
        locust = run_locust(address, users, options.raw_dir / f"{label}-u{users}", options)
        triton = step_delta(before, scrape(metrics_url, model_name)) if metrics_url else None
        step = StepResult(users, time.monotonic() - started, options.batch_size, locust, triton)
        series.steps.append(step)
        print("    " + _progress(step), flush=True)
    return series


def run_locust(address: str, users: int, prefix: Path, options: LoadOptions) -> LocustRun:
    """Runs Locust headless for one step; its console output goes to PREFIX.log."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("_stats.csv", "_failures.csv", "_exceptions.csv", "_stats_history.csv"):
        Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", address,
               "-u", str(users), "-r", str(users), "-t", f"{options.step_s}s", "--csv", str(prefix),
               "--only-summary", "--reset-stats", "--stop-timeout", str(LOCUST_STOP_TIMEOUT_S)]
    if options.locust_processes > 1:  # even --processes 1 forks a worker under a master
        command += ["--processes", str(options.locust_processes)]
    command.append("ChatUser")
    if options.voice_weight > 0:
        command.append("VoiceUser")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_DIR), os.environ.get("PYTHONPATH", "")]),
           "LOADTEST_TEXT_WEIGHT": str(options.text_weight), "LOADTEST_BATCH_WEIGHT": str(options.batch_weight),
           "LOADTEST_BATCH_SIZE": str(options.batch_size), "LOADTEST_VOICE_WEIGHT": str(options.voice_weight),
           "LOADTEST_USER_RATE": str(options.user_rate)}
    log_path = Path(f"{prefix}.log")
    with log_path.open("w") as log:
        # exit status 1 only says some calls failed; the failures are counted from the CSV files
        done = subprocess.run(command, env=env, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT,
                              timeout=options.step_s + LOCUST_GRACE_S, check=False)
    try:
        return read_run(prefix)
    except (FileNotFoundError, ValueError) as err:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"locust exited with {done.returncode} and wrote no stats ({err}):\n{tail}") from err


def wait_serving(address: str, timeout_s: float = SERVING_TIMEOUT_S, process: subprocess.Popen | None = None) -> None:
    """Polls grpc.health.v1 until the target says SERVING (and its process, if any, is alive)."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the server at {address} exited with {process.returncode}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.25)
    raise RuntimeError(f"{address} not SERVING after {timeout_s:.0f} s")


def warm_up(address: str, calls: int = WARM_UP_CALLS) -> str:
    """Sequential ClassifyText calls (first calls are slow); returns the model version that answered."""
    from contract.pb import moderation_pb2, moderation_pb2_grpc
    from loadtest.corpus import chat_messages

    with grpc.insecure_channel(address) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        verdicts = [stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=30)
                    for text in chat_messages(calls)]
    return verdicts[-1].model_version


@contextmanager
def local_stack(model_repository: Path, options: LoadOptions, gateway_argv: list[str],
                triton_config: str) -> Iterator[tuple[str, str]]:
    """Triton + the gateway on free loopback ports; yields (gateway address, Triton metrics URL)."""
    from gateway.server import configure_logging, create_server
    from gateway.settings import load_settings
    from gateway.triton_process import TritonProcess

    settings = load_settings(["--log-level", "WARNING", *gateway_argv], prog="run_load --gateway-args")
    configure_logging(settings.log_level)
    triton = TritonProcess(model_repository, config_name=triton_config, log_path=options.raw_dir / "triton.log")
    print(f"starting tritonserver on {model_repository} (log {triton.log_path}) ...", flush=True)
    with triton:
        settings = settings.replace(listen_address="127.0.0.1:0", metrics_listen_address="", triton_url=triton.grpc_url,
                                    model_repository=str(model_repository), admin_listen_address="",
                                    voice_enabled=options.voice_weight > 0)
        gateway, port = create_server(settings, triton_control_key=triton.control_key)
        gateway.start()
        try:
            yield f"127.0.0.1:{port}", triton.metrics_url
        finally:
            gateway.stop(0)


@contextmanager
def naive_server(model_dir: Path, log_path: Path) -> Iterator[str]:
    """loadtest/naive_server.py as a child process on a free port; yields its address."""
    from gateway.triton_process import free_port

    address = f"127.0.0.1:{free_port()}"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "loadtest.naive_server", "--model", str(model_dir),
                                    "--listen-address", address], cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_serving(address, process=process)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    try:
        options = LoadOptions(users=tuple(int(u) for u in args.users.split(",") if u), step_s=args.step_s,
                              text_weight=args.text_weight, batch_weight=args.batch_weight, batch_size=args.batch_size,
                              voice_weight=args.voice_weight, locust_processes=args.locust_processes, user_rate=args.user_rate,
                              raw_dir=Path(args.out_dir) / "raw")
    except ValueError as err:
        raise SystemExit(f"run_load: {err}") from None
    logging.basicConfig(level=logging.WARNING)
    header = {"command": shlex.join(["python", "-m", "loadtest.run_load", *(argv if argv is not None else sys.argv[1:])]),
              "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                         f"Locust {importlib.metadata.version('locust')}",
              "mix": options.mix, "gateway_args": args.gateway_args, "triton_config": args.triton_config}
    series = [_run_gateway(args, options, header)]
    if args.naive_model:
        naive_options = dataclasses.replace(options, batch_weight=0, voice_weight=0)  # it has ClassifyText only
        with naive_server(Path(args.naive_model), options.raw_dir / "naive_server.log") as address:
            warm_up(address)
            series.append(run_steps("naive", address, naive_options))
    for path in write_results(Path(args.out_dir), header, series):
        print(f"wrote {path}")
    peak_ratio = ratio(series[0], series[1] if len(series) > 1 else None)
    if peak_ratio is not None:
        print(f"peak messages/s gateway / naive: {peak_ratio:.2f}x")


def _run_gateway(args: argparse.Namespace, options: LoadOptions, header: dict) -> LoadSeries:
    if args.host:
        wait_serving(args.host)
        header["model_version"] = warm_up(args.host)
        return run_steps("gateway", args.host, options, args.triton_metrics_url or None, args.model_name)
    repository = Path(args.model_repository).resolve()
    model_dir = repository / args.model_name
    if not model_dir.is_dir() or not any(p.name.isdigit() for p in model_dir.iterdir()):
        raise SystemExit(f"run_load: no model version in {model_dir}")
    with local_stack(repository, options, shlex.split(args.gateway_args), args.triton_config) as (address, metrics):
        wait_serving(address)
        header["model_version"] = warm_up(address)
        print(f"gateway at {address} (model version {header['model_version']}), Triton metrics {metrics}", flush=True)
        return run_steps("gateway", address, options, metrics, args.model_name)


def _progress(step: StepResult) -> str:
    text = step.task(TEXT_TASK)
    latency = (f"{TEXT_TASK} p50/p95/p99 {text.p50_ms:.0f}/{text.p95_ms:.0f}/{text.p99_ms:.0f} ms"
               if text and text.p99_ms is not None else f"no {TEXT_TASK} calls")
    failures = {code: n for codes in step.locust.failures.values() for code, n in codes.items()}
    line = (f"{step.locust.total.requests_per_s:.1f} req/s, {step.messages_per_s:.1f} messages/s answered, "
            f"{latency}, failures {failures or 0}")
    if step.triton and step.triton.mean_batch_size is not None:
        line += (f", Triton mean batch {step.triton.mean_batch_size:.2f}, "
                 f"queue {step.triton.queue_ms_per_request:.2f} ms/request")
    return line


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.run_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="4,8,16,32,64", help="comma-separated user counts, one step each")
    parser.add_argument("--step-s", type=int, default=30, help="seconds per step (after all users started)")
    parser.add_argument("--text-weight", type=int, default=20, help="ClassifyText task weight")
    parser.add_argument("--batch-weight", type=int, default=1, help="ClassifyTextBatch task weight (0: none)")
    parser.add_argument("--batch-size", type=int, default=16, help="messages per ClassifyTextBatch")
    parser.add_argument("--voice-weight", type=int, default=0,
                        help="VoiceUser weight against ChatUser's 10 (e.g. 1 for ~10%% voice users); 0: no voice")
    parser.add_argument("--user-rate", type=float, default=0.0,
                        help="chat calls/s per ChatUser (offered load = users x rate); 0: closed loop")
    parser.add_argument("--locust-processes", type=int, default=1, help="Locust --processes (load generators)")
    parser.add_argument("--host", default="", help="an already running gateway host:port; default: start one")
    parser.add_argument("--triton-metrics-url", default="", help="with --host: Triton's metrics URL, e.g. http://127.0.0.1:8002/metrics")
    parser.add_argument("--model-repository", default=str(REPO_DIR / "model_repository"))
    parser.add_argument("--model-name", default=tensors.MODEL_NAME)
    parser.add_argument("--triton-config", default="", help="a config under <model>/configs/, e.g. gpu")
    parser.add_argument("--gateway-args", default="", help='gateway flags, e.g. "--max-in-flight 32 --length-buckets 16,32,64"')
    parser.add_argument("--naive-model", default="", help="a Hugging Face checkpoint directory: also load the naive server")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
