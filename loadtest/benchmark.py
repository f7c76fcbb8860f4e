"""Raw in-process model throughput vs end-to-end throughput through gateway + Triton.

    python -m loadtest.benchmark            # starts Triton + gateway on free ports
    ./run.sh benchmark --duration-s 20

Raw: the served TorchScript file loaded exactly as the python backend loads it, batches of 32
chat-like messages padded to each batch's longest. End to end: N concurrent callers sending
single-message ClassifyText RPCs for a fixed time, once per gateway padding mode (none: the
python backend pads ragged batches; buckets: the gateway pads to a few lengths, as GPU libtorch
needs). Prints a table and writes loadtest/results/benchmark.json and benchmark.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract import tensors
from loadtest.corpus import chat_messages

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass
class RawThroughput:
    """The served TorchScript file in this process, no server: the ceiling for the stack."""

    sequences_per_s: float  # of the best method
    best_method: str
    by_method: dict[str, float]  # padded_to_longest, sorted_chunks_of_8 (as the python backend runs)
    batch_size: int
    threads: int
    precision: str | None
    messages: int


@dataclass
class EndToEnd:
    """Callers sending RPCs back to back through gateway + Triton for a fixed time."""

    callers: int
    requests: int  # answered
    rpc_batch: int  # messages per RPC; 1 is ClassifyText
    errors: dict[str, int]  # by status code name
    seconds: float
    messages_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    buckets: list[int] = field(default_factory=list)  # the gateway's length buckets; []: ragged
    queue_delay_us: int | None = None  # Triton's dynamic-batching delay
    mean_batch_size: float | None = None  # sequences per model execution, from Triton's statistics


@dataclass
class BenchmarkReport:
    machine: dict
    model_version: str
    token_lengths: dict[str, float]
    raw: RawThroughput
    end_to_end: dict[str, EndToEnd]  # by mode name, e.g. ragged/500us
    ratio_best_end_to_end_to_raw: float


def raw_throughput(version_dir: Path, messages: list[str], batch_size: int, threads: int) -> RawThroughput:
    import torch

    from gateway.text_encoder import TextEncoder

    torch.set_num_threads(threads)
    info = json.loads((version_dir / tensors.EXPORT_INFO_FILENAME).read_text())
    encoder = TextEncoder(version_dir, int(info.get("max_length", 128)))
    model = torch.jit.load(str(version_dir / tensors.MODEL_FILENAME), map_location="cpu").float().eval()
    batches = [encoder.encode(messages[i : i + batch_size]) for i in range(0, len(messages), batch_size)]
    rates = {"padded_to_longest": _rate(model, batches, None, len(messages)),
             "sorted_chunks_of_8": _rate(model, batches, 8, len(messages))}
    best = max(rates, key=rates.get)
    return RawThroughput(sequences_per_s=rates[best], best_method=best, by_method=rates, batch_size=batch_size,
                         threads=threads, precision=info.get("precision"), messages=len(messages))


def _rate(model, batches, chunk_rows: int | None, count: int) -> float:
    """Rows/s over all batches: each padded to its longest, or (as the python backend does) rows
    sorted by length and run chunk_rows at a time, each chunk trimmed to its own length."""
    import torch

    def run(ids, mask):
        if chunk_rows is None:
            model(torch.from_numpy(ids), torch.from_numpy(mask))
            return
        lengths = mask.sum(axis=1)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), chunk_rows):
            rows = order[start : start + chunk_rows]
            width = int(lengths[rows].max())
            model(torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width]))

    with torch.inference_mode():
        for ids, mask in batches[:3]:  # warm up
            run(ids, mask)
        started = time.perf_counter()
        for ids, mask in batches:
            run(ids, mask)
    return count / (time.perf_counter() - started)


def end_to_end(address: str, messages: list[str], callers: int, duration_s: float, rpc_batch: int = 1) -> EndToEnd:
    """`callers` threads send RPCs back to back for duration_s: single-message ClassifyText, or
    ClassifyTextBatch of `rpc_batch` messages. Counts answered messages; errors by status."""
    import grpc

    from contract.pb import moderation_pb2, moderation_pb2_grpc

    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s

    def caller(offset: int) -> None:
        with grpc.insecure_channel(address) as channel:
            stub = moderation_pb2_grpc.ModerationStub(channel)
            i = offset * rpc_batch
            while time.perf_counter() < stop_at:
                texts = [messages[(i + k) % len(messages)] for k in range(rpc_batch)]
                t0 = time.perf_counter()
                try:
                    if rpc_batch == 1:
                        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=texts[0]), timeout=10)
                    else:
                        stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=10)
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                except grpc.RpcError as err:
                    with lock:
                        errors[err.code().name] = errors.get(err.code().name, 0) + 1
                i += callers * rpc_batch

    workers = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    ms = sorted(1e3 * x for x in latencies)
    pct = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]) if ms else (lambda q: float("nan"))
    return EndToEnd(callers=callers, requests=len(ms), rpc_batch=rpc_batch, errors=errors, seconds=elapsed,
                    messages_per_s=len(ms) * rpc_batch / elapsed, p50_ms=pct(0.50), p95_ms=pct(0.95),
                    p99_ms=pct(0.99), mean_ms=statistics.fmean(ms) if ms else float("nan"))


def set_queue_delay(triton, delay_us: int) -> None:
    """Reloads the model with another dynamic-batching queue delay (config override)."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        config = client.get_model_config(tensors.MODEL_NAME, as_json=True, headers=triton.control_headers)["config"]
        config["dynamic_batching"]["max_queue_delay_microseconds"] = str(delay_us)
        client.load_model(tensors.MODEL_NAME, config=json.dumps(config), headers=triton.control_headers)


def batch_stats(triton) -> tuple[int, int]:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        stats = client.get_inference_statistics(tensors.MODEL_NAME, as_json=True)["model_stats"]
    return (sum(int(s.get("inference_count", 0)) for s in stats),
            sum(int(s.get("execution_count", 0)) for s in stats))


def run_stack_benchmarks(model_repository: Path, messages, callers, duration_s, modes) -> dict[str, EndToEnd]:
    """modes: name -> (length buckets, queue delay in microseconds)."""
    from gateway.server import create_server
    from gateway.settings import Settings
    from gateway.triton_process import TritonProcess

    results = {}
    with TritonProcess(model_repository) as triton:
        for name, (buckets, delay_us) in modes.items():
            set_queue_delay(triton, delay_us)
            settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", triton_url=triton.grpc_url,
                                model_repository=str(model_repository), length_buckets=buckets,
                                log_level="WARNING", voice_enabled=False, admin_listen_address="")
            gateway, port = create_server(settings, triton_control_key=triton.control_key)
            gateway.start()
            try:
                end_to_end(f"127.0.0.1:{port}", messages[:64], callers, 2.0)  # warm up
                before = batch_stats(triton)
                result = end_to_end(f"127.0.0.1:{port}", messages, callers, duration_s)
                after = batch_stats(triton)
                executions = max(after[1] - before[1], 1)
                result = dataclasses.replace(result, buckets=list(buckets), queue_delay_us=delay_us,
                                             mean_batch_size=(after[0] - before[0]) / executions)
                results[name] = result
                print(f"  {name:>14}: {result.messages_per_s:.0f} msg/s, p50 {result.p50_ms:.0f} ms, "
                      f"p99 {result.p99_ms:.0f} ms, mean batch {result.mean_batch_size:.1f}, "
                      f"errors {result.errors}", flush=True)
            finally:
                gateway.stop(0)
    return results


def main(argv=None) -> None:
    import logging

    parser = argparse.ArgumentParser(prog="loadtest.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--messages", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--callers", type=int, default=32)
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--queue-delays-us", default="0,500,2000,5000",
                        help="dynamic-batching queue delays to compare; buckets run at the last one")
    parser.add_argument("--out", default=str(RESULTS_DIR / "benchmark.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    repository = Path(args.model_repository)
    messages = chat_messages(args.messages)
    from loadtest.model_variants import latest_version_dir

    version_dir = latest_version_dir(repository / tensors.MODEL_NAME)
    print(f"raw in-process: {version_dir} batch {args.batch_size}, {args.threads} threads", flush=True)
    raw = raw_throughput(version_dir, messages, args.batch_size, args.threads)
    print(f"  {raw.sequences_per_s:.0f} sequences/s ({raw.precision}, best of "
          + ", ".join(f"{k} {v:.0f}" for k, v in raw.by_method.items()) + ")", flush=True)
    print(f"end to end: {args.callers} callers x {args.duration_s:.0f} s of single-message ClassifyText", flush=True)
    delays = [int(d) for d in args.queue_delays_us.split(",")]
    modes = {f"ragged/{d}us": ((), d) for d in delays}
    modes[f"buckets/{delays[-1]}us"] = ((16, 32, 64, 128), delays[-1])
    e2e = run_stack_benchmarks(repository, messages, args.callers, args.duration_s, modes)
    best = max(e2e.values(), key=lambda r: r.messages_per_s)
    report = BenchmarkReport(
        machine={"cpus": os.cpu_count(), "python": platform.python_version()},
        model_version=version_dir.name,
        token_lengths=_length_stats(version_dir, messages),
        raw=raw,
        end_to_end=e2e,
        ratio_best_end_to_end_to_raw=best.messages_per_s / raw.sequences_per_s,
    )
    _write(report, Path(args.out))
    print(f"ratio end-to-end / raw: {report.ratio_best_end_to_end_to_raw:.2f}  (written to {args.out})")


def _length_stats(version_dir: Path, messages) -> dict:
    from gateway.text_encoder import TextEncoder

    lengths = [len(ids) for ids in TextEncoder(version_dir, 128).tokenizer(messages)["input_ids"]]
    return {"median": float(np.median(lengths)), "p90": float(np.percentile(lengths, 90)), "max": max(lengths)}


def _write(report: BenchmarkReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    raw = report.raw
    lines = ["# Text throughput benchmark", "", "Command: `python -m loadtest.benchmark` (see loadtest/benchmark.py).", "",
             f"Model version {report.model_version} ({raw.precision}), token lengths {report.token_lengths}.", "",
             "| path | messages/s | p50 ms | p99 ms | mean batch | errors | ratio to raw |", "|---|---:|---:|---:|---:|---|---:|",
             f"| raw in-process, batch {raw.batch_size}, {raw.best_method} | {raw.sequences_per_s:.0f} | | | {raw.batch_size} | | 1.00 |"]
    for name, r in report.end_to_end.items():
        lines.append(f"| gateway + Triton, {r.callers} callers, {name} | {r.messages_per_s:.0f} | {r.p50_ms:.1f} "
                     f"| {r.p99_ms:.1f} | {r.mean_batch_size:.1f} | {r.errors or '-'} | {r.messages_per_s / raw.sequences_per_s:.2f} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
