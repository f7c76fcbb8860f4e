"""Every PromQL query in the Grafana dashboard names only series the gateway or Triton exports
(the shared metric names in the project's notes), with histograms read through _bucket/_sum/_count."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy.chart import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "moderation-dashboard.json"
COUNTERS = {"moderation_requests_total", "moderation_verdicts_total"}
GAUGES = {"moderation_in_flight_requests", "moderation_speech_queue_depth", "moderation_model_info"}
HISTOGRAMS = {"moderation_request_duration_seconds", "moderation_stage_duration_seconds"}
TRITON = {"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us",
          "nv_inference_compute_infer_duration_us", "nv_inference_count", "nv_inference_exec_count"}
SERIES = COUNTERS | GAUGES | TRITON | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
# the gateway's own labels, the histogram bucket label, and what Prometheus' Kubernetes discovery adds
LABELS = {"method", "code", "stage", "category", "action", "model", "version", "le",
          "namespace", "pod", "instance", "job"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_NAME = re.compile(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()")


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def series_and_labels(expr: str) -> tuple[set[str], set[str]]:
    labels = set()
    for matcher in _MATCHERS.findall(expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", _STRINGS.sub('""', matcher)))
    for _, names in _GROUPING.findall(expr):
        labels |= {n.strip() for n in names.split(",") if n.strip()}
    bare = _RANGES.sub("", _GROUPING.sub("", _MATCHERS.sub("", _STRINGS.sub('""', expr))))
    names = {n for n in _NAME.findall(bare) if n not in KEYWORDS and not re.fullmatch(r"[0-9eE.]+", n)}
    return names, labels


def test_extraction_reads_names_and_labels():
    names, labels = series_and_labels(
        'histogram_quantile(0.99, sum by (le, method) (rate(x_bucket{code!="OK", a=~"b{c}"}[$__rate_interval]))) / y')
    assert names == {"x_bucket", "y"} and labels == {"le", "method", "code", "a"}
    names, _ = series_and_labels('sum(rate(moderation_request_total[5m])) / moderation_request_duration_seconds')
    assert names - SERIES == {"moderation_request_total", "moderation_request_duration_seconds"}


@pytest.mark.parametrize(("title", "expr"), queries())
def test_query_names_only_exported_series(title, expr):
    names, labels = series_and_labels(expr)
    assert names, f"{title}: no series in {expr}"
    assert names <= SERIES, f"{title}: unknown series {names - SERIES}"
    assert labels <= LABELS, f"{title}: unknown labels {labels - LABELS}"
    for histogram in HISTOGRAMS:
        assert not re.search(rf"\b{histogram}\b(?!_(bucket|sum|count))", expr), f"{title}: read {histogram} via _bucket/_sum/_count"
    if "histogram_quantile" in expr:
        assert all(n.endswith("_bucket") for n in names) and "le" in labels, f"{title}: quantiles come from _bucket by le"


def test_dashboard_covers_what_operators_watch():
    text = " ".join(expr for _, expr in queries())
    for needed in ("rate(moderation_requests_total", 'code!="OK"', "histogram_quantile(0.5,", "histogram_quantile(0.99,",
                   "moderation_verdicts_total", "moderation_speech_queue_depth", "moderation_model_info",
                   "nv_inference_queue_duration_us", "moderation_in_flight_requests"):
        assert needed in text, needed
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
