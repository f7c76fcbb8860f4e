"""Caller identity and limits without a server: keys file, token bucket, shares, the decision scope."""

from __future__ import annotations

import threading

import grpc
import pytest

from contract.pb import moderation_pb2
from gateway.access import Access, is_loopback
from gateway.boundary import CALLER_ID
from gateway.caller_interceptor import CallerInterceptor, api_key_from, redact
from gateway.callers import (
    CONCURRENCY_RETRY_MS,
    Caller,
    CallerEntry,
    CallerRegistry,
    CallerRejected,
    KeysFileError,
    TokenBucket,
    generate_key,
    hash_key,
    parse_keys,
    short_id,
)
from gateway.errors import GatewayStartError
from gateway.keys_cli import add_caller
from gateway.keys_cli import main as keys_main
from gateway.settings import Settings


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def entry(name="game-eu", key="k-" + "a" * 40, **fields) -> CallerEntry:
    return CallerEntry(name, hash_key(key) if key else "", **fields)


def write_keys(path, *entries: CallerEntry):
    path.write_text("".join(_toml(e) for e in entries))
    return path


def _toml(e: CallerEntry) -> str:
    from gateway.keys_cli import entry_toml

    return entry_toml(e)


# --- keys and the file -----------------------------------------------------------------------------
def test_generated_keys_are_long_random_and_stored_as_sha256():
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    key = keys.pop()
    assert key.startswith("mk_") and len(key) >= 3 + 43  # 32 bytes, url-safe base64
    stored = hash_key(key)
    assert stored.startswith("sha256:") and len(stored) == 7 + 64 and key not in stored
    assert CallerEntry("x", stored).caller_id == short_id(key) == stored[7:19]


def test_keys_file_round_trips_every_field(tmp_path):
    e = entry(tls_identity="eu.example", rate_per_s=2.5, burst=3, concurrency=4, scope="scores")
    assert parse_keys(_toml(e)) == [e]


@pytest.mark.parametrize("text, message", [
    ('[[caller]]\nname = "a"\n', "needs key_hash or tls_identity"),
    ('[[caller]]\nname = "a"\nkey_hash = "md5:00"\n', "key_hash must be"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\nscope = "all"\n', "scope must be"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\nrate_per_s = 0\n', "rate_per_s must be > 0"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\nconcurrency = 0\n', "concurrency >= 1"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\nrate = 5\n', "unknown field(s) rate"),
    ('[[caller]]\nname = "a b"\ntls_identity = "x"\n', "letters, digits"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\n[[caller]]\nname = "a"\ntls_identity = "y"\n', "share a name"),
    ('[[caller]]\nname = "a"\ntls_identity = "x"\n[[caller]]\nname = "b"\ntls_identity = "x"\n', "share a tls_identity"),
    ('[callers]\n', "unknown table"),
    ('name = ', "not valid TOML"),
])
def test_bad_keys_files_are_refused_with_the_reason(text, message):
    with pytest.raises(KeysFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_keys(text)


# --- limits ----------------------------------------------------------------------------------------
def test_token_bucket_allows_the_burst_then_says_how_long_to_wait():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4.0, burst=2, clock=clock)
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() == 0
    clock.now += 100  # a long quiet spell refills only up to the burst
    assert [bucket.take() for _ in range(3)][:2] == [0, 0]


def test_a_caller_over_its_rate_gets_resource_exhausted_with_a_retry_delay():
    clock = FakeClock()
    caller = Caller.of(entry(rate_per_s=2.0, burst=1), clock)
    caller.admit()
    caller.release()
    with pytest.raises(CallerRejected) as refused:
        caller.admit()
    assert refused.value.code == "RESOURCE_EXHAUSTED" and refused.value.retry_after_ms == 500
    assert "over its rate" in str(refused.value)


def test_a_caller_over_its_share_is_refused_until_a_call_ends():
    caller = Caller.of(entry(rate_per_s=1000, burst=1000, concurrency=2))
    caller.admit()
    caller.admit()
    with pytest.raises(CallerRejected) as refused:
        caller.admit()
    assert refused.value.retry_after_ms == CONCURRENCY_RETRY_MS and "2 calls in flight" in str(refused.value)
    caller.release()
    caller.admit()


# --- the registry ----------------------------------------------------------------------------------
def test_registry_identifies_by_key_then_by_certificate_name(tmp_path):
    key = generate_key()
    path = write_keys(tmp_path / "keys.toml", entry("by-key", key), entry("by-cert", "", tls_identity="eu.example"))
    registry = CallerRegistry(str(path))
    assert registry.identify(key, ["eu.example"]).entry.name == "by-key"  # a key wins over the certificate
    assert registry.identify("", ["CN-other", "eu.example"]).entry.name == "by-cert"
    for key_given, names, code in (("mk_wrong", [], "UNAUTHENTICATED"), ("", [], "UNAUTHENTICATED"),
                                   ("", ["stranger.example"], "PERMISSION_DENIED")):
        with pytest.raises(CallerRejected) as refused:
            registry.identify(key_given, names)
        assert refused.value.code == code


def test_registry_reloads_a_changed_file_and_keeps_unchanged_callers_counters(tmp_path):
    clock = FakeClock()
    old_key, new_key = generate_key(), generate_key()
    path = write_keys(tmp_path / "keys.toml", entry("old", old_key, rate_per_s=0.1, burst=1))
    registry = CallerRegistry(str(path), clock=clock)
    registry.identify(old_key, []).admit()  # uses the only token
    add_caller(path, entry("new", new_key))
    with pytest.raises(CallerRejected):  # not looked at again within RELOAD_CHECK_S
        registry.identify(new_key, [])
    clock.now += 1.0
    assert registry.identify(new_key, []).entry.name == "new"
    with pytest.raises(CallerRejected, match="over its rate"):  # same bucket as before the reload
        registry.identify(old_key, []).admit()


def test_a_bad_keys_file_on_reload_keeps_the_callers_in_force(tmp_path, caplog):
    key = generate_key()
    path = write_keys(tmp_path / "keys.toml", entry("a", key))
    registry = CallerRegistry(str(path))
    path.write_text("not toml = ")
    assert registry.reload() is False
    assert registry.identify(key, []).entry.name == "a"
    assert "keys file not reloaded" in caplog.text


# --- the interceptor, called directly ---------------------------------------------------------------
class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, auth=None):
        self.auth, self.trailing, self.status = auth or {}, (), None

    def auth_context(self):
        return self.auth

    def set_trailing_metadata(self, metadata):
        self.trailing = metadata

    def abort(self, code, details):
        self.status = (code, details)
        raise Aborted(details)


class Details:
    def __init__(self, method, metadata):
        self.method, self.invocation_metadata = method, metadata


def _handler(interceptor, behaviour, metadata, method="/moderation.v1.Moderation/ClassifyText"):
    return interceptor.intercept_service(lambda details: grpc.unary_unary_rpc_method_handler(behaviour),
                                         Details(method, metadata))


def test_interceptor_holds_each_caller_to_its_own_share(tmp_path):
    small, large = generate_key(), generate_key()
    path = write_keys(tmp_path / "keys.toml", entry("small", small, concurrency=1, scope="scores"),
                      entry("large", large, concurrency=8, scope="scores"))
    interceptor = CallerInterceptor(CallerRegistry(str(path)))
    inside, release = threading.Event(), threading.Event()

    def slow(request, context):
        inside.set()
        release.wait(10)
        return moderation_pb2.GetModelInfoRequest()

    held = threading.Thread(target=_handler(interceptor, slow, [("authorization", f"Bearer {small}")]).unary_unary,
                            args=(None, FakeContext()))
    held.start()
    assert inside.wait(10)
    context = FakeContext()
    with pytest.raises(Aborted, match="calls in flight"):
        _handler(interceptor, slow, [("x-api-key", small)]).unary_unary(None, context)
    assert context.status[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert context.trailing == (("retry-after-ms", str(CONCURRENCY_RETRY_MS)),)
    quick = _handler(interceptor, lambda request, context: moderation_pb2.GetModelInfoRequest(),
                     [("authorization", f"Bearer {large}")])
    assert quick.unary_unary(None, FakeContext()) is not None  # the other caller is unaffected
    release.set()
    held.join(10)
    assert _handler(interceptor, slow, [("x-api-key", small)]).unary_unary(None, FakeContext()) is not None


def test_interceptor_leaves_health_alone_and_sets_the_hashed_caller_id(tmp_path):
    key = generate_key()
    interceptor = CallerInterceptor(CallerRegistry(str(write_keys(tmp_path / "k.toml", entry("a", key)))))
    plain = grpc.unary_unary_rpc_method_handler(lambda request, context: "ok")
    assert interceptor.intercept_service(lambda d: plain, Details("/grpc.health.v1.Health/Check", [])) is plain
    seen = []
    handler = _handler(interceptor, lambda request, context: seen.append(CALLER_ID.get()),
                       [("authorization", f"Bearer {key}")])
    handler.unary_unary(None, FakeContext())
    assert seen == [short_id(key)] and key not in seen[0]
    with pytest.raises(Aborted, match="API key"):
        _handler(interceptor, lambda r, c: None, []).unary_unary(None, FakeContext())


def test_api_key_from_bearer_or_x_api_key():
    assert api_key_from([("authorization", "Bearer abc ")]) == "abc"
    assert api_key_from([("x-api-key", "xyz")]) == "xyz"
    assert api_key_from([("authorization", "Basic abc")]) == ""
    assert api_key_from(None) == ""


# --- the decision scope ----------------------------------------------------------------------------
def _verdict():
    return moderation_pb2.Verdict(
        scores=[moderation_pb2.CategoryScore(category="insult", score=0.7)], top_category="insult", toxic=True,
        flagged=["insult"], toxic_score=0.7, severity="medium", action="review", model_version="3",
        evidence=[moderation_pb2.Evidence(start=0, end=3, category="insult", weight=0.4, source="model"),
                  moderation_pb2.Evidence(start=4, end=7, category="threat", weight=1, source="blocklist")])


def test_decision_scope_strips_scores_from_every_response_kind():
    verdict = redact(_verdict())
    assert (verdict.toxic, verdict.severity, verdict.action, list(verdict.flagged)) == (True, "medium", "review", ["insult"])
    assert not verdict.scores and verdict.toxic_score == 0 and verdict.top_category == ""
    assert [e.source for e in verdict.evidence] == ["blocklist"]
    batch = redact(moderation_pb2.ClassifyTextBatchResponse(verdicts=[_verdict(), _verdict()]))
    assert all(not v.scores for v in batch.verdicts)
    voice = redact(moderation_pb2.VoiceVerdict(verdict=_verdict(), segments=[moderation_pb2.VoiceSegment(verdict=_verdict())]))
    assert not voice.verdict.scores and not voice.segments[0].verdict.scores
    assert not redact(moderation_pb2.VoiceEvent(verdict=_verdict())).verdict.scores
    info = redact(moderation_pb2.ModelInfo(model_version="3", thresholds={"insult": 0.5}, categories=["a"]))
    assert not info.thresholds and list(info.categories) == ["a"]


# --- exposure, settings, the CLI -------------------------------------------------------------------
@pytest.mark.parametrize("address, loopback", [("127.0.0.1:1", True), ("localhost:1", True), ("[::1]:1", True),
                                               ("0.0.0.0:1", False), ("[::]:1", False), ("gw.example:1", False)])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_an_open_gateway_refuses_to_listen_beyond_loopback_unless_told(tmp_path, caplog):
    with pytest.raises(GatewayStartError, match="allow-anonymous"):
        Access(Settings(metrics_listen_address="", listen_address="0.0.0.0:0"))
    Access(Settings(metrics_listen_address="", listen_address="0.0.0.0:0", allow_anonymous=True))
    assert "OPEN to anyone" in caplog.text
    path = write_keys(tmp_path / "keys.toml", entry("a"))
    assert Access(Settings(metrics_listen_address="", listen_address="0.0.0.0:0", api_keys_file=str(path))).registry is not None
    with pytest.raises(GatewayStartError, match="cannot read keys file"):
        Access(Settings(api_keys_file=str(tmp_path / "missing.toml")))


@pytest.mark.parametrize("changes, message", [
    ({"tls_cert": "c.pem"}, "go together"),
    ({"tls_client_auth": "optional", "tls_cert": "c", "tls_key": "k", "tls_ca": "ca"}, "not supported"),
    ({"tls_client_auth": "sometimes"}, "must be one of"),
    ({"tls_ca": "ca.pem"}, "need tls_cert"),
    ({"tls_cert": "c", "tls_key": "k"}, "tls_ca is needed"),  # the admin port requires client certificates
    ({"triton_tls_cert": "c", "triton_tls_key": "k"}, "needs triton_tls_ca"),
])
def test_tls_settings_that_cannot_work_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        Settings(**changes)
    Settings(tls_cert="c", tls_key="k", admin_listen_address="")  # TLS without client certificates


def test_moderation_keys_prints_the_key_once_and_stores_only_its_hash(tmp_path, capsys):
    path = tmp_path / "keys.toml"
    keys_main(["--keys-file", str(path), "add", "game-eu", "--rate-per-s", "5", "--burst", "10"])
    key = capsys.readouterr().out.strip()
    text = path.read_text()
    assert key.startswith("mk_") and key not in text and hash_key(key) in text
    assert (path.stat().st_mode & 0o777) == 0o600
    assert CallerRegistry(str(path)).identify(key, []).entry.burst == 10
    with pytest.raises(SystemExit):
        keys_main(["--keys-file", str(path), "add", "game-eu"])
    assert "share a name" in capsys.readouterr().err
    keys_main(["--keys-file", str(path), "list"])
    listed = capsys.readouterr().out
    assert "game-eu" in listed and short_id(key) in listed and key not in listed


def test_a_stream_holds_its_share_until_it_ends_and_each_event_is_trimmed(tmp_path):
    key = generate_key()
    registry = CallerRegistry(str(write_keys(tmp_path / "k.toml", entry("a", key, concurrency=1))))
    interceptor = CallerInterceptor(registry)
    events = lambda chunks, context: (moderation_pb2.VoiceEvent(utterance=i, verdict=_verdict()) for i in range(2))  # noqa: E731
    handler = interceptor.intercept_service(lambda d: grpc.stream_stream_rpc_method_handler(events),
                                            Details("/moderation.v1.Moderation/StreamVoice", [("x-api-key", key)]))
    stream = handler.stream_stream(iter(()), FakeContext())
    first = next(stream)
    assert first.utterance == 0 and not first.verdict.scores and first.verdict.action == "review"
    caller = registry.identify(key, [])
    assert caller.in_flight == 1
    with pytest.raises(Aborted, match="calls in flight"):
        next(handler.stream_stream(iter(()), FakeContext()))
    assert [e.utterance for e in stream] == [1]
    assert caller.in_flight == 0
