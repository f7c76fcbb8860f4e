"""The servicer in a real in-process gRPC server on 127.0.0.1:0, with a fake classifier.

The fake scores each text by its word count (the test texts are runs of the one-token word
"a", so n words = n + 2 tokens), which makes every verdict predictable.
"""

from __future__ import annotations

import json
import shutil
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.manifest import write_manifest
from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.classifier import Classifier
from gateway.client import format_verdict
from gateway.errors import BackendTimeout, BackendUnavailable, ModerationError, Overloaded
from gateway.policy import DEFAULT_POLICY_PATH
from gateway.readiness import SERVICE_NAME
from gateway.secrets_files import write_secret_file
from gateway.server import create_server
from gateway.settings import Settings

LABELS = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]
MAX_TEXT_CHARS = 40
MAX_BATCH_TEXTS = 4
TRITON_TIMEOUT_S = 2.0

# word count -> scores (non_toxic, profanity, insult_harassment, hate_identity_attack, threat)
ROWS = {
    1: [0.90, 0.04, 0.03, 0.02, 0.01],  # clean
    2: [0.10, 0.70, 0.10, 0.05, 0.05],  # profanity
    3: [0.00, 0.00, 0.55, 0.00, 0.45],  # insult and threat (threat threshold 0.4)
    4: [0.55, 0.00, 0.00, 0.00, 0.45],  # top non_toxic, yet threat is over its threshold
}
CLEAN = ROWS[1]
# The servicer's tests pin their own policy, so the shipped defaults can be re-tuned on their own.
REFERENCE_POLICY = """
toxic_threshold = 0.5
default_threshold = 0.5
[thresholds]
profanity = 0.5
insult_harassment = 0.5
hate_identity_attack = 0.5
threat = 0.4
[severity]
low = 0.5
medium = 0.75
high = 0.9
[[blocklist]]
term = "kys"
category = "threat"
severity = "high"
[allowlist]
phrases = ["headshot", "gg"]
"""
EXPECTED = {  # under REFERENCE_POLICY
    1: ("non_toxic", False, []),
    2: ("profanity", True, ["profanity"]),
    3: ("insult_harassment", True, ["insult_harassment", "threat"]),
    4: ("non_toxic", True, ["threat"]),
}


def words(n: int) -> str:
    return " ".join(["a"] * n)


class FakeClassifier:
    """Stands in for TritonClassifier: same methods, scores from the attention mask."""

    def __init__(self):
        self.versions = ["1"]
        self.error: Exception | None = None
        self.scores_override: np.ndarray | None = None
        self.hold: threading.Event | None = None  # when set, infer() waits for it
        self.entered = threading.Event()
        self.calls: list[dict] = []
        self.closed = False

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        self.calls.append({"ids": input_ids, "mask": attention_mask, "version": version, "timeout_s": timeout_s})
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(10), "test never released the held call"
        if self.error is not None:
            raise self.error
        if self.scores_override is not None:
            return self.scores_override
        word_counts = attention_mask.sum(axis=1) - 2
        return np.array([ROWS.get(int(n), CLEAN) for n in word_counts], dtype=np.float32)

    def ready_versions(self):
        return list(self.versions)

    def is_ready(self, version=""):
        return (version or "1") in self.versions

    def version_states(self):
        return {version: ("READY", "") for version in self.versions}

    def load_versions(self, versions):
        self.versions = list(versions)

    def close(self):
        self.closed = True


def test_the_triton_client_and_the_fake_are_classifiers():
    from gateway.triton_classifier import TritonClassifier

    triton = TritonClassifier("127.0.0.1:1")  # connects on the first call only
    try:
        assert isinstance(triton, Classifier)
    finally:
        triton.close()
    assert isinstance(FakeClassifier(), Classifier)


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory, minilm_dir):
    """<tmp>/toxicity/1/ with labels, export.json, the MiniLM tokenizer files and a manifest."""
    root = tmp_path_factory.mktemp("repo")
    version_dir = root / "toxicity" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    (version_dir / "export.json").write_text(json.dumps({"max_length": 32}))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (minilm_dir / name).exists():
            shutil.copyfile(minilm_dir / name, version_dir / name)
    write_manifest(version_dir)
    return root


@pytest.fixture(scope="module")
def start_gateway(model_repo, tmp_path_factory):
    """Starts gateways (each with its own fake); all are stopped at the end of the module."""
    started = []
    reference_policy = tmp_path_factory.mktemp("policy") / "policy.toml"
    reference_policy.write_text(REFERENCE_POLICY, encoding="utf-8")

    def start(fake=None, **changes):
        fake = fake or FakeClassifier()
        changes.setdefault("policy_path", str(reference_policy))
        changes.setdefault("metrics_listen_address", "")  # no fixed port: tests run side by side
        settings = Settings(listen_address="127.0.0.1:0", model_repository=str(model_repo),
                            max_text_chars=MAX_TEXT_CHARS, max_batch_texts=MAX_BATCH_TEXTS,
                            triton_timeout_s=TRITON_TIMEOUT_S, health_poll_s=3600, admin_listen_address="",
                            **changes)
        gateway, port = create_server(settings, classifier=fake, voice=None)
        gateway.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        started.append((gateway, channel))
        return gateway, fake, channel

    yield start
    for gateway, channel in started:
        channel.close()
        gateway.stop(0)


@pytest.fixture(scope="module")
def shared(start_gateway):
    return start_gateway()


@pytest.fixture
def fake(shared):
    _, fake, _ = shared
    yield fake
    fake.error, fake.scores_override, fake.hold = None, None, None
    fake.calls.clear()


@pytest.fixture
def stub(shared, fake):
    return moderation_pb2_grpc.ModerationStub(shared[2])


def health_status(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        call(*args, timeout=5, **kwargs)
    return exc.value


# --- verdicts ------------------------------------------------------------------------------
@pytest.mark.parametrize("n_words", sorted(EXPECTED))
def test_verdict_follows_scores_and_default_policy(stub, n_words):
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=words(n_words), request_id="req-1"), timeout=5)
    top, toxic, flagged = EXPECTED[n_words]
    assert [s.category for s in verdict.scores] == LABELS
    assert [s.score for s in verdict.scores] == pytest.approx(ROWS[n_words], abs=1e-6)
    assert verdict.top_category == top
    assert verdict.toxic is toxic
    assert list(verdict.flagged) == flagged
    assert verdict.model_version == "1"
    assert verdict.request_id == "req-1"


def test_request_id_is_made_when_missing(stub):
    first = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5)
    second = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5)
    assert len(first.request_id) == 16 and first.request_id != second.request_id


def test_classifier_gets_int64_tokens_for_the_pinned_version(stub, fake):
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=words(3)), timeout=5)
    (call,) = fake.calls
    assert call["ids"].dtype == np.int64 and call["mask"].dtype == np.int64
    assert call["ids"].shape == (1, 5)
    assert call["version"] == "1"


def test_model_timeout_is_capped_by_the_callers_deadline(stub, fake):
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=0.5)
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=60)
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"))  # no deadline
    short, long, unset = (call["timeout_s"] for call in fake.calls)
    assert 0 < short <= 0.6  # the deadline as the server sees it (a little clock slack)
    assert long == TRITON_TIMEOUT_S
    assert unset == TRITON_TIMEOUT_S


def test_emoji_text_is_classified(stub):
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="🔥🔥 gg 😂"), timeout=5)
    assert len(verdict.scores) == len(LABELS)


def test_batch_keeps_request_order(stub, fake):
    counts = [4, 1, 3, 2]
    response = stub.ClassifyTextBatch(
        moderation_pb2.ClassifyTextBatchRequest(texts=[words(n) for n in counts], request_id="batch-7"), timeout=5
    )
    assert [v.top_category for v in response.verdicts] == [EXPECTED[n][0] for n in counts]
    assert [list(v.flagged) for v in response.verdicts] == [EXPECTED[n][2] for n in counts]
    assert {v.request_id for v in response.verdicts} == {"batch-7"}
    (call,) = fake.calls  # one model call for the whole batch, padded to its longest text
    assert call["ids"].shape == (4, 6)


def test_batch_at_the_limit_is_accepted(stub):
    texts = ["x" * MAX_TEXT_CHARS] * MAX_BATCH_TEXTS
    response = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=5)
    assert len(response.verdicts) == MAX_BATCH_TEXTS


def test_model_info(stub):
    info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=5)
    assert list(info.categories) == LABELS
    assert info.model_name == "toxicity"
    assert info.model_version == "1"
    assert dict(info.thresholds) == pytest.approx(
        {"profanity": 0.5, "insult_harassment": 0.5, "hate_identity_attack": 0.5, "threat": 0.4}
    )
    assert info.max_text_chars == MAX_TEXT_CHARS
    assert info.max_batch_texts == MAX_BATCH_TEXTS


# --- invalid input ---------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_or_whitespace_text_is_invalid(stub, fake, text):
    error = rpc_error(stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text=text))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "empty" in error.details()
    assert not fake.calls  # rejected before the model


def test_text_at_the_limit_passes_and_over_it_is_invalid(stub):
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="x" * MAX_TEXT_CHARS), timeout=5)
    error = rpc_error(stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="x" * (MAX_TEXT_CHARS + 1)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit is {MAX_TEXT_CHARS}" in error.details()


def test_empty_batch_is_invalid(stub):
    error = rpc_error(stub.ClassifyTextBatch, moderation_pb2.ClassifyTextBatchRequest(texts=[]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts is empty" in error.details()


def test_batch_over_the_limit_is_invalid(stub, fake):
    texts = ["gg"] * (MAX_BATCH_TEXTS + 1)
    error = rpc_error(stub.ClassifyTextBatch, moderation_pb2.ClassifyTextBatchRequest(texts=texts))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit is {MAX_BATCH_TEXTS}" in error.details()
    assert not fake.calls


@pytest.mark.parametrize(
    ("texts", "where"),
    [(["gg", " "], "texts[1] is empty"), (["x" * (MAX_TEXT_CHARS + 1), "gg"], "texts[0] is 41 characters")],
)
def test_one_bad_text_fails_the_batch_and_is_named(stub, texts, where):
    error = rpc_error(stub.ClassifyTextBatch, moderation_pb2.ClassifyTextBatchRequest(texts=texts))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert where in error.details()


# --- model failures ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raised", "code", "details"),
    [
        (BackendUnavailable("model server unavailable"), grpc.StatusCode.UNAVAILABLE, "model server unavailable"),
        (Overloaded("overloaded: the model queue is full"), grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        (BackendTimeout("deadline exceeded"), grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"),
        (ModerationError("model call failed (StatusCode.INTERNAL): secret"), grpc.StatusCode.INTERNAL, "internal error"),
        (RuntimeError("secret stack detail"), grpc.StatusCode.INTERNAL, "internal error"),
    ],
    ids=["unavailable", "overloaded", "timeout", "moderation-error", "runtime-error"],
)
def test_classifier_errors_become_status_codes(stub, fake, raised, code, details):
    fake.error = raised
    for call, request in (
        (stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="gg")),
        (stub.ClassifyTextBatch, moderation_pb2.ClassifyTextBatchRequest(texts=["gg", "wp"])),
    ):
        error = rpc_error(call, request)
        assert error.code() == code
        if code == grpc.StatusCode.INTERNAL:
            assert error.details() == "internal error"  # nothing internal leaks to the caller
        else:
            assert details in error.details()


def test_wrong_score_shape_is_internal(stub, fake):
    fake.scores_override = np.full((1, 3), 1 / 3, dtype=np.float32)  # 3 scores, the version has 5 labels
    error = rpc_error(stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="gg"))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"


def test_service_keeps_serving_after_errors(stub, fake):
    fake.error = RuntimeError("boom")
    rpc_error(stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="gg"))
    fake.error = None
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5).model_version == "1"


# --- concurrency limit ---------------------------------------------------------------------------
def test_call_over_max_in_flight_is_resource_exhausted(start_gateway):
    _, fake, channel = start_gateway(max_in_flight=1)
    stub = moderation_pb2_grpc.ModerationStub(channel)
    fake.hold = threading.Event()
    held = stub.ClassifyText.future(moderation_pb2.ClassifyTextRequest(text=words(1)), timeout=10)
    try:
        assert fake.entered.wait(5), "the first call never reached the classifier"
        error = rpc_error(stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="wp"))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        fake.hold.set()
    assert held.result().top_category == "non_toxic"  # the held call still completes
    fake.hold = None
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="wp"), timeout=5).model_version == "1"


# --- health and readiness ----------------------------------------------------------------------
def test_health_is_serving_once_ready(shared):
    _, _, channel = shared
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    assert health_status(channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING


def test_health_follows_the_model_servers_readiness(start_gateway):
    gateway, fake, channel = start_gateway()
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    fake.versions = []
    assert gateway.monitor.check_once() is False
    assert health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_status(channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.NOT_SERVING
    fake.versions = ["1"]
    assert gateway.monitor.check_once() is True
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING


def test_not_ready_at_start_is_not_serving_and_unavailable(start_gateway):
    fake = FakeClassifier()
    fake.versions = []
    gateway, _, channel = start_gateway(fake)
    assert health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    stub = moderation_pb2_grpc.ModerationStub(channel)
    for call, request in (
        (stub.ClassifyText, moderation_pb2.ClassifyTextRequest(text="gg")),
        (stub.GetModelInfo, moderation_pb2.GetModelInfoRequest()),
    ):
        error = rpc_error(call, request)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "model not ready" in error.details()
    assert not fake.calls
    fake.versions = ["1"]
    assert gateway.monitor.check_once() is True
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5).model_version == "1"


def test_a_newer_ready_version_does_not_replace_the_serving_one(start_gateway):
    gateway, fake, channel = start_gateway()
    fake.versions = ["1", "2"]  # switching versions is the admin's job, not the monitor's
    assert gateway.monitor.check_once() is True
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    stub = moderation_pb2_grpc.ModerationStub(channel)
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5).model_version == "1"


def test_falls_back_to_the_highest_ready_version_when_the_serving_one_goes(start_gateway, model_repo):
    shutil.copytree(model_repo / "toxicity" / "1", model_repo / "toxicity" / "5", dirs_exist_ok=True)
    gateway, fake, channel = start_gateway()
    fake.versions = ["5"]
    assert gateway.monitor.check_once() is True
    stub = moderation_pb2_grpc.ModerationStub(channel)
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5).model_version == "5"
    assert fake.calls[-1]["version"] == "5"


def test_fallback_version_without_files_is_not_serving(start_gateway):
    gateway, fake, channel = start_gateway()
    fake.versions = ["2"]  # version 1 went away; the gateway has no files for version 2
    assert gateway.monitor.check_once() is False
    assert health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING


def test_pinned_version_is_served_only_when_ready(start_gateway):
    fake = FakeClassifier()
    fake.versions = ["1", "2"]
    _, _, channel = start_gateway(fake, model_version="1")  # pinned below the highest ready version
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    stub = moderation_pb2_grpc.ModerationStub(channel)
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5).model_version == "1"
    assert fake.calls[-1]["version"] == "1"


def test_stop_closes_the_classifier_and_the_port(model_repo):
    fake = FakeClassifier()
    settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="")
    gateway, port = create_server(settings, classifier=fake, voice=None)
    gateway.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
        gateway.stop(0)
        assert fake.closed
        error = rpc_error(moderation_pb2_grpc.ModerationStub(channel).ClassifyText,
                          moderation_pb2.ClassifyTextRequest(text="gg"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- admin API through the same boundary ---------------------------------------------------------
ADMIN_TOKEN = "unit-test-admin-token-0123456789abcdef"


def test_admin_calls_get_their_status_codes(model_repo, tmp_path):
    from contract.pb import admin_pb2, admin_pb2_grpc

    token_file = write_secret_file(tmp_path / "token", ADMIN_TOKEN)
    settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="127.0.0.1:0", admin_token_file=str(token_file), policy_dir=str(tmp_path))
    gateway, _ = create_server(settings, classifier=FakeClassifier(), voice=None)
    gateway.start()
    auth = [("authorization", f"Bearer {ADMIN_TOKEN}")]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.admin_port}") as channel:
            admin = admin_pb2_grpc.ModelAdminStub(channel)
            listed = admin.ListModelVersions(admin_pb2.ListModelVersionsRequest(), metadata=auth, timeout=5)
            assert listed.active_version == "1"
            for call, request, code, details in (
                (admin.ActivateVersion, admin_pb2.ActivateVersionRequest(version="9"), grpc.StatusCode.NOT_FOUND,
                 "version '9' not found"),
                (admin.Rollback, admin_pb2.RollbackRequest(), grpc.StatusCode.FAILED_PRECONDITION,
                 "no previous version"),
                (admin.ReloadPolicy, admin_pb2.ReloadPolicyRequest(path=str(tmp_path / "missing.toml")),
                 grpc.StatusCode.INVALID_ARGUMENT, "policy file not found"),
                (admin.Rollback, admin_pb2.RollbackRequest(), grpc.StatusCode.UNAUTHENTICATED, "wrong admin token"),
            ):
                metadata = auth if code != grpc.StatusCode.UNAUTHENTICATED else [("authorization", "Bearer no")]
                error = rpc_error(call, request, metadata=metadata)
                assert error.code() == code
                assert details in error.details()
            # bytes that are no ActivateVersionRequest (a string field that is not UTF-8): the
            # caller's mistake, not an internal error
            with pytest.raises(grpc.RpcError) as malformed:
                activate_raw = channel.unary_unary("/moderation.admin.v1.ModelAdmin/ActivateVersion")  # bytes as they are
                activate_raw(b"\x0a\x02\xff\xfe", metadata=auth, timeout=5)
            assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "malformed request" in malformed.value.details()
    finally:
        gateway.stop(0)


# --- policy: overall score, severity, action and list evidence in the verdict ------------------
def test_verdict_carries_toxic_score_severity_and_action(stub, fake):
    fake.scores_override = np.array([[0.003, 0.171, 0.495, 0.005, 0.326]], dtype=np.float32)
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a a a"), timeout=5)
    assert verdict.toxic  # no category over its threshold, but 1 - non_toxic is
    assert list(verdict.flagged) == ["insult_harassment"]  # then the most likely toxic category
    assert verdict.toxic_score == pytest.approx(0.997, abs=1e-6)
    assert (verdict.severity, verdict.action) == ("high", "block")
    fake.scores_override = None
    clean = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a"), timeout=5)
    assert (clean.toxic_score, clean.severity, clean.action) == (pytest.approx(0.1, abs=1e-6), "none", "allow")


def test_list_matches_come_back_as_evidence_with_offsets_into_the_text(stub, fake):
    texts = ["ok you K.Y.S", "HEADSHOT!!"]
    fake.scores_override = np.array([CLEAN, [0.05, 0.05, 0.2, 0.0, 0.7]], dtype=np.float32)
    blocked, allowed = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=5).verdicts
    assert (blocked.toxic, list(blocked.flagged), blocked.action) == (True, ["threat"], "block")
    assert [(e.start, e.end, e.category, e.weight, e.source) for e in blocked.evidence] == [
        (7, 12, "threat", 1.0, "blocklist")]
    assert texts[0][7:12] == "K.Y.S"
    printed = format_verdict(blocked)  # what moderation-client prints
    assert printed.startswith("TOXIC action=block severity=high ")
    assert "evidence=blocklist:threat@7-12 " in printed
    assert (allowed.toxic, list(allowed.flagged), allowed.severity, allowed.action) == (False, [], "none", "allow")
    assert [(e.start, e.end, e.source) for e in allowed.evidence] == [(0, 8, "allowlist")]


def test_policy_reload_refuses_a_bad_file_and_keeps_the_old_policy(model_repo, tmp_path, caplog):
    from contract.pb import admin_pb2, admin_pb2_grpc

    write_secret_file(tmp_path / "token", ADMIN_TOKEN)
    policy_file, bad = tmp_path / "policy.toml", tmp_path / "bad.toml"
    policy_file.write_text("toxic_threshold = 0.05\n[severity]\nlow = 0.05\n[actions]\nlow = 'block'\n")
    bad.write_text("[severity]\nlow = 0.9\nhigh = 0.5\n")
    settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="127.0.0.1:0", admin_token_file=str(tmp_path / "token"),
                        policy_path=str(policy_file))
    gateway, port = create_server(settings, classifier=FakeClassifier(), voice=None)
    gateway.start()
    auth = [("authorization", f"Bearer {ADMIN_TOKEN}")]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{gateway.admin_port}") as admin_channel, \
                grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            admin, stub = admin_pb2_grpc.ModelAdminStub(admin_channel), moderation_pb2_grpc.ModerationStub(channel)
            request = moderation_pb2.ClassifyTextRequest(text="a")  # toxic_score 0.1
            assert stub.ClassifyText(request, timeout=5).action == "block"  # the strict file
            error = rpc_error(admin.ReloadPolicy, admin_pb2.ReloadPolicyRequest(path=str(bad)), metadata=auth)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "bands must increase" in error.details()
            assert "the old one stays in force" in error.details()
            assert stub.ClassifyText(request, timeout=5).action == "block"
            policy_file.write_text(bad.read_text())
            gateway.reload_policy()  # what SIGHUP calls: logs the refusal, keeps serving
            assert "bands must increase" in caplog.text
            assert stub.ClassifyText(request, timeout=5).action == "block"
            outside = rpc_error(admin.ReloadPolicy, admin_pb2.ReloadPolicyRequest(path=str(DEFAULT_POLICY_PATH)),
                                metadata=auth)  # only files in the policy directory
            assert outside.code() == grpc.StatusCode.INVALID_ARGUMENT and "outside the policy directory" in outside.details()
            shutil.copy(DEFAULT_POLICY_PATH, tmp_path / "default.toml")
            admin.ReloadPolicy(admin_pb2.ReloadPolicyRequest(path="default.toml"), metadata=auth, timeout=5)
            assert stub.ClassifyText(request, timeout=5).action == "allow"
    finally:
        gateway.stop(0)
