"""Two real Triton processes behind one gateway (`--triton-url a,b`): traffic reaches both, a new
version is loaded on both, and SIGKILL of one under load fails no call (one retry on the other)
while health stays SERVING."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import SimpleNamespace

import grpc
import pytest
import tritonclient.grpc as grpcclient
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract import tensors
from contract.pb import moderation_pb2
from export.repository import publish_directory
from gateway.secrets_files import generate_secret
from loadtest.model_variants import copy_repository
from tests.integration.conftest import MODEL_REPOSITORY, _has_version, start_gateway, start_triton

pytestmark = pytest.mark.integration

TEXTS = ["good game everyone", "you are a stupid idiot", "push mid now", "nice shot, well played"]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    repository = tmp_path_factory.mktemp("replicas") / "repo"
    copy_repository(MODEL_REPOSITORY, repository)  # the shipped model as version 1; a test publishes 2
    started = []
    key = generate_secret()  # replicas of one fleet share the model-control key the gateway holds
    try:
        for name in ("a", "b"):  # same model repository, different ports
            started.append(start_triton(tmp_path_factory.mktemp(f"triton-{name}"), repository, control_key=key))
        yield started
    finally:
        for triton in started:
            triton.stop()


def inference_count(triton) -> int:
    """Requests Triton itself counts as succeeded for the model (its statistics API)."""
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        stats = client.get_inference_statistics(tensors.MODEL_NAME, as_json=True)
    return sum(int(m.get("inference_stats", {}).get("success", {}).get("count", 0)) for m in stats["model_stats"])


def pool_gateway(tritons, **overrides):
    url = ",".join(t.grpc_url for t in tritons)
    # start_gateway takes the Triton address from the object it is given
    target = SimpleNamespace(grpc_url=url, model_repository=tritons[0].model_repository,
                             control_key=tritons[0].control_key)
    return start_gateway(target, triton_timeout_s=20.0, **overrides)


def classify(stub, text: str):
    return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=60)


def test_calls_reach_both_replicas(replicas):
    before = [inference_count(t) for t in replicas]
    running = pool_gateway(replicas, coalesce_wait_us=0)  # one Triton request per call
    try:
        for i in range(20):
            assert classify(running.stub, TEXTS[i % len(TEXTS)]).scores
    finally:
        running.close()
    gained = [inference_count(t) - b for t, b in zip(replicas, before)]
    assert all(g >= 5 for g in gained), gained  # round robin: about half each
    assert sum(gained) >= 20


def test_a_dns_target_serves(replicas):
    port = replicas[0].grpc_port  # localhost may resolve to ::1 too, where nothing listens: round robin skips it
    target = SimpleNamespace(grpc_url=f"dns:///localhost:{port}", model_repository=replicas[0].model_repository,
                             control_key=replicas[0].control_key)
    running = start_gateway(target, triton_timeout_s=20.0)
    try:
        for text in TEXTS:
            assert classify(running.stub, text).scores
    finally:
        running.close()


def test_a_version_switch_loads_the_version_on_every_replica(replicas, tmp_path):
    model_dir = replicas[0].model_repository / tensors.MODEL_NAME
    version = publish_directory(model_dir / "1", model_dir).name
    version_file = tmp_path / "version"
    version_file.write_text("1")
    running = pool_gateway(replicas, version_file=str(version_file), watch_interval_s=0.5)
    try:
        version_file.write_text(version)  # the activation path the admin API also takes
        deadline = time.monotonic() + 300
        while classify(running.stub, TEXTS[0]).model_version != version:
            assert time.monotonic() < deadline, f"version {version} never served"
            time.sleep(0.5)
    finally:
        running.close()
    for triton in replicas:
        with grpcclient.InferenceServerClient(triton.grpc_url) as client:
            assert client.is_model_ready(tensors.MODEL_NAME, version), triton.grpc_url


def test_killing_one_replica_under_load_fails_no_call(replicas, caplog):
    running = pool_gateway(replicas)
    health = health_pb2_grpc.HealthStub(running.channel)
    errors, done, stop = [], [0], threading.Event()
    statuses = []

    def caller(k: int) -> None:
        i = k
        while not stop.is_set():
            try:
                classify(running.stub, TEXTS[i % len(TEXTS)])
                done[0] += 1
            except grpc.RpcError as err:
                errors.append(f"{err.code().name}: {err.details()}")
            i += 1

    def watch_health() -> None:
        while not stop.is_set():
            statuses.append(health.Check(health_pb2.HealthCheckRequest(), timeout=10).status)
            time.sleep(0.2)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)] + [threading.Thread(target=watch_health)]
    victim = replicas[1]
    try:
        for thread in threads:
            thread.start()
        _wait_for(lambda: done[0] >= 20, 120)
        os.killpg(victim._process.pid, signal.SIGKILL)  # the server and its python-backend stubs, no goodbye
        victim._process.wait()
        killed_at = done[0]
        _wait_for(lambda: done[0] >= killed_at + 40, 180)  # well past the kill
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        running.close()
    assert errors == []
    assert f"retrying on {replicas[0].grpc_url}" in caplog.text  # calls did fail on the dead one, and were retried
    assert statuses and all(s == health_pb2.HealthCheckResponse.SERVING for s in statuses)
    assert inference_count(replicas[0]) > 0


def _wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "load did not progress"
        time.sleep(0.1)
