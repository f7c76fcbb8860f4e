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

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.errors import BackendTimeout, BackendUnavailable, ModerationError, Overloaded
from gateway.readiness import SERVICE_NAME
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
EXPECTED = {  # under the shipped default policy
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

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory, minilm_dir):
    """<tmp>/toxicity/1/ with labels, export.json and the MiniLM tokenizer files."""
    root = tmp_path_factory.mktemp("repo")
    version_dir = root / "toxicity" / "1"
    version_dir.mkdir(parents=True)
    (version_dir / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    (version_dir / "export.json").write_text(json.dumps({"max_length": 32}))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (minilm_dir / name).exists():
            shutil.copyfile(minilm_dir / name, version_dir / name)
    return root


@pytest.fixture(scope="module")
def start_gateway(model_repo):
    """Starts gateways (each with its own fake); all are stopped at the end of the module."""
    started = []

    def start(fake=None, **changes):
        fake = fake or FakeClassifier()
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


def test_start_up_objects_and_the_first_version_are_kept_out_of_full_collections(start_gateway):
    """A full garbage collection over start-up's objects paused every call for 110-190 ms."""
    import gc

    gc.unfreeze()
    fake = FakeClassifier()
    fake.versions = []  # no version yet: the first one is loaded after start-up
    gateway, _, _ = start_gateway(fake)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # torch, grpc, transformers' modules
    first_version_objects = [[n] for n in range(5000)]  # as the first version's tokenizer, made after start
    fake.versions = ["1"]
    assert gateway.monitor.check_once() is True
    assert gc.get_freeze_count() >= frozen + len(first_version_objects)

    frozen = gc.get_freeze_count()
    later = [[n] for n in range(5000)]
    models = gateway.service.models
    models.set(models.current())  # a later switch: the old version may still be referenced, so no freeze
    assert gc.get_freeze_count() < frozen + len(later)  # (frozen objects freed meanwhile leave it)
    gc.unfreeze()


def test_start_sets_the_gil_switch_interval(start_gateway):
    """gRPC's serving thread, which turns excess calls away, waits up to this long for the GIL."""
    import sys

    before = sys.getswitchinterval()
    try:
        start_gateway(gil_switch_ms=0.5)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)
    for bad in (0, float("nan"), 5000):
        with pytest.raises(ValueError, match="gil_switch_ms"):
            Settings(gil_switch_ms=bad)


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
    settings = Settings(listen_address="127.0.0.1:0", model_repository=str(model_repo), health_poll_s=3600,
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
