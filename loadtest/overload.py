"""Past saturation: does the gateway keep its throughput and turn the excess away quickly?

    python -m loadtest.overload                          # Triton + gateway on free ports
    python -m loadtest.overload --rates 200,400,800,2000,4000 --step-s 15
    python -m loadtest.overload --host 127.0.0.1:50051   # a gateway that is already running

Each step runs processes of loadtest.open_loop (`--generators`, or by default one per 2,000 calls/s:
one costs less CPU than two at the same rate, and one keeps to its schedule up to about 2,000/s),
which send single ClassifyText calls on a fixed schedule (rate / generators each, 2 s deadline)
without waiting for answers. Per
step it reports the rate actually offered (a generator that falls behind offers less than its
target), answered calls/s, and count and latency percentiles per status code: OK, RESOURCE_EXHAUSTED
(turned away), DEADLINE_EXCEEDED and UNAVAILABLE. By default everything shares the same cores,
generators included, so past about 2x the generators take CPU the server would otherwise have:
for figures past that, run the generators on another machine with `--host`
(docs/decisions/0002-generators-on-other-cores.md). Writes loadtest/results/overload.{md,json,png}
(mixed_overload.* with --voice-share).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtest import plots
from loadtest.open_loop import DEADLINE_S, VOICE_DEADLINE_S, CodeStats, StepResult, merge

RESULTS_DIR = Path(__file__).with_name("results")
REPO_DIR = Path(__file__).resolve().parents[1]
GENERATOR_RATE = 2000.0  # calls/s one open-loop process keeps to schedule (docs/decisions/0001-open-loop-generators.md)
CODES = ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAVAILABLE")


@dataclass
class OverloadReport:
    """One run of this benchmark: how it was started and one StepResult per rate."""

    command: str
    started: str  # ISO 8601, UTC
    cpus: int
    python: str
    generators: int  # per step; 0: one per GENERATOR_RATE calls/s
    step_s: float
    voice_share: float = 0.0
    host: str = ""  # the gateway given by --host; "": the stack started here, on the generators' cores
    steps: list[StepResult] = field(default_factory=list)


def generators_for(rate: float) -> int:
    """One generator per GENERATOR_RATE calls/s: fewer processes cost the shared cores less."""
    return max(1, math.ceil(rate / GENERATOR_RATE))


def run_step(address: str, rate: float, step_s: float, generators: int, work_dir: Path,
             voice_share: float = 0.0) -> StepResult:
    """One step: the generators' merged results (loadtest.open_loop.merge).

    Each generator runs in a session of its own, as a client on another machine would: under
    autogroup scheduling, generators in the gateway's session would share its CPU weight
    (docs/decisions/0001-open-loop-generators.md)."""
    outputs = [work_dir / f"rate{rate:g}-{index}.json" for index in range(generators)]
    processes: list[subprocess.Popen] = []
    try:
        processes += [subprocess.Popen([sys.executable, "-m", "loadtest.open_loop", "--address", address,
                                        "--rate", str(rate / generators), "--seconds", str(step_s),
                                        "--deadline-s", str(DEADLINE_S), "--voice-share", str(voice_share),
                                        "--out", str(out)],
                                       cwd=REPO_DIR, start_new_session=True)
                      for out in outputs]
        for process in processes:
            if process.wait(timeout=step_s + 120) != 0:
                raise RuntimeError(f"a load generator exited with {process.returncode}")
    finally:
        for process in processes:  # after a failure, none left sending
            if process.poll() is None:
                process.kill()
                process.wait()
    step = merge([json.loads(out.read_text()) for out in outputs])
    step.generators = generators
    return step


def local_stack(model_repository: Path, log_dir: Path, gateway_argv: list[str], voice: bool = False):
    """Triton + the gateway (in this process, as loadtest.run_load runs it) on free ports."""
    from loadtest.run_load import LoadOptions
    from loadtest.run_load import local_stack as stack

    options = LoadOptions(users=(1,), step_s=5, text_weight=1, batch_weight=0, batch_size=1, voice_weight=int(voice),
                          locust_processes=1, raw_dir=log_dir)
    return stack(model_repository, options, gateway_argv, "")


def write_report(report: OverloadReport, out_dir: Path) -> None:
    """overload.{md,json,png}; mixed_overload.* when some calls were voice clips."""
    stem = report_stem(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    lines = [f"# Overload: open-loop {_calls(report)}", "",
             f"Command: `{report.command}`", "",
             f"Started {report.started}; {report.cpus} CPUs; {_generators(report)}, each in a session of its own, "
             f"{_placement(report)}; {report.step_s} s per step; deadline {DEADLINE_S:g} s"
             + (f" (voice {VOICE_DEADLINE_S:g} s)." if report.voice_share else "."), ""]
    lines += _table("Text calls" if report.voice_share else "", [(step, step.codes) for step in report.steps])
    if report.voice_share:
        lines += [""] + _table("Voice calls (~5 s espeak-ng clips)",
                               [(step, step.voice_codes or {}) for step in report.steps])
    other = sorted({code for step in report.steps for code in step.codes} - set(CODES))
    if other:
        lines += ["", f"Other status codes seen: {', '.join(other)} (counts in {stem}.json)."]
    lines += ["", "Latencies are timed on the generators' clocks from the moment each call was sent. The send "
              "lag says how far behind schedule a generator was: where it is large, the generators' own event "
              "loops were short of CPU, and their answers may also have waited there before being timed."]
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _plot(report, out_dir / f"{stem}.png")


def report_stem(report: OverloadReport) -> str:
    return ("mixed_" if report.voice_share else "") + "overload"


def _generators(report: OverloadReport) -> str:
    if report.generators:
        return f"{report.generators} generator process(es)"
    return f"one generator process per {GENERATOR_RATE:,.0f} calls/s"


def _placement(report: OverloadReport) -> str:
    return f"sending to {report.host}" if report.host else "on the same cores as the stack"


def _calls(report: OverloadReport) -> str:
    return (f"mixed load, {100 * report.voice_share:g}% of calls ClassifyVoice, the rest ClassifyText"
            if report.voice_share else "ClassifyText past saturation")


def _table(title: str, rows: list[tuple[StepResult, dict[str, CodeStats]]]) -> list[str]:
    lines = [f"{title}:", ""] if title else []
    lines += ["| target req/s | offered req/s | OK/s | OK p50 / p99 ms | RESOURCE_EXHAUSTED/s | rejected p50 / p99 ms "
              "| DEADLINE_EXCEEDED | UNAVAILABLE | generator send lag p99 ms |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for step, codes in rows:
        ok, rejected = codes.get("OK"), codes.get("RESOURCE_EXHAUSTED")
        lines.append(
            f"| {step.target_rate:g} | {step.offered_rate:.0f} | {ok.per_s if ok else 0:.0f} | "
            f"{_pair(ok)} | {rejected.per_s if rejected else 0:.0f} | {_pair(rejected)} | "
            f"{_count(codes, 'DEADLINE_EXCEEDED')} | {_count(codes, 'UNAVAILABLE')} | {_number(step.send_lag_p99_ms)} |")
    return lines


def _count(codes: dict[str, CodeStats], code: str) -> int:
    return codes[code].count if code in codes else 0


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pair(code: CodeStats | None) -> str:
    return f"{code.p50_ms:.0f} / {code.p99_ms:.0f}" if code else "-"


def _plot(report: OverloadReport, path: Path) -> None:
    offered = [step.offered_rate for step in report.steps]
    figure, rate_axis, latency_axis = plots.panels(2)
    kinds = [("text " if report.voice_share else "", [step.codes for step in report.steps])]
    if report.voice_share:
        kinds.append(("voice ", [step.voice_codes or {} for step in report.steps]))
    for kind, per_step in kinds:
        for code in ("OK", "RESOURCE_EXHAUSTED"):
            stats = [codes.get(code) for codes in per_step]
            rate_axis.plot(offered, [value.per_s if value else 0 for value in stats], "o-", label=kind + code)
            latency_axis.plot(offered, [value.p99_ms if value else float("nan") for value in stats], "o-",
                              label=f"{kind}{code} p99")
    rate_axis.plot(offered, offered, ":", color="grey", label="offered")
    rate_axis.set(xlabel="offered req/s", ylabel="answers/s", title="answers per second by status")
    latency_axis.set(xlabel="offered req/s", ylabel="ms", yscale="log", title="p99 latency by status")
    plots.save(figure, path, rate_axis, latency_axis)


def _print_step(step: StepResult) -> None:
    print(f"target {step.target_rate:g}/s, offered {step.offered_rate:.0f}/s: {_codes_line(step.codes)}", flush=True)
    if step.voice_codes:
        print(f"  voice: {_codes_line(step.voice_codes)}", flush=True)


def _codes_line(codes: dict[str, CodeStats]) -> str:
    return ", ".join(f"{code} {value.count} (p50 {value.p50_ms:.0f} / p99 {value.p99_ms:.0f} ms)"
                     for code, value in codes.items())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.overload", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="200,400,800,2000,4000", help="target req/s, one step each")
    parser.add_argument("--step-s", type=float, default=15.0)
    parser.add_argument("--generators", type=int, default=0,
                        help="open-loop generator processes per step; 0 (default): one per 2,000 calls/s")
    parser.add_argument("--host", help="an already running gateway host:port; default: start one")
    parser.add_argument("--model-repository", type=Path, default=REPO_DIR / "model_repository")
    parser.add_argument("--gateway-args", default="", help='flags for the gateway started here, e.g. "--max-in-flight 48"')
    parser.add_argument("--voice-share", type=float, default=0.0,
                        help="fraction of the calls sent as ~5 s ClassifyVoice clips (mixed load), e.g. 0.1")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    rates = [float(value) for value in args.rates.split(",")]
    if args.generators < 0 or args.step_s <= 0 or min(rates) <= 0:
        parser.error("--step-s and every rate must be positive, --generators at least 0")
    if not 0 <= args.voice_share <= 1:
        parser.error("--voice-share must be in 0..1")
    # The generators have sessions of their own, so a SIGTERM or SIGHUP to this process group
    # would miss them: exit through the cleanup that stops them (run_step's finally).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    report = OverloadReport(command="python -m loadtest.overload " + " ".join(argv if argv is not None else sys.argv[1:]),
                            started=datetime.now(UTC).isoformat(timespec="seconds"), cpus=os.cpu_count() or 1,
                            python=platform.python_version(), generators=args.generators, step_s=args.step_s,
                            voice_share=args.voice_share, host=args.host or "")
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        stack = nullcontext((args.host, None)) if args.host else local_stack(args.model_repository, work_dir,
                                                                                  shlex.split(args.gateway_args),
                                                                                  voice=args.voice_share > 0)
        with stack as (address, _metrics_url):
            from loadtest.run_load import wait_serving, warm_up

            wait_serving(address)
            warm_up(address)
            for rate in rates:
                step = run_step(address, rate, args.step_s, args.generators or generators_for(rate), work_dir,
                                args.voice_share)
                report.steps.append(step)
                _print_step(step)
    write_report(report, args.out_dir)
    print(f"wrote {args.out_dir}/{report_stem(report)}.{{md,json,png}}")


if __name__ == "__main__":
    main()
