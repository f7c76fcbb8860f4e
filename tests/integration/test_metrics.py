"""A fresh `moderation-serve` (Triton + gateway with voice): the client's --voice and --stream,
the gateway's /metrics after real calls, and --log-format json.

Runs the real entry point in a child process on free loopback ports, as `./run.sh serve` does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway import client
from gateway.triton_process import free_port
from tests.integration.conftest import MODEL_REPOSITORY, REPO_DIR, _has_version

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 300  # Triton, the model and Whisper on a busy 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    pytest.importorskip("faster_whisper", reason="the asr extra is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    root = tmp_path_factory.mktemp("serve")
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "gateway.serve", "--model-repository", str(MODEL_REPOSITORY),
               "--triton-grpc-port", str(free_port()), "--triton-http-port", str(free_port()),
               "--triton-metrics-port", str(free_port()), "--triton-log", str(root / "triton.log"),
               "--listen-address", f"127.0.0.1:{port}", "--admin-listen-address", "",
               "--metrics-listen-address", f"127.0.0.1:{metrics_port}", "--log-format", "json"]
    log_path = root / "serve.log"
    env = dict(os.environ, PYTHONPATH=str(REPO_DIR))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        _wait_serving(channel, process, log_path)
        yield {"address": f"127.0.0.1:{port}", "metrics_port": metrics_port, "log": log_path,
               "stub": moderation_pb2_grpc.ModerationStub(channel)}
    finally:
        channel.close()
        process.send_signal(signal.SIGINT)  # drains, then stops Triton
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_serving(channel, process, log_path) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"moderation-serve exited:\n{log_path.read_text()[-4000:]}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(1)
    raise AssertionError(f"moderation-serve not SERVING after {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples, name: str, **labels) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def test_client_voice_prints_the_transcript_and_a_verdict(served, toxic_speech, capsys):
    client.main(["--address", served["address"], "--voice", str(toxic_speech.path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("transcript: ")
    assert all(word in lines[0].lower() for word in toxic_speech.key_words), lines[0]
    assert lines[1].startswith("TOXIC action=") and "model_version=" in lines[1]


def test_client_stream_prints_events_as_they_come(served, toxic_speech, capsys):
    client.main(["--address", served["address"], "--stream", str(toxic_speech.path)])
    events = [line for line in capsys.readouterr().out.splitlines() if " utterance " in line]
    assert events, "a spoken sentence gives at least one utterance"
    assert any(word in " ".join(events).lower() for word in toxic_speech.key_words), events
    assert any("TOXIC action=" in line for line in events)


def test_metrics_count_real_calls(served, toxic_speech):
    stub, port = served["stub"], served["metrics_port"]
    before = scrape(port)
    for _ in range(3):
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="good game everyone"), timeout=30)
    with pytest.raises(grpc.RpcError):
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=""), timeout=30)
    stub.ClassifyVoice(moderation_pb2.ClassifyVoiceRequest(audio=toxic_speech.path.read_bytes()), timeout=120)
    after = scrape(port)
    series = {name for name, _ in after if name.startswith("moderation_")}
    assert len({s.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for s in series}) >= 5, series

    def delta(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("moderation_requests_total", method="ClassifyText", code="OK") == 3
    assert delta("moderation_requests_total", method="ClassifyText", code="INVALID_ARGUMENT") == 1
    assert delta("moderation_requests_total", method="ClassifyVoice", code="OK") == 1
    assert delta("moderation_request_duration_seconds_count", method="ClassifyVoice") == 1
    assert delta("moderation_verdicts_total", category="non_toxic") == 3
    assert delta("moderation_verdicts_total") == 4  # the voice clip's verdict too
    assert delta("moderation_stage_duration_seconds_count", stage="asr") == 1
    assert delta("moderation_stage_duration_seconds_count", stage="model") == 4
    assert total(after, "moderation_in_flight_requests") == 0
    info = [dict(labels) for name, labels in after if name == "moderation_model_info"]
    served_version = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=10).model_version
    assert info == [{"model": "toxicity", "version": served_version}]


def test_json_logs_are_one_object_per_line_with_call_fields(served):
    served["stub"].ClassifyText(moderation_pb2.ClassifyTextRequest(text="nice shot", request_id="json-1"), timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = [json.loads(line) for line in served["log"].read_text().splitlines() if line.startswith("{")]
        calls = [e for e in entries if e.get("rpc", {}).get("request_id") == "json-1"]
        if calls:
            break
        time.sleep(0.2)
    assert calls, "the call's log line"
    entry = calls[0]
    assert {"time", "level", "logger", "message"} <= set(entry)
    assert entry["rpc"]["method"] == "ClassifyText" and entry["rpc"]["status"] == "OK"
    assert "nice shot" not in json.dumps(entry)
