"""Caller identity and fair share on the real gateway (in front of the real Triton).

Two API keys with different limits under load each get their own share; a caller over its rate
gets RESOURCE_EXHAUSTED with `retry-after-ms`; `decision` callers never see scores or thresholds;
logs carry a hashed caller id and never the key; a key added to the file works without a restart;
a client certificate's name can stand for a caller.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.callers import CallerEntry, generate_key, hash_key, short_id
from gateway.keys_cli import add_caller, entry_toml
from tests.certs import CertificateAuthority
from tests.integration.conftest import start_gateway

pytestmark = pytest.mark.integration

CALL_TIMEOUT_S = 30  # generous: the box is shared
SLOW_RATE_PER_S, SLOW_BURST = 2.0, 2
LOAD_S = 4.0  # how long both callers send
THREADS_PER_CALLER = 4


class Keys:
    def __init__(self, root):
        self.slow, self.fast, self.scores = generate_key(), generate_key(), generate_key()
        self.path = root / "callers.toml"
        self.path.write_text("".join(entry_toml(e) for e in (
            CallerEntry("slow", hash_key(self.slow), rate_per_s=SLOW_RATE_PER_S, burst=SLOW_BURST, concurrency=4),
            CallerEntry("fast", hash_key(self.fast), rate_per_s=1000, burst=1000, concurrency=32),
            CallerEntry("dashboard", hash_key(self.scores), scope="scores"),
            CallerEntry("eu-server", tls_identity="game-eu.example", scope="scores"),
        )))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def keyed_gateway(triton, keys):
    running = start_gateway(triton, api_keys_file=str(keys.path))
    yield running
    running.close()


def bearer(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def classify(stub, metadata, text: str = "gg well played"):
    return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=CALL_TIMEOUT_S, metadata=metadata)


def _send_for(stub, key: str, seconds: float, outcomes: list) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            classify(stub, bearer(key))
            outcomes.append(("OK", None))
        except grpc.RpcError as err:
            trailing = dict(err.trailing_metadata() or ())
            outcomes.append((err.code().name, trailing.get("retry-after-ms")))


def test_two_callers_with_different_limits_each_get_their_own_share_under_load(keyed_gateway, keys):
    outcomes = {"slow": [], "fast": []}
    # each caller on its own connection, as two game servers are; the slow one retries at once
    # (ignoring retry-after-ms), the worst neighbour the fast one can have
    channels = {name: grpc.insecure_channel(keyed_gateway.address) for name in outcomes}
    stubs = {name: moderation_pb2_grpc.ModerationStub(channel) for name, channel in channels.items()}
    threads = [threading.Thread(target=_send_for, args=(stubs[name], key, LOAD_S, outcomes[name]))
               for name, key in (("slow", keys.slow), ("fast", keys.fast)) for _ in range(THREADS_PER_CALLER)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LOAD_S + 120)
    elapsed = time.monotonic() - started
    for channel in channels.values():
        channel.close()
    slow_ok = sum(code == "OK" for code, _ in outcomes["slow"])
    slow_refused = [(code, retry) for code, retry in outcomes["slow"] if code != "OK"]
    assert {code for code, _ in outcomes["fast"]} == {"OK"}, "the fast caller must not feel the slow one's limit"
    assert slow_refused and {code for code, _ in slow_refused} == {"RESOURCE_EXHAUSTED"}
    assert all(retry is not None and 0 < int(retry) <= 1000 / SLOW_RATE_PER_S for _, retry in slow_refused)
    assert 1 <= slow_ok <= SLOW_BURST + SLOW_RATE_PER_S * elapsed + 1  # the bucket's bound, whatever the speed
    assert len(outcomes["fast"]) > slow_ok


def test_decision_callers_get_no_scores_and_no_thresholds(keyed_gateway, keys):
    stub = keyed_gateway.stub
    decided = classify(stub, bearer(keys.fast), "you are a worthless idiot")
    full = classify(stub, bearer(keys.scores), "you are a worthless idiot")
    assert (decided.toxic, decided.severity, decided.action) == (full.toxic, full.severity, full.action)
    assert full.scores and full.toxic_score > 0
    assert not decided.scores and decided.toxic_score == 0 and decided.top_category == ""
    info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=CALL_TIMEOUT_S, metadata=bearer(keys.fast))
    assert info.categories and not info.thresholds
    info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=CALL_TIMEOUT_S, metadata=bearer(keys.scores))
    assert info.thresholds


def test_calls_without_a_known_key_are_refused_but_health_is_open(keyed_gateway, keys):
    for metadata in ([], bearer("mk_not-a-key"), [("x-api-key", "mk_not-a-key")]):
        with pytest.raises(grpc.RpcError) as err:
            classify(keyed_gateway.stub, metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert classify(keyed_gateway.stub, [("x-api-key", keys.scores)]).scores
    reply = health_pb2_grpc.HealthStub(keyed_gateway.channel).Check(health_pb2.HealthCheckRequest(),
                                                                    timeout=CALL_TIMEOUT_S)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_logs_carry_a_hashed_caller_id_and_never_the_key(keyed_gateway, keys, caplog):
    with caplog.at_level(logging.INFO):
        classify(keyed_gateway.stub, bearer(keys.scores))
        with pytest.raises(grpc.RpcError):
            classify(keyed_gateway.stub, bearer("mk_wrong-key"))
    assert f"caller={short_id(keys.scores)}" in caplog.text
    assert keys.scores not in caplog.text and "mk_wrong-key" not in caplog.text


def test_a_key_added_to_the_file_works_without_a_restart(keyed_gateway, keys):
    key = generate_key()
    add_caller(keys.path, CallerEntry("late", hash_key(key)))
    deadline = time.monotonic() + 30
    while True:
        try:
            assert classify(keyed_gateway.stub, bearer(key)).model_version
            break
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert time.monotonic() < deadline, "the new key was never accepted"
            time.sleep(0.5)


def test_a_client_certificate_name_stands_for_a_caller(triton, keys, tmp_path):
    ca = CertificateAuthority()
    server = ca.issue("localhost", tmp_path / "server")
    known = ca.issue("game-eu", tmp_path / "known", client=True, dns_names=("game-eu.example",), ips=())
    unknown = ca.issue("game-xx", tmp_path / "unknown", client=True, dns_names=("game-xx.example",), ips=())
    running = start_gateway(triton, api_keys_file=str(keys.path), tls_cert=str(server.cert_path),
                            tls_key=str(server.key_path), tls_ca=str(ca.write(tmp_path / "ca.pem")),
                            tls_client_auth="require")

    def call(client, metadata=()):
        credentials = grpc.ssl_channel_credentials(ca.pem, client.key_pem, client.cert_pem)
        with grpc.secure_channel(running.address, credentials) as channel:
            return classify(moderation_pb2_grpc.ModerationStub(channel), list(metadata))

    try:
        assert call(known).scores  # eu-server has the scores scope
        with pytest.raises(grpc.RpcError) as err:
            call(unknown)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert not call(unknown, bearer(keys.fast)).scores  # a key names the caller whatever the certificate
    finally:
        running.close()
