"""The step-load runner's parsing and report writing, on CSV and metrics text as Locust and Triton write them."""

from __future__ import annotations

import json

import pytest

from loadtest.load_report import LoadSeries, StepResult, ratio, write_results
from loadtest.locust_stats import read_run
from loadtest.run_load import LoadOptions
from loadtest.triton_metrics import parse_counters, step_delta

PERCENTILES = "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
STATS_CSV = f"""Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,{PERCENTILES}
grpc,ClassifyText,1000,10,12,14.5,2,80,30.0,100.0,1.0,12,13,14,15,20,30,40,50,70,80,80
grpc,ClassifyTextBatch,50,0,40,42.0,20,90,480.0,5.0,0.0,40,41,42,43,50,60,70,90,90,90,90
grpc,ClassifyVoice,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,1050,10,12,15.8,2,90,51.0,105.0,1.0,12,13,14,15,20,31,45,55,80,90,90
"""
FAILURES_CSV = """Method,Name,Error,Occurrences,First Seen,Last Seen
grpc,ClassifyText,RpcStatusError('RESOURCE_EXHAUSTED'),7,,
grpc,ClassifyText,RpcStatusError('DEADLINE_EXCEEDED'),3,,
"""
METRICS = """# HELP nv_inference_count Number of inferences performed
# TYPE nv_inference_count counter
nv_inference_count{model="toxicity",version="1"} 640
nv_inference_count{model="other",version="1"} 999
nv_inference_exec_count{model="toxicity",version="1"} 40
nv_inference_request_success{model="toxicity",version="1"} 600
nv_inference_queue_duration_us{model="toxicity",version="1"} 1200000
nv_inference_compute_infer_duration_us{model="toxicity",version="1"} 3000000
"""


@pytest.fixture
def locust_prefix(tmp_path):
    prefix = tmp_path / "gateway-u8"
    (tmp_path / "gateway-u8_stats.csv").write_text(STATS_CSV)
    (tmp_path / "gateway-u8_failures.csv").write_text(FAILURES_CSV)
    return prefix


def test_locust_csv_gives_rates_percentiles_and_failures_per_status(locust_prefix):
    run = read_run(locust_prefix)
    text = run.tasks["ClassifyText"]
    assert (text.requests, text.failures, text.ok_per_s) == (1000, 10, 99.0)
    assert (text.p50_ms, text.p95_ms, text.p99_ms) == (12, 30, 50)
    assert run.tasks["ClassifyVoice"].p99_ms is None  # "N/A": no calls
    assert run.total.requests == 1050
    assert run.failures == {"ClassifyText": {"RESOURCE_EXHAUSTED": 7, "DEADLINE_EXCEEDED": 3}}


def test_missing_stats_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_run(tmp_path / "nothing")


def test_triton_deltas_give_mean_batch_and_queue_time_of_one_model():
    before = parse_counters("", "toxicity")
    after = parse_counters(METRICS, "toxicity")
    step = step_delta(before, after)
    assert (step.requests, step.sequences, step.executions) == (600, 640, 40)
    assert step.mean_batch_size == 16.0
    assert step.queue_ms_per_request == pytest.approx(2.0)
    assert step.compute_ms_per_request == pytest.approx(5.0)
    assert step_delta(after, after).mean_batch_size is None  # idle step


def test_results_files_count_batched_messages_and_compare_peaks(locust_prefix, tmp_path):
    run = read_run(locust_prefix)
    ours = LoadSeries("gateway", "127.0.0.1:1", [StepResult(8, 30.0, 16, run, None)])
    assert ours.steps[0].messages_per_s == pytest.approx(99.0 + 16 * 5.0)
    naive = LoadSeries("naive", "127.0.0.1:2", [StepResult(8, 30.0, 16, run, None)])
    assert ratio(ours, naive) == pytest.approx(1.0)
    header = {"command": "python -m loadtest.run_load", "started": "now", "machine": "2 CPUs", "mix": "mix"}
    paths = write_results(tmp_path / "out", header, [ours, naive])
    assert {p.name for p in paths} == {"load_results.json", "load_summary.md", "load_throughput.png",
                                       "load_latency.png", "load_triton_batch.png"}
    results = json.loads((tmp_path / "out" / "load_results.json").read_text())
    assert results["series"][0]["peak"] == {"users": 8, "messages_per_s": pytest.approx(179.0)}
    summary = (tmp_path / "out" / "load_summary.md").read_text()
    assert "DEADLINE_EXCEEDED 3, RESOURCE_EXHAUSTED 7" in summary


@pytest.mark.parametrize("change", [{"users": ()}, {"users": (0,)}, {"step_s": 1},
                                    {"text_weight": 0, "batch_weight": 0}, {"voice_weight": -1}, {"user_rate": -1.0}])
def test_bad_load_options_are_refused(tmp_path, change):
    values = dict(users=(4, 8), step_s=10, text_weight=20, batch_weight=1, batch_size=16, voice_weight=0,
                  locust_processes=1, raw_dir=tmp_path)
    with pytest.raises(ValueError):
        LoadOptions(**{**values, **change})
