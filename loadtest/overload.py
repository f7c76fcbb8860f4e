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
generators included, so past about 2x the generators take CPU the server would otherwise have.
`--generator-cpus 1` runs the generators on CPU 1 alone and the stack on the other CPUs
(loadtest/affinity.py): a lower peak, but what happens past it is the server's own doing.
`--flood` sends all but `--probe-rate` calls/s of each step with h2load (loadtest/flood.py), a C
client that costs the shared cores a seventh of what the Python generators do; the Python probe
still times each status code, and Triton's counters say how many messages were classified.
Writes loadtest/results/overload.{md,json,png} (overload_pinned.* with --generator-cpus,
overload_flood.* with --flood).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path

from loadtest import affinity, cpu_share, plots, triton_metrics
from loadtest.flood import FLOOD_TEXT, Flood, classify_text_flood, h2load_path
from loadtest.open_loop import DEADLINE_S, VOICE_DEADLINE_S, merge

RESULTS_DIR = Path(__file__).with_name("results")
REPO_DIR = Path(__file__).resolve().parents[1]
GENERATOR_RATE = 2000.0  # calls/s one open-loop process keeps to schedule on these cores
CODES = ("OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAVAILABLE")
PROBE_RATE = 100.0  # calls/s the Python probe sends in a --flood step: 1,500 timed calls per 15 s step
GENERATOR_START_S = 3.0  # time a Python generator is given to start before its first call (with --flood)


def generators_for(rate: float) -> int:
    """One generator per 2,000 calls/s. At 800 calls/s on 2 cores, 1, 2 and 4 generators used 0.40,
    0.53 and 0.67 cores, and the gateway answered 257, 228 and 200 calls/s."""
    return max(1, math.ceil(rate / GENERATOR_RATE))


def run_step(address: str, rate: float, step_s: float, generators: int, work_dir: Path,
             voice_share: float = 0.0, generator_cpus: str = "", flood_rate: float = 0.0,
             metrics_url: str | None = None, model: str = "toxicity") -> dict:
    """One step: the generators' merged results and the cores each part used; with flood_rate,
    that many of the `rate` calls/s come from h2load instead; with metrics_url, the messages
    Triton classified.

    Each generator runs in a session of its own, as a client on another machine would. Under
    autogroup scheduling (asr/priority.py) the kernel shares the CPU between sessions first;
    generators in the runner's session, which is also the gateway's, shared one group's weight with
    the gateway while Triton had a group of its own. In two alternated pairs of runs, sessions of
    their own raised the calls answered at 2,000/s from 155-196 to 207-209/s and lowered the p99 of
    rejections there from 163-347 to 49-66 ms."""
    outputs = [work_dir / f"rate{rate:g}-{index}.json" for index in range(generators)]
    probe_rate = rate - flood_rate
    if probe_rate <= 0:
        raise ValueError("the flood must leave some calls to the Python generators")
    # With a flood, the Python generators start sending at a set time, once their interpreters are
    # up, and h2load (which connects in milliseconds) starts then too: both cover the same window.
    start_at = time.time() + GENERATOR_START_S if flood_rate else 0.0
    processes: list[subprocess.Popen] = []
    flood = None
    try:
        counters = before = None
        if not flood_rate:
            counters, before = _counters(metrics_url, model), cpu_share.snapshot()
        processes += [subprocess.Popen([sys.executable, "-m", "loadtest.open_loop", "--address", address,
                                        "--rate", str(probe_rate / generators), "--seconds", str(step_s),
                                        "--deadline-s", str(DEADLINE_S), "--voice-share", str(voice_share),
                                        "--cpus", generator_cpus, "--start-at", str(start_at), "--out", str(out)],
                                       cwd=REPO_DIR, start_new_session=True)
                      for out in outputs]
        if flood_rate:
            time.sleep(max(0.0, start_at - time.time()))
            counters, before = _counters(metrics_url, model), cpu_share.snapshot()
            flood = _start_flood(address, flood_rate, step_s, work_dir, generator_cpus)
        for process in processes:
            if process.wait(timeout=step_s + 120) != 0:
                raise RuntimeError(f"a load generator exited with {process.returncode}")
        flooded = flood.finish(timeout_s=120) if flood else None
    finally:
        for process in processes:  # after a failure, none left sending
            if process.poll() is None:
                process.kill()
                process.wait()
        if flood:
            flood.stop()
    after = cpu_share.snapshot()
    step = merge([json.loads(out.read_text()) for out in outputs])
    step["cpu_cores"] = cpu_share.cores_used(before, after)
    step["generators"] = generators
    if flooded:
        step["flood"] = flooded.as_dict()
        step["target_rate"] = rate
        step["offered_rate"] += step["flood"]["rate"]
    if counters is not None:
        classified = triton_metrics.step_delta(counters, _counters(metrics_url, model)).sequences
        step["classified_per_s"] = classified / step_s
    return step


def _counters(metrics_url: str | None, model: str) -> dict[str, float] | None:
    return triton_metrics.scrape(metrics_url, model) if metrics_url else None


def _start_flood(address: str, rate: float, seconds: float, work_dir: Path, generator_cpus: str) -> Flood:
    cpus = affinity.parse_cpus(generator_cpus) if generator_cpus else None
    return classify_text_flood(address, rate, seconds, work_dir, cpus, DEADLINE_S)


def local_stack(model_repository: Path, log_dir: Path, gateway_argv: list[str], voice: bool = False):
    """Triton + the gateway (in this process, as loadtest.run_load runs it) on free ports."""
    from loadtest.run_load import LoadOptions
    from loadtest.run_load import local_stack as stack

    options = LoadOptions(users=(1,), step_s=5, text_weight=1, batch_weight=0, batch_size=1, voice_weight=int(voice),
                          locust_processes=1, raw_dir=log_dir)
    return stack(model_repository, options, gateway_argv, "")


def write_report(report: dict, out_dir: Path) -> None:
    """overload.{md,json,png}; mixed_overload.* when some calls were voice clips; *_pinned.* with
    the generators on CPUs of their own."""
    stem = report_stem(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Overload: open-loop {_calls(report)}", "",
             f"Command: `{report['command']}`", "",
             f"Started {report['started']}; {report['cpus']} CPUs; {_generators(report)} "
             f"{_placement(report)}; {report['step_s']} s per step; deadline {DEADLINE_S:g} s"
             + (f" (voice {VOICE_DEADLINE_S:g} s)." if report.get("voice_share") else "."), ""]
    lines += _table("Text calls" if report.get("voice_share") else "", report["steps"], "codes")
    if report.get("voice_share"):
        lines += [""] + _table("Voice calls (~5 s espeak-ng clips)", report["steps"], "voice_codes")
    other = sorted({code for step in report["steps"] for code in step["codes"]} - set(CODES))
    if other:
        lines += ["", f"Other status codes seen: {', '.join(other)} (counts in {stem}.json)."]
    if report.get("flood"):
        lines += ["", "h2load cannot read gRPC's status, so the per-code columns are the probe's calls: a sample of "
                  "the same traffic, timed per status. Classified/s counts the messages Triton ran the model "
                  "on (its nv_inference_count) during the step, from probe and flood together, over the step's "
                  "length. h2load's rate is the calls it sent over the step's length."]
    lines += ["", "Latencies are timed on the generators' clocks from the moment each call was sent. The send "
              "lag says how far behind schedule a generator was: where it is large, the generators' own event "
              "loops were short of CPU, and their answers may also have waited there before being timed.", "",
              f"CPU cores: the average number of the {report['cpus']} cores each part used during the step "
              "(loadtest/cpu_share.py); the gateway is the runner's own process, so it is only meaningful "
              "when the runner started the stack."]
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _plot(report, out_dir / f"{stem}.png")


def report_stem(report: dict) -> str:
    return (("mixed_" if report.get("voice_share") else "") + "overload"
            + ("_flood" if report.get("flood") else "") + ("_pinned" if report.get("generator_cpus") else ""))


def _generators(report: dict) -> str:
    if report.get("flood"):
        return (f"a Python probe of up to {report['probe_rate']:g} calls/s and h2load for the rest of each step's "
                f"calls (one chat message, {FLOOD_TEXT!r}), both")
    if report["generators"]:
        return f"{report['generators']} generator process(es)"
    return f"one generator process per {GENERATOR_RATE:,.0f} calls/s"


def _placement(report: dict) -> str:
    if report.get("generator_cpus"):
        return (f"on CPU {report['generator_cpus']} only, the stack (gateway, Triton, Whisper) on CPU "
                f"{report['server_cpus']} only")
    return "on the same cores as the stack, each in a session of its own (as a client on another machine)"


def _calls(report: dict) -> str:
    share = report.get("voice_share")
    return (f"mixed load, {100 * share:g}% of calls ClassifyVoice, the rest ClassifyText" if share
            else "ClassifyText past saturation")


def _table(title: str, steps: list[dict], key: str) -> list[str]:
    lines = [f"{title}:", ""] if title else []
    first = key == "codes"  # the step-wide columns go in the first table only
    flood = first and any("flood" in step for step in steps)
    classified = first and any("classified_per_s" in step for step in steps)
    probe = "probe " if flood else ""
    lines += [f"| target req/s (all calls) | offered req/s |{' h2load req/s |' if flood else ''}"
              f"{' classified/s (Triton) |' if classified else ''} {probe}OK/s | {probe}OK p50 / p99 ms | "
              f"{probe}RESOURCE_EXHAUSTED/s | {probe}rejected p50 / p99 ms | {probe}DEADLINE_EXCEEDED | "
              f"{probe}UNAVAILABLE | generator send lag p99 ms |"
              + (" CPU cores: generators / gateway / Triton / Whisper |" if first else ""),
              "|---:|---:|" + "---:|" * (flood + classified) + "---:|---:|---:|---:|---:|---:|---:|"
              + ("---|" if first else "")]
    for step in steps:
        codes = step.get(key, {})
        ok, rejected = codes.get("OK"), codes.get("RESOURCE_EXHAUSTED")
        lines.append(
            f"| {step['target_rate']:g} | {step['offered_rate']:.0f} | "
            + (f"{step.get('flood', {}).get('rate', 0):.0f} | " if flood else "")
            + (f"{_number(step.get('classified_per_s'))} | " if classified else "")
            + f"{ok['per_s'] if ok else 0:.0f} | "
            f"{_pair(ok)} | {rejected['per_s'] if rejected else 0:.0f} | {_pair(rejected)} | "
            f"{codes.get('DEADLINE_EXCEEDED', {}).get('count', 0)} | {codes.get('UNAVAILABLE', {}).get('count', 0)} | "
            f"{_number(step.get('send_lag_p99_ms'))} |" + (f" {_cores(step.get('cpu_cores'))} |" if first else ""))
    return lines


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _cores(cores: dict | None) -> str:
    return " / ".join(f"{cores[role]:.2f}" for role in cpu_share.ROLES) if cores else "-"


def _pair(code: dict | None) -> str:
    return f"{code['p50_ms']:.0f} / {code['p99_ms']:.0f}" if code else "-"


def _plot(report: dict, path: Path) -> None:
    steps = report["steps"]
    offered = [step["offered_rate"] for step in steps]
    figure, rate_axis, latency_axis = plots.two_panels()
    kinds = [("codes", "text " if report.get("voice_share") else "probe " if report.get("flood") else "")]
    if report.get("voice_share"):
        kinds.append(("voice_codes", "voice "))
    for key, kind in kinds:
        for code in ("OK", "RESOURCE_EXHAUSTED"):
            per_code = [step.get(key, {}).get(code, {}) for step in steps]
            rate_axis.plot(offered, [value.get("per_s", 0) for value in per_code], "o-", label=kind + code)
            latency_axis.plot(offered, [value.get("p99_ms", float("nan")) for value in per_code], "o-",
                              label=f"{kind}{code} p99")
    if any("classified_per_s" in step for step in steps):
        rate_axis.plot(offered, [step.get("classified_per_s", float("nan")) for step in steps], "s-",
                       label="classified (Triton)")
    rate_axis.plot(offered, offered, ":", color="grey", label="offered")
    rate_axis.set(xlabel="offered req/s", ylabel="answers/s", title="answers per second by status")
    latency_axis.set(xlabel="offered req/s", ylabel="ms", yscale="log", title="p99 latency by status")
    plots.save(figure, path, rate_axis, latency_axis)


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
    parser.add_argument("--generator-cpus", default="",
                        help="CPUs for the generators only, e.g. 1; the stack started here gets the others "
                             "(loadtest/affinity.py). Default: all share every CPU")
    parser.add_argument("--flood", action="store_true",
                        help="send all but --probe-rate calls/s of each step with h2load (apt: nghttp2-client)")
    parser.add_argument("--probe-rate", type=float, default=PROBE_RATE,
                        help="with --flood: calls/s the Python generator still sends and times per status code")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    rates = [float(value) for value in args.rates.split(",")]
    if args.generators < 0 or args.step_s <= 0 or min(rates) <= 0:
        parser.error("--step-s and every rate must be positive, --generators at least 0")
    if not 0 <= args.voice_share <= 1:
        parser.error("--voice-share must be in 0..1")
    if args.flood:
        if args.voice_share:
            parser.error("--flood sends text only; leave out --voice-share")
        if args.probe_rate <= 0:
            parser.error("--probe-rate must be positive")
        try:
            h2load_path()
        except FileNotFoundError as err:
            parser.error(str(err))
    server_cpus = None
    if args.generator_cpus:
        if args.host:
            parser.error("--generator-cpus pins the stack started here; it cannot pin one given by --host")
        try:
            server_cpus = affinity.other_cpus(affinity.parse_cpus(args.generator_cpus))
        except ValueError as err:
            parser.error(f"--generator-cpus: {err}")
        affinity.pin_process(server_cpus)  # before the stack starts: Triton and Whisper inherit it
    # The generators have sessions of their own, so a SIGTERM or SIGHUP to this process group
    # would miss them: exit through the cleanup that stops them (run_step's finally).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    report = {"command": "python -m loadtest.overload " + " ".join(argv if argv is not None else sys.argv[1:]),
              "started": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "python": platform.python_version(), "generators": args.generators, "step_s": args.step_s,
              "voice_share": args.voice_share, "generator_cpus": args.generator_cpus,
              "flood": args.flood, "probe_rate": args.probe_rate if args.flood else None,
              "server_cpus": ",".join(map(str, sorted(server_cpus))) if server_cpus else "",
              "steps": []}
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        stack = nullcontext((args.host, None)) if args.host else local_stack(args.model_repository, work_dir,
                                                                                  shlex.split(args.gateway_args),
                                                                                  voice=args.voice_share > 0)
        with stack as (address, metrics_url):
            from loadtest.run_load import wait_serving, warm_up

            wait_serving(address)
            warm_up(address)
            for rate in rates:
                probe_rate = min(rate, args.probe_rate) if args.flood else rate
                step = run_step(address, rate, args.step_s, args.generators or generators_for(probe_rate), work_dir,
                                args.voice_share, args.generator_cpus, flood_rate=rate - probe_rate,
                                metrics_url=metrics_url)
                report["steps"].append(step)
                codes = ", ".join(f"{code} {value['count']} (p50 {value['p50_ms']:.0f} / p99 {value['p99_ms']:.0f} ms)"
                                  for code, value in step["codes"].items())
                classified = (f", classified {step['classified_per_s']:.0f}/s" if "classified_per_s" in step else "")
                print(f"target {rate:g}/s, offered {step['offered_rate']:.0f}/s{classified}: {codes}", flush=True)
                if "voice_codes" in step:
                    print("  voice: " + ", ".join(f"{code} {value['count']} (p50 {value['p50_ms']:.0f} / p99 "
                                                  f"{value['p99_ms']:.0f} ms)" for code, value in step["voice_codes"].items()),
                          flush=True)
    write_report(report, args.out_dir)
    print(f"wrote {args.out_dir}/{report_stem(report)}.{{md,json,png}}")


if __name__ == "__main__":
    main()
