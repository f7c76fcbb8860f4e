"""Reads the CSV files Locust writes with `--csv PREFIX`: `PREFIX_stats.csv` and `PREFIX_failures.csv`.

Locust counts failed calls in "Request Count" and "Requests/s" too, and its percentiles include
the failures' response times; `ok_per_s` is the rate of answered calls. Failures are grouped by
the text of the exception the locustfile fires, `RpcStatusError('RESOURCE_EXHAUSTED')`, so they
are counted here per gRPC status code.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

AGGREGATED = "Aggregated"  # the Name of Locust's total row
_STATUS_ERROR = re.compile(r"RpcStatusError\('(?P<code>[A-Z_]+)'\)")


@dataclass(frozen=True)
class TaskStats:
    """One row of `_stats.csv`: a task name (or the aggregated total). Times in milliseconds."""

    name: str
    requests: int
    failures: int
    requests_per_s: float
    failures_per_s: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @property
    def ok_per_s(self) -> float:
        return self.requests_per_s - self.failures_per_s


@dataclass(frozen=True)
class LocustRun:
    tasks: dict[str, TaskStats]  # by task name, e.g. "ClassifyText"
    total: TaskStats
    failures: dict[str, dict[str, int]]  # task name -> status code -> occurrences


def read_run(prefix: Path) -> LocustRun:
    """Parses one headless run's CSV files. Raises FileNotFoundError when Locust wrote none."""
    tasks, total = read_stats(Path(f"{prefix}_stats.csv"))
    failures_path = Path(f"{prefix}_failures.csv")
    failures = read_failures(failures_path) if failures_path.exists() else {}
    return LocustRun(tasks, total, failures)


def read_stats(path: Path) -> tuple[dict[str, TaskStats], TaskStats]:
    tasks: dict[str, TaskStats] = {}
    total = None
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            stats = _task_stats(row)
            if row["Name"] == AGGREGATED and not row["Type"]:
                total = stats
            else:
                tasks[stats.name] = stats
    if total is None:
        raise ValueError(f"{path}: no {AGGREGATED} row")
    return tasks, total


def read_failures(path: Path) -> dict[str, dict[str, int]]:
    """task name -> status code (or the error text when it is not an RpcStatusError) -> count."""
    failures: dict[str, dict[str, int]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            match = _STATUS_ERROR.search(row["Error"])
            code = match["code"] if match else row["Error"]
            by_code = failures.setdefault(row["Name"], {})
            by_code[code] = by_code.get(code, 0) + int(row["Occurrences"])
    return failures


def _task_stats(row: dict[str, str]) -> TaskStats:
    return TaskStats(
        name=row["Name"],
        requests=int(row["Request Count"]),
        failures=int(row["Failure Count"]),
        requests_per_s=float(row["Requests/s"]),
        failures_per_s=float(row["Failures/s"]),
        mean_ms=_number(row["Average Response Time"]),
        p50_ms=_number(row["50%"]),
        p95_ms=_number(row["95%"]),
        p99_ms=_number(row["99%"]),
        max_ms=_number(row["Max Response Time"]),
    )


def _number(value: str) -> float | None:
    """Locust writes "N/A" for percentiles of a task with no calls."""
    try:
        return float(value)
    except ValueError:
        return None
