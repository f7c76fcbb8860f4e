"""The text path end to end: gRPC gateway -> real tritonserver -> the shipped classifier."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract import tensors
from contract.pb import moderation_pb2
from tests.integration.conftest import start_gateway, start_triton

pytestmark = pytest.mark.integration

CLEAN = [
    "good game everyone, well played",
    "can we switch to the north lane next round?",
    "thanks for the heal, nice teamwork",
]
TOXIC = [
    "you are a stupid idiot, shut up you worthless loser",
    "fuck you moron, you are trash",
]


def classify(stub, text, **kwargs):
    return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=kwargs.pop("timeout", 10), **kwargs)


def test_clean_messages_are_not_toxic(stub):
    for text in CLEAN:
        verdict = classify(stub, text)
        assert verdict.top_category == "non_toxic", verdict
        assert not verdict.toxic and not verdict.flagged


def test_toxic_messages_are_flagged(stub):
    for text in TOXIC:
        verdict = classify(stub, text)
        assert verdict.toxic, verdict
        assert verdict.top_category != "non_toxic"
        assert verdict.flagged[0] == verdict.top_category


def test_verdict_carries_every_category_and_ids(stub):
    info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=5)
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg", request_id="req-42"), timeout=10)
    assert [s.category for s in verdict.scores] == list(info.categories)
    assert info.categories[0] == tensors.NEGATIVE_CATEGORY
    assert abs(sum(s.score for s in verdict.scores) - 1.0) < 1e-3
    assert verdict.request_id == "req-42"
    assert verdict.model_version == info.model_version != ""


def test_batch_keeps_order(stub):
    texts = [CLEAN[0], TOXIC[0], CLEAN[1], TOXIC[1], CLEAN[2]]
    reply = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=10)
    assert len(reply.verdicts) == len(texts)
    for text, verdict in zip(texts, reply.verdicts):
        single = classify(stub, text)
        assert verdict.top_category == single.top_category
        assert verdict.toxic == single.toxic
        # batching changes padding (and int8 activation scales), not the answer
        for batched, alone in zip(verdict.scores, single.scores):
            assert abs(batched.score - alone.score) < 0.05


@pytest.mark.parametrize(
    "texts, needle",
    [([""], "empty"), (["   \n\t"], "empty"), (["x" * 2001], "2000"), (["ok"] * 65, "64"), ([], "empty")],
)
def test_bad_input_is_invalid_argument(stub, texts, needle):
    with pytest.raises(grpc.RpcError) as caught:
        if len(texts) == 1:
            classify(stub, texts[0])
        else:
            stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in caught.value.details()


def test_text_at_the_limit_is_accepted(stub):
    verdict = classify(stub, "a" * 2000)
    assert verdict.top_category


def test_spent_deadline_is_deadline_exceeded(triton):
    running = start_gateway(triton, triton_timeout_s=0.0005)  # the model call cannot finish in time
    try:
        with pytest.raises(grpc.RpcError) as caught:
            classify(running.stub, "a perfectly normal message")
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        running.close()


def test_over_max_in_flight_is_resource_exhausted(triton):
    running = start_gateway(triton, max_in_flight=1)
    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda i: _status(running.stub, f"message number {i}"), range(48)))
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes
        assert grpc.StatusCode.OK in outcomes
        assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        running.close()


def _status(stub, text):
    try:
        classify(stub, text)
        return grpc.StatusCode.OK
    except grpc.RpcError as err:
        return err.code()


def test_dynamic_batching_runs_fewer_batches_than_requests(stub, triton):
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        before = _counts(client)
        words = "gg wp nice round team push mid now please heal".split()
        texts = [" ".join(words[: 1 + i % len(words)]) + f" {i}" for i in range(240)]  # mixed lengths
        with ThreadPoolExecutor(48) as pool:  # below max_in_flight (64)
            verdicts = list(pool.map(lambda t: classify(stub, t, timeout=30), texts))
        after = _counts(client)
    requests = after[0] - before[0]
    executions = after[1] - before[1]
    assert len(verdicts) == 240
    assert requests >= 240
    assert executions < requests / 2, f"{executions} executions for {requests} requests"


def _counts(client) -> tuple[int, int]:
    stats = client.get_inference_statistics(tensors.MODEL_NAME, as_json=True)["model_stats"]
    return (sum(int(s.get("inference_count", 0)) for s in stats),
            sum(int(s.get("execution_count", 0)) for s in stats))


def test_health_and_reflection(gateway):
    health = health_pb2_grpc.HealthStub(gateway.channel)
    for service in ("", "moderation.v1.Moderation"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    reflection = reflection_pb2_grpc.ServerReflectionStub(gateway.channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "moderation.v1.Moderation" in names and "grpc.health.v1.Health" in names


def test_client_cli_prints_a_verdict(gateway):
    result = subprocess.run(
        [sys.executable, "-m", "gateway.client", "--address", gateway.address, "good game everyone"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "top=non_toxic" in result.stdout and "model_version=" in result.stdout


def test_full_triton_queue_is_resource_exhausted(triton, stub):
    """A tiny queue (config override, as an operator might set) overflows under a burst."""
    import json

    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        config = client.get_model_config(tensors.MODEL_NAME, as_json=True, headers=triton.control_headers)["config"]
        original = json.dumps(config)
        config["dynamic_batching"]["default_queue_policy"]["max_queue_size"] = "1"
        config["dynamic_batching"]["max_queue_delay_microseconds"] = "100000"
        config["dynamic_batching"]["preferred_batch_size"] = []
        config["max_batch_size"] = 2
        client.load_model(tensors.MODEL_NAME, config=json.dumps(config), headers=triton.control_headers)
        try:
            with ThreadPoolExecutor(32) as pool:
                outcomes = list(pool.map(lambda i: _status(stub, f"burst {i}"), range(64)))
            assert grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes
            assert grpc.StatusCode.OK in outcomes
            assert set(outcomes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        finally:
            # back to the config it had: a plain load_model keeps the override (the next tests
            # on this server would see a queue of one and 100 ms of batching delay)
            client.load_model(tensors.MODEL_NAME, config=original, headers=triton.control_headers)


def test_triton_down_is_unavailable_then_recovers(tmp_path):
    """Stop Triton under a live gateway: fast UNAVAILABLE and NOT_SERVING; restart: served again."""
    triton = start_triton(tmp_path)
    running = start_gateway(triton, triton_timeout_s=5.0)
    health = health_pb2_grpc.HealthStub(running.channel)
    try:
        assert classify(running.stub, "hello there").top_category
        triton.stop()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            classify(running.stub, "hello again")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 5.0  # fails fast, no hang until the timeout
        running.gateway.monitor.check_once()
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING

        triton.start()  # same ports
        triton.wait_until_ready(timeout_s=180)
        deadline = time.monotonic() + 30
        while not running.gateway.monitor.check_once() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert classify(running.stub, "back online?").top_category
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.close()
        triton.stop()
