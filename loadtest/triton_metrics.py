"""Triton's Prometheus counters for one model, read before and after a load step.

The counters are cumulative since Triton started, so a step's figures come from the difference
of two snapshots: executions run, sequences in them (their ratio is the mean batch size the
dynamic batcher reached), and time requests spent queued or computing.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass

SCRAPE_TIMEOUT_S = 5.0
COUNTERS = (
    "nv_inference_request_success",  # requests answered
    "nv_inference_request_failure",
    "nv_inference_count",  # sequences (batch rows) inferred
    "nv_inference_exec_count",  # model executions (batches run)
    "nv_inference_queue_duration_us",  # summed over requests
    "nv_inference_compute_infer_duration_us",  # summed over requests
)
# name{label="value",...} number
_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class TritonStep:
    """What Triton did for one model between two snapshots."""

    requests: int
    failures: int
    sequences: int
    executions: int
    mean_batch_size: float | None  # sequences per execution
    queue_ms_per_request: float | None
    compute_ms_per_request: float | None


def scrape(metrics_url: str, model: str) -> dict[str, float]:
    """The COUNTERS for `model`, summed over its versions."""
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT_S) as response:
        return parse_counters(response.read().decode("utf-8"), model)


def parse_counters(text: str, model: str) -> dict[str, float]:
    totals = dict.fromkeys(COUNTERS, 0.0)
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None or sample["name"] not in totals:
            continue
        if dict(_LABEL.findall(sample["labels"])).get("model") == model:
            totals[sample["name"]] += float(sample["value"])
    return totals


def step_delta(before: dict[str, float], after: dict[str, float]) -> TritonStep:
    def delta(name: str) -> float:
        return after[name] - before[name]

    requests, executions = int(delta("nv_inference_request_success")), int(delta("nv_inference_exec_count"))
    sequences = int(delta("nv_inference_count"))
    per_request_ms = (lambda us: us / requests / 1e3) if requests else (lambda us: None)
    return TritonStep(
        requests=requests,
        failures=int(delta("nv_inference_request_failure")),
        sequences=sequences,
        executions=executions,
        mean_batch_size=sequences / executions if executions else None,
        queue_ms_per_request=per_request_ms(delta("nv_inference_queue_duration_us")),
        compute_ms_per_request=per_request_ms(delta("nv_inference_compute_infer_duration_us")),
    )
