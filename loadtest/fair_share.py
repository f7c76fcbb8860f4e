"""Fair share between API keys: does a greedy caller leave the others their throughput?

    python -m loadtest.fair_share                       # Triton + gateway with a two-caller keys file
    python -m loadtest.fair_share --duration-s 30 --greedy-threads 32

Two callers, each its own API key: `steady` (a game server: --steady-threads closed-loop threads,
a share of --steady-concurrency) and `greedy` (--greedy-threads threads, a share of
--greedy-concurrency and a rate of --greedy-rate-per-s). Phase 1 runs steady alone; phase 2 runs
both. Per phase and caller it reports calls answered per second, how many were turned away
(RESOURCE_EXHAUSTED, with the mean retry-after-ms) and OK latency percentiles. Turned-away callers
wait retry-after-ms before calling again unless --ignore-retry-after. The callers run in the
gateway's own process (as loadtest.run_load does): on a small machine a caller that ignores
retry-after takes CPU from the gateway itself, which no share can prevent. Writes
loadtest/results/fair_share.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.callers import CallerEntry, generate_key, hash_key
from gateway.keys_cli import entry_toml
from loadtest.corpus import chat_messages

RESULTS_DIR = Path(__file__).parent / "results"
DEADLINE_S = 10.0


def _caller_loop(stub, key: str, texts: list[str], stop: threading.Event, sink: list, honour_retry: bool) -> None:
    metadata = [("authorization", f"Bearer {key}")]
    index = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=texts[index % len(texts)]),
                              timeout=DEADLINE_S, metadata=metadata)
            sink.append(("OK", time.perf_counter() - started, None))
        except grpc.RpcError as err:
            retry = dict(err.trailing_metadata() or ()).get("retry-after-ms")
            sink.append((err.code().name, time.perf_counter() - started, int(retry) if retry else None))
            if retry and honour_retry:
                stop.wait(int(retry) / 1000)
        index += 1


def run_phase(address: str, callers: dict[str, tuple[str, int]], duration_s: float, honour_retry: bool) -> dict:
    """callers: name -> (key, threads). Returns per-caller figures."""
    texts = chat_messages(512)
    stop = threading.Event()
    sinks = {name: [] for name in callers}
    with grpc.insecure_channel(address) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        threads = [threading.Thread(target=_caller_loop, args=(stub, key, texts, stop, sinks[name], honour_retry))
                   for name, (key, count) in callers.items() for _ in range(count)]
        for thread in threads:
            thread.start()
        time.sleep(duration_s)
        stop.set()
        for thread in threads:
            thread.join(DEADLINE_S + 5)
    return {name: _summary(sink, duration_s) for name, sink in sinks.items()}


def _summary(sink: list, duration_s: float) -> dict:
    ok = sorted(seconds for code, seconds, _ in sink if code == "OK")
    refused = [retry for code, _, retry in sink if code == "RESOURCE_EXHAUSTED"]
    other = sorted({code for code, _, _ in sink} - {"OK", "RESOURCE_EXHAUSTED"})

    def pct(q: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(q * len(ok)))] * 1e3, 1) if ok else None

    return {"ok_per_s": round(len(ok) / duration_s, 1), "refused": len(refused),
            "mean_retry_after_ms": round(statistics.mean(r for r in refused if r) if any(refused) else 0, 1),
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "other_codes": other}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.fair_share", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--duration-s", type=float, default=15.0)
    parser.add_argument("--steady-threads", type=int, default=4)
    parser.add_argument("--steady-concurrency", type=int, default=8)
    parser.add_argument("--greedy-threads", type=int, default=24)
    parser.add_argument("--greedy-concurrency", type=int, default=4)
    parser.add_argument("--greedy-rate-per-s", type=float, default=1000.0)
    parser.add_argument("--ignore-retry-after", action="store_true",
                        help="callers call again at once when turned away (by default they wait retry-after-ms)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "fair_share.json"))
    args = parser.parse_args(argv)
    from loadtest.run_load import LoadOptions, local_stack

    steady, greedy = generate_key(), generate_key()
    work = Path(tempfile.mkdtemp(prefix="fair_share-"))
    keys_file = work / "callers.toml"
    keys_file.write_text(entry_toml(CallerEntry("steady", hash_key(steady), rate_per_s=1000, burst=1000,
                                                concurrency=args.steady_concurrency))
                         + entry_toml(CallerEntry("greedy", hash_key(greedy), rate_per_s=args.greedy_rate_per_s,
                                                  burst=max(1, int(args.greedy_rate_per_s)),
                                                  concurrency=args.greedy_concurrency)))
    options = LoadOptions(users=(1,), step_s=5, text_weight=1, batch_weight=0, batch_size=1, voice_weight=0,
                          locust_processes=1, raw_dir=work)
    phases = {}
    with local_stack(Path(args.model_repository), options, ["--api-keys-file", str(keys_file)], "") as (address, _):
        honour = not args.ignore_retry_after
        run_phase(address, {"steady": (steady, 2)}, 3.0, honour)  # warm-up
        phases["steady alone"] = run_phase(address, {"steady": (steady, args.steady_threads)}, args.duration_s, honour)
        phases["steady + greedy"] = run_phase(address, {"steady": (steady, args.steady_threads),
                                                        "greedy": (greedy, args.greedy_threads)}, args.duration_s, honour)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.node(),
              "settings": vars(args), "phases": phases}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'phase':<18} {'caller':<8} {'ok/s':>7} {'refused':>8} {'retry ms':>9} {'p50':>7} {'p90':>7} {'p99':>7}")
    for phase, callers in phases.items():
        for name, s in callers.items():
            print(f"{phase:<18} {name:<8} {s['ok_per_s']:>7} {s['refused']:>8} {s['mean_retry_after_ms']:>9} "
                  f"{s['p50_ms']!s:>7} {s['p90_ms']!s:>7} {s['p99_ms']!s:>7} {' '.join(s['other_codes'])}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
