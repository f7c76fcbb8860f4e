"""The serving comparison matrix: which Triton and gateway settings serve text fastest here.

    python -m experiments.serving_matrix.matrix --variant fp32=/tmp/fp32 --variant int8=model_repository/toxicity/2

For each model variant (an exported version directory): the raw in-process limit of its file
(loadtest.benchmark.raw_throughput), then the real stack (Triton + gateway on loopback) under N
callers, once per setting:

- batching: dynamic batching at the shipped queue delay, or none (one execution per request);
- instances: one model instance with 2 torch threads, or two instances with 1 thread each;
- padding: ragged batches padded by the backend, or the gateway padding to length buckets;
- rpc: single-message ClassifyText, or ClassifyTextBatch of 32 messages.

The raw limit is the best of batch sizes 16, 32 and 64 (and of padding each batch to its longest
or running rows sorted by length 8 at a time, as the python backend does).

Every Triton setting is applied by reloading the model with a config override, so all rows of a
variant share one Triton process. Writes matrix.json and matrix.md into results/ beside this file; every
end-to-end figure is also given as a ratio to the best raw limit measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from contract import tensors
from loadtest.benchmark import batch_stats, raw_throughput
from loadtest.benchmark import end_to_end as drive
from loadtest.corpus import chat_messages

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass(frozen=True)
class Setting:
    name: str
    batching: bool = True
    instances: int = 1
    threads_per_instance: int = 2
    rpc_batch: int = 1  # messages per RPC; 1 is ClassifyText
    buckets: tuple[int, ...] = ()  # gateway length buckets; () lets the backend pad ragged batches
    coalesce_wait_us: int = 0  # the gateway merges concurrent calls (gateway/coalescer.py); 0: off

    def apply(self, config: dict, queue_delay_us: int) -> dict:
        config = copy.deepcopy(config)
        if self.batching:
            config.setdefault("dynamic_batching", {})["max_queue_delay_microseconds"] = str(queue_delay_us)
        else:
            config.pop("dynamic_batching", None)
        config["instance_group"] = [{"count": self.instances, "kind": "KIND_CPU"}]
        config.setdefault("parameters", {})["torch_num_threads"] = {"string_value": str(self.threads_per_instance)}
        return config


SETTINGS = (
    Setting("batching on, 1 instance x 2 threads"),
    Setting("batching off, 1 instance x 2 threads", batching=False),
    Setting("batching on, 2 instances x 1 thread", instances=2, threads_per_instance=1),
    Setting("batching on, 2 x 1, length buckets 16/32/64/128", instances=2, threads_per_instance=1,
            buckets=(16, 32, 64, 128)),
    Setting("batching on, 2 x 1, gateway merges calls (1 ms, 16 rows)", instances=2, threads_per_instance=1,
            coalesce_wait_us=1000),
    Setting("batch RPC of 32, 1 instance x 2 threads", rpc_batch=32),
    Setting("batch RPC of 32, 2 instances x 1 thread", instances=2, threads_per_instance=1, rpc_batch=32),
)
RAW_BATCH_SIZES = (16, 32, 64)


def single_version_repository(version_dir: Path, config_source: Path, root: Path) -> Path:
    """A model repository with the shipped config and `version_dir` as version 1."""
    model_dir = root / tensors.MODEL_NAME
    model_dir.mkdir(parents=True)
    shutil.copy(config_source, model_dir / "config.pbtxt")
    shutil.copytree(version_dir, model_dir / "1")
    return root


def run_variant(name: str, version_dir: Path, args, messages: list[str]) -> dict:
    import tritonclient.grpc as grpcclient

    from gateway.server import create_server
    from gateway.settings import Settings
    from gateway.triton_process import TritonProcess

    print(f"[{name}] raw in-process: {version_dir}", flush=True)
    by_batch = {size: dataclasses.asdict(raw_throughput(version_dir, messages, size, args.threads))
                for size in RAW_BATCH_SIZES}
    raw = max(by_batch.values(), key=lambda r: r["sequences_per_s"])
    raw["by_batch_size"] = {size: r["sequences_per_s"] for size, r in by_batch.items()}
    print(f"  {raw['sequences_per_s']:.0f} sequences/s (batch {raw['batch_size']}, {raw['best_method']}; by batch "
          + ", ".join(f"{s}: {v:.0f}" for s, v in raw["by_batch_size"].items()) + ")", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="matrix-") as tmp:
        repository = single_version_repository(version_dir, Path(args.model_repository) / tensors.MODEL_NAME
                                               / "config.pbtxt", Path(tmp) / "repo")
        with TritonProcess(repository) as triton, grpcclient.InferenceServerClient(triton.grpc_url) as client:
            shipped = client.get_model_config(tensors.MODEL_NAME, as_json=True, headers=triton.control_headers)["config"]
            for setting in SETTINGS:
                client.load_model(tensors.MODEL_NAME, config=json.dumps(setting.apply(shipped, args.queue_delay_us)),
                                  headers=triton.control_headers)
                settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", triton_url=triton.grpc_url,
                                    model_repository=str(repository), log_level="WARNING", voice_enabled=False,
                                    admin_listen_address="", length_buckets=setting.buckets,
                                    coalesce_wait_us=setting.coalesce_wait_us)
                gateway, port = create_server(settings, triton_control_key=triton.control_key)
                gateway.start()
                address = f"127.0.0.1:{port}"
                try:
                    callers = args.batch_rpc_callers if setting.rpc_batch > 1 else args.callers
                    drive(address, messages[:64], callers, 2.0, setting.rpc_batch)  # warm up
                    before = batch_stats(triton)
                    result = dataclasses.asdict(drive(address, messages, callers, args.duration_s, setting.rpc_batch))
                    after = batch_stats(triton)
                finally:
                    gateway.stop(0)
                result["mean_triton_batch"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
                result["setting"] = setting.__dict__
                rows[setting.name] = result
                print(f"  {setting.name:>48}: {result['messages_per_s']:.0f} msg/s, p50 {result['p50_ms']:.0f} ms,"
                      f" p99 {result['p99_ms']:.0f} ms, Triton batch {result['mean_triton_batch']:.1f},"
                      f" errors {result['errors'] or '-'}", flush=True)
    return {"version_dir": str(version_dir), "raw": raw, "end_to_end": rows}


def main(argv=None) -> None:
    import logging

    parser = argparse.ArgumentParser(prog="experiments.serving_matrix.matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME=VERSION_DIR of an exported version (default: fp32=the latest shipped one)")
    parser.add_argument("--model-repository", default="model_repository", help="its config.pbtxt is the base")
    parser.add_argument("--messages", type=int, default=1024)
    parser.add_argument("--callers", type=int, default=32, help="for single-message RPCs")
    parser.add_argument("--batch-rpc-callers", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--queue-delay-us", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the raw limit")
    parser.add_argument("--out", default=str(RESULTS_DIR / "matrix.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from loadtest.model_variants import latest_version_dir

    variants = dict(item.split("=", 1) for item in args.variant)
    if not variants:  # the latest shipped version, named by its precision
        latest = latest_version_dir(Path(args.model_repository) / tensors.MODEL_NAME)
        info = json.loads((latest / tensors.EXPORT_INFO_FILENAME).read_text())
        variants = {str(info.get("precision", f"version {latest.name}")): str(latest)}
    messages = chat_messages(args.messages)
    results = {name: run_variant(name, Path(path), args, messages) for name, path in variants.items()}
    best_raw = max(r["raw"]["sequences_per_s"] for r in results.values())
    report = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
              "command": "python -m experiments.serving_matrix.matrix " + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
              "callers": args.callers, "batch_rpc_callers": args.batch_rpc_callers, "duration_s": args.duration_s,
              "queue_delay_us": args.queue_delay_us, "best_raw_sequences_per_s": best_raw, "variants": results}
    write(report, Path(args.out))
    print(f"written to {args.out} and {Path(args.out).with_suffix('.md')}")


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    best_raw = report["best_raw_sequences_per_s"]
    lines = ["# Serving comparison matrix", "", f"Command: `{report['command']}`", "",
             f"{report['machine']['cpus']} CPUs; single-message rows use {report['callers']} callers, batch-RPC rows "
             f"{report['batch_rpc_callers']}; {report['duration_s']:.0f} s per row; queue delay "
             f"{report['queue_delay_us']} us when batching is on. Ratios are to the best raw limit of the run "
             f"({best_raw:.0f} sequences/s).", "",
             "| variant | path | messages/s | p50 ms | p99 ms | Triton batch | errors | ratio to best raw |",
             "|---|---|---:|---:|---:|---:|---|---:|"]
    for name, variant in report["variants"].items():
        raw = variant["raw"]
        lines.append(f"| {name} | raw in-process, batch {raw['batch_size']}, {raw['best_method']} "
                     f"| {raw['sequences_per_s']:.0f} | | | | | {raw['sequences_per_s'] / best_raw:.2f} |")
        for setting, r in variant["end_to_end"].items():
            lines.append(f"| {name} | {setting} | {r['messages_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                         f"| {r['mean_triton_batch']:.1f} | {r['errors'] or '-'} | {r['messages_per_s'] / best_raw:.2f} |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
