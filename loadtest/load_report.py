"""Step-load results: the data classes, and the markdown summary, JSON file and PNGs made from them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from loadtest import plots
from loadtest.locust_stats import LocustRun, TaskStats
from loadtest.triton_metrics import TritonStep

TEXT_TASK = "ClassifyText"
BATCH_TASK = "ClassifyTextBatch"
TASK_ORDER = (TEXT_TASK, BATCH_TASK, "ClassifyVoice")
PLOT_FILES = {"throughput": "load_throughput.png", "latency": "load_latency.png", "batch": "load_triton_batch.png"}


@dataclass(frozen=True)
class StepResult:
    users: int
    duration_s: float
    batch_size: int  # messages per ClassifyTextBatch call
    locust: LocustRun
    triton: TritonStep | None  # None when no metrics URL is known (or for the naive server)

    @property
    def messages_per_s(self) -> float:
        """Chat messages answered per second: single messages plus the messages in batches."""
        tasks = self.locust.tasks
        single = tasks[TEXT_TASK].ok_per_s if TEXT_TASK in tasks else 0.0
        batched = tasks[BATCH_TASK].ok_per_s * self.batch_size if BATCH_TASK in tasks else 0.0
        return single + batched

    def task(self, name: str) -> TaskStats | None:
        return self.locust.tasks.get(name)


@dataclass
class LoadSeries:
    """One target (the gateway, or the naive server) through every step."""

    label: str
    target: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def peak(self) -> StepResult | None:
        return max(self.steps, key=lambda s: s.messages_per_s, default=None)


def ratio(ours: LoadSeries, naive: LoadSeries | None) -> float | None:
    """Peak messages/s of ours over the naive server's."""
    if naive is None or ours.peak is None or naive.peak is None or naive.peak.messages_per_s == 0:
        return None
    return ours.peak.messages_per_s / naive.peak.messages_per_s


def write_results(out_dir: Path, header: dict, series: list[LoadSeries]) -> list[Path]:
    """Writes load_results.json, load_summary.md and the PNGs into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ours, naive = series[0], (series[1] if len(series) > 1 else None)
    results = {**header, "series": [_series_dict(s) for s in series], "ratio_peak_to_naive": ratio(ours, naive)}
    json_path = out_dir / "load_results.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md_path = out_dir / "load_summary.md"
    md_path.write_text(_markdown(header, series, results["ratio_peak_to_naive"]))
    return [json_path, md_path, *_plot(out_dir, series)]


def _series_dict(series: LoadSeries) -> dict:
    steps = []
    for step in series.steps:
        record = dataclasses.asdict(step)
        record["messages_per_s"] = step.messages_per_s
        record["ok_per_s"] = step.locust.total.ok_per_s
        steps.append(record)
    peak = series.peak
    return {"label": series.label, "target": series.target, "steps": steps,
            "peak": {"users": peak.users, "messages_per_s": peak.messages_per_s} if peak else None}


def _markdown(header: dict, series: list[LoadSeries], peak_ratio: float | None) -> str:
    lines = ["# Load test (Locust step load)", "", f"Command: `{header['command']}`", "",
             f"Started {header['started']}; {header['machine']}; {header['mix']}.",
             "Throughput counts answered calls only; Locust's latency percentiles include failed calls.", ""]
    for one in series:
        lines += _series_tables(one)
    if peak_ratio is not None:
        lines += [f"Peak messages/s, {series[0].label} / {series[1].label}: **{peak_ratio:.2f}x** "
                  f"({series[0].peak.messages_per_s:.0f} at {series[0].peak.users} users vs "
                  f"{series[1].peak.messages_per_s:.0f} at {series[1].peak.users} users).", ""]
    lines += [f"![throughput]({PLOT_FILES['throughput']}) ![latency]({PLOT_FILES['latency']}) "
              f"![batch]({PLOT_FILES['batch']})", ""]
    return "\n".join(lines)


def _series_tables(series: LoadSeries) -> list[str]:
    names = [n for n in TASK_ORDER if any(n in s.locust.tasks for s in series.steps)]
    lines = [f"## {series.label} ({series.target})", "",
             "| users | req/s | ok msg/s | " + " | ".join(f"{n} ok/s" for n in names)
             + " | failures | Triton mean batch | queue ms/req | compute ms/req |",
             "|---:|---:|---:|" + "---:|" * len(names) + "---|---:|---:|---:|"]
    for step in series.steps:
        triton = step.triton
        lines.append(f"| {step.users} | {step.locust.total.requests_per_s:.1f} | {step.messages_per_s:.1f} | "
                     + " | ".join(_fmt(t.ok_per_s if (t := step.task(n)) else None) for n in names)
                     + f" | {_failures(step)} | {_fmt(triton and triton.mean_batch_size, 2)}"
                     f" | {_fmt(triton and triton.queue_ms_per_request, 2)}"
                     f" | {_fmt(triton and triton.compute_ms_per_request, 2)} |")
    lines += ["", "| users | " + " | ".join(f"{n} p50 / p95 / p99 ms" for n in names) + " |",
              "|---:|" + "---:|" * len(names)]
    for step in series.steps:
        cells = []
        for name in names:
            t = step.task(name)
            values = (t.p50_ms, t.p95_ms, t.p99_ms) if t else (None, None, None)
            cells.append(" / ".join(_fmt(v, 0) for v in values))
        lines.append(f"| {step.users} | " + " | ".join(cells) + " |")
    return lines + [""]


def _failures(step: StepResult) -> str:
    by_code: dict[str, int] = {}
    for codes in step.locust.failures.values():
        for code, count in codes.items():
            by_code[code] = by_code.get(code, 0) + count
    return ", ".join(f"{code} {count}" for code, count in sorted(by_code.items())) or "0"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _plot(out_dir: Path, series: list[LoadSeries]) -> list[Path]:
    paths = []
    for key, draw in (("throughput", _draw_throughput), ("latency", _draw_latency), ("batch", _draw_batch)):
        figure, ax = plots.panels(1, (7, 4.5))
        draw(ax, series)
        ax.set_xlabel("concurrent Locust users")
        users = sorted({s.users for one in series for s in one.steps})
        ax.set_xlim(min(users) / 1.3, max(users) * 1.3)  # explicit, so an empty plot can be log-scaled too
        ax.set_xscale("log", base=2)
        ax.set_xticks(users, [str(u) for u in users])
        paths.append(plots.save(figure, out_dir / PLOT_FILES[key], ax, legend_fontsize=8))
    return paths


def _draw_throughput(ax, series: list[LoadSeries]) -> None:
    for one, style in zip(series, ("-", "--")):
        users = [s.users for s in one.steps]
        ax.plot(users, [s.messages_per_s for s in one.steps], "o" + style, label=f"{one.label}: messages/s")
        for name in TASK_ORDER:
            if any(name in s.locust.tasks for s in one.steps):
                ax.plot(users, [t.ok_per_s if (t := s.task(name)) else 0 for s in one.steps], "x" + style,
                        label=f"{one.label}: {name} calls/s")
    ax.set_ylabel("answered per second")
    ax.set_ylim(bottom=0)
    ax.set_title("Throughput vs users")


def _draw_latency(ax, series: list[LoadSeries]) -> None:
    for one, style in zip(series, ("-", "--")):
        steps = [s for s in one.steps if s.task(TEXT_TASK) and s.task(TEXT_TASK).p99_ms is not None]
        for label, attr, color in (("p50", "p50_ms", "C0"), ("p95", "p95_ms", "C1"), ("p99", "p99_ms", "C3")):
            ax.plot([s.users for s in steps], [getattr(s.task(TEXT_TASK), attr) for s in steps], "o" + style,
                    color=color, label=f"{one.label}: {label}")
    ax.set_ylabel(f"{TEXT_TASK} latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"{TEXT_TASK} latency vs users")


def _draw_batch(ax, series: list[LoadSeries]) -> None:
    steps = [s for s in series[0].steps if s.triton and s.triton.mean_batch_size is not None]
    users = [s.users for s in steps]
    if not steps:
        ax.text(0.5, 0.5, "no Triton metrics in this run", transform=ax.transAxes, ha="center")
    ax.plot(users, [s.triton.mean_batch_size for s in steps], "o-", color="C2", label="mean executed batch size")
    ax.set_ylabel("sequences per model execution")
    ax.set_ylim(bottom=0)
    queue = ax.twinx()
    queue.plot(users, [s.triton.queue_ms_per_request for s in steps], "s--", color="C4", label="queue ms per request")
    queue.set_ylabel("Triton queue ms per request")
    queue.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()[0] + queue.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    ax.set_title(f"Triton dynamic batching vs users ({series[0].label})")
