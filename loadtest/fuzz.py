"""Property-based fuzzing of every RPC on the public port (Moderation, health, reflection) and of
the audio decoder (issue 15, part 7).

Cases come from hypothesis (loadtest/fuzz_cases.py) and go to a real in-process gateway
(loadtest/fuzz_harness.py: real servicer, parsers, error boundary, audio decoder, stream limits
and VAD; stand-ins only for the classifier and Whisper). Every call must end with a status code
that is not INTERNAL, the decoder may raise only asr's AudioError, and the gateway must still
answer a normal call at the end. Not CI-timed; CI runs a short seeded corpus
(tests/unit/test_fuzz_corpus.py).

    python -m loadtest.fuzz                       # 10,000 RPC cases + 2,000 decoder cases, seed 15
    python -m loadtest.fuzz --cases 500 --decoder-cases 100 --seed 1
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

RESULTS_DIR = Path(__file__).parent / "results"
EXAMPLES_KEPT = 5  # failing cases written to the report, per kind
RSS_EVERY = 500  # cases between RSS samples: the curve shows whether memory stays bounded


@dataclass
class Tally:
    codes: Counter = field(default_factory=Counter)  # (family, method, code) -> count
    decoder: Counter = field(default_factory=Counter)  # exception class (or "ok") -> count
    internal: list = field(default_factory=list)
    crashes: list = field(default_factory=list)
    rss_mb: list = field(default_factory=list)  # (cases so far, RSS) every RSS_EVERY cases

    @property
    def rpc_cases(self) -> int:
        return sum(self.codes.values())

    @property
    def internal_count(self) -> int:
        return sum(n for (_, _, code), n in self.codes.items() if code == "INTERNAL")


def drive(strategy, examples: int, body, seed_value: int, derandomize: bool = False) -> None:
    """Runs `body` on `examples` cases drawn from `strategy`; reproducible for a seed."""
    @settings(max_examples=examples, database=None, deadline=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(strategy)
    def run(case):
        body(case)

    (run if derandomize else seed(seed_value)(run))()


def rpc_body(gateway, tally: Tally):
    def body(case) -> None:
        try:
            code, details = gateway.call(case.method, case.payload)
        except Exception as err:  # anything but a status is a crash of the harness or the client
            tally.crashes.append(_example(case, f"{type(err).__name__}: {err}"))
            return
        if not gateway.alive():
            tally.crashes.append(_example(case, f"the gateway process died ({code})"))
            raise SystemExit("the gateway process died")
        tally.codes[(case.family, case.method, code)] += 1
        if tally.rpc_cases % RSS_EVERY == 0:
            tally.rss_mb.append((tally.rpc_cases, round(gateway_rss_mb(gateway), 1)))
        if code == "INTERNAL" and len(tally.internal) < EXAMPLES_KEPT:
            tally.internal.append(_example(case, details))
    return body


def decoder_body(tally: Tally):
    from asr import AudioError, AudioLimits, decode_audio

    limits = AudioLimits(max_audio_s=30.0)

    def body(drawn) -> None:
        data, hint = drawn
        try:
            decode_audio(data, format_hint=hint, limits=limits)
            tally.decoder["ok"] += 1
        except AudioError as err:
            tally.decoder[type(err).__name__] += 1
        except Exception as err:
            tally.decoder["crash:" + type(err).__name__] += 1
            if len(tally.crashes) < EXAMPLES_KEPT:
                tally.crashes.append({"target": "decode_audio", "hint": hint, "bytes": len(data),
                                      "head": data[:32].hex(), "error": f"{type(err).__name__}: {err}"})
    return body


def _example(case, details: str) -> dict:
    payload = case.payload if isinstance(case.payload, bytes) else b"|".join(case.payload)
    return {"family": case.family, "method": case.method, "bytes": len(payload), "head": payload[:48].hex(),
            "details": details[:200]}


def gateway_rss_mb(gateway) -> float:
    """The gateway's resident memory: its own process's when it has one."""
    return gateway.memory_mb()[0] if hasattr(gateway, "memory_mb") else rss_mb()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_fuzz(cases: int, decoder_cases: int, seed_value: int, derandomize: bool = False, gateway=None) -> dict:
    """Fuzzes `gateway` (default: a GatewayProcess of its own); returns the report (see `summary`)."""
    from hypothesis import strategies as st

    from loadtest import fuzz_cases
    from loadtest.fuzz_harness import GatewayProcess

    tally, started = Tally(), time.perf_counter()
    own = gateway is None
    gateway = GatewayProcess() if own else gateway
    tally.rss_mb.append((0, round(gateway_rss_mb(gateway), 1)))  # the gateway started, its models loaded
    try:
        drive(fuzz_cases.rpc_cases(), cases, rpc_body(gateway, tally), seed_value, derandomize)
        healthy = gateway.alive() and gateway.healthy()
        peak = gateway.memory_mb()[1] if hasattr(gateway, "memory_mb") else None
    finally:
        if own:
            gateway.close()
    if decoder_cases:
        hints = st.sampled_from(("", "", "wav", "ogg", "mp3", "webm", "m4a", "flac"))
        drive(st.tuples(fuzz_cases.audio_bytes, hints), decoder_cases, decoder_body(tally), seed_value, derandomize)
    return summary(tally, healthy, time.perf_counter() - started, peak, seed_value)


def summary(tally: Tally, healthy: bool, elapsed_s: float, gateway_peak_mb: float | None, seed_value: int) -> dict:
    by_code, by_method = Counter(), {}
    by_family = {}
    for (family, method, code), n in tally.codes.items():
        by_code[code] += n
        by_method.setdefault(method, Counter())[code] += n
        by_family.setdefault(family, Counter())[code] += n
    return {
        "seed": seed_value, "rpc_cases": tally.rpc_cases, "decoder_cases": sum(tally.decoder.values()),
        "status_codes": dict(by_code.most_common()),
        "by_method": {m: dict(c.most_common()) for m, c in sorted(by_method.items())},
        "by_family": {f: dict(c.most_common()) for f, c in sorted(by_family.items())},
        "decoder_outcomes": dict(tally.decoder.most_common()),
        "internal": tally.internal_count, "internal_examples": tally.internal,
        "crashes": len(tally.crashes), "crash_examples": tally.crashes[:EXAMPLES_KEPT],
        "healthy_after": healthy, "elapsed_s": round(elapsed_s, 1),
        "gateway_rss_by_cases_mb": tally.rss_mb,
        # the kernel updates VmHWM lazily: a sample may read a little above it
        "gateway_max_rss_mb": None if gateway_peak_mb is None else round(
            max([gateway_peak_mb, *(rss for _, rss in tally.rss_mb)]), 1),
        "runner_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def markdown(report: dict) -> str:
    lines = [f"# Fuzz report ({report['date']})", "", f"Command: `{report['command']}`", "",
             f"- RPC cases: {report['rpc_cases']}; decoder cases: {report['decoder_cases']}; seed {report['seed']}",
             f"- INTERNAL: {report['internal']}; crashes: {report['crashes']}; a normal call answered after: "
             f"{report['healthy_after']}",
             f"- Gateway RSS: {_rss_line(report['gateway_rss_by_cases_mb'])}; its maximum "
             f"{report['gateway_max_rss_mb']} MB (the runner, with hypothesis: {report['runner_max_rss_mb']} MB)",
             f"- {report['elapsed_s']} s", "",
             "| method | " + " | ".join(report["status_codes"]) + " |",
             "|---|" + "---|" * len(report["status_codes"])]
    for method, codes in report["by_method"].items():
        lines.append(f"| {method} | " + " | ".join(str(codes.get(c, 0)) for c in report["status_codes"]) + " |")
    lines += ["", "By family: " + "; ".join(f"{f} {sum(c.values())}" for f, c in report["by_family"].items()),
              "", "Decoder outcomes: " + ", ".join(f"{k} {v}" for k, v in report["decoder_outcomes"].items()), ""]
    return "\n".join(lines)


def _rss_line(samples) -> str:
    if not samples:
        return "no samples"
    first, last = samples[0], samples[-1]
    peak = max(samples, key=lambda sample: sample[1])
    return (f"{first[1]} MB with the gateway up, {last[1]} MB after {last[0]} RPC cases "
            f"(highest sample {peak[1]} MB at {peak[0]})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="loadtest.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000, help="RPC cases")
    parser.add_argument("--decoder-cases", type=int, default=2_000, help="cases for asr.decode_audio alone")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "fuzz_report")
    args = parser.parse_args(argv)
    report = run_fuzz(args.cases, args.decoder_cases, args.seed)
    shown = sys.argv[1:] if argv is None else argv
    report = {"command": " ".join(["python -m loadtest.fuzz", *shown]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 0 if report["internal"] == 0 and report["crashes"] == 0 and report["healthy_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
