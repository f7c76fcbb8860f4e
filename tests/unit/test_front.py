"""The gateway's front (issue 15, parts 1, 3, 4): admission, read timeouts, size limits, parsing,
input checks and log escaping, on an in-process gateway with a fake classifier."""

from __future__ import annotations

import gzip
import logging
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway import wire
from gateway.admission import Admission, Watchdog, peer_host
from gateway.boundary import EscapingFormatter, RequestLog
from gateway.errors import GatewayStartError, InvalidInput, Overloaded
from gateway.inputs import accepted_languages, check_language, check_request_id, is_invisible
from gateway.server import create_server
from gateway.settings import Settings
from gateway.wire import request_limits
from loadtest.slowloris import METHODS, SlowLoris
from tests.front_probes import raw_call
from tests.unit.test_grpc_servicer import FakeClassifier, model_repo  # noqa: F401 (model_repo: a fixture)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


# --- pure pieces -----------------------------------------------------------------------------
@pytest.mark.parametrize("peer, host", [("ipv4:10.0.0.7:5123", "10.0.0.7"), ("ipv6:[::1]:5123", "::1"),
                                        ("unix:/tmp/s", "unix:/tmp/s")])
def test_peer_host_drops_the_port(peer, host):
    assert peer_host(peer) == host


def test_admission_limits_each_connection_each_address_and_the_total():
    admission = Admission(max_in_flight=4, max_per_connection=2, max_per_peer=3)
    with admission.admitted("ipv4:10.0.0.1:1"), admission.admitted("ipv4:10.0.0.1:1"):
        with pytest.raises(Overloaded, match="on this connection"):
            with admission.admitted("ipv4:10.0.0.1:1"):
                pass
        with admission.admitted("ipv4:10.0.0.1:2"):
            with pytest.raises(Overloaded, match="from your address"):
                with admission.admitted("ipv4:10.0.0.1:3"):
                    pass
            with admission.admitted("ipv4:10.0.0.2:1"):
                with pytest.raises(Overloaded, match="4 calls in flight"):
                    with admission.admitted("ipv4:10.0.0.3:1"):
                        pass
    assert admission.in_flight == 0
    with admission.admitted("ipv4:10.0.0.1:1"), admission.admitted("ipv4:10.0.0.1:1"):  # places come back
        pass


def test_watchdog_expires_only_blocks_still_running():
    watchdog = Watchdog()
    try:
        fired = threading.Event()
        with watchdog.deadline(0.05, fired.set):
            assert fired.wait(10)
        late = threading.Event()
        with watchdog.deadline(0.2, late.set):
            pass
        time.sleep(0.5)
        assert not late.is_set()
    finally:
        watchdog.stop()


@pytest.mark.parametrize("request_id", ["x" * 129, "a b", "id\r\nINFO forged", "é", "\x00"])
def test_bad_request_ids_are_refused(request_id):
    with pytest.raises(InvalidInput, match="request_id must be at most 128 printable ASCII"):
        check_request_id(request_id)


def test_request_log_keeps_its_own_id_when_the_request_id_is_bad():
    log = RequestLog("text")
    generated = log.request_id
    with pytest.raises(InvalidInput):
        log.describe("bad\nid", 1, 1)
    assert log.request_id == generated
    log.describe("game-42:msg-7", 1, 1)
    assert log.request_id == "game-42:msg-7"
    check_request_id("x" * 128)


@pytest.mark.parametrize("text", ["", "\u200b\u200c\u200d\ufeff", "\x00\x00", " \u3164 \u2800", "\u0301\u0301", "\u202e"])
def test_invisible_text_counts_as_empty(text):
    assert is_invisible(text)


@pytest.mark.parametrize("text", ["gg", "a\u200b", "🔥", "é", "\u0301a"])
def test_visible_text_is_not_empty(text):
    assert not is_invisible(text)


def test_unknown_language_lists_the_accepted_ones():
    assert accepted_languages("tiny.en") == ("en",)
    check_language("", ("en",))
    check_language("en", ("en",))
    with pytest.raises(InvalidInput, match=r"language 'xx' is not supported; accepted: en$"):
        check_language("xx", ("en",))


def test_log_messages_cannot_start_a_line():
    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, "id=%s", ("x\r\nINFO forged\u2028",), None)
    line = EscapingFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO id=x\\r\\nINFO forged\\u2028"


def test_text_methods_get_small_limits_and_voice_a_large_one():
    limits = request_limits(Settings())
    assert limits["ClassifyText"] == 64 * 1024
    assert limits["ClassifyTextBatch"] < 1024 * 1024
    assert limits["ClassifyVoice"] > Settings().max_audio_bytes


# --- a running gateway with a fake classifier ---------------------------------------------------
@pytest.fixture(scope="module")
def front(model_repo):  # noqa: F811
    fake = FakeClassifier()
    settings = Settings(metrics_listen_address="", listen_address="127.0.0.1:0", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="", request_read_timeout_s=2.0, max_in_flight=16, max_batch_texts=4)
    gateway, port = create_server(settings, classifier=fake, voice=None)
    gateway.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield gateway, f"127.0.0.1:{port}", channel
    channel.close()
    gateway.stop(0)


def classify(channel, text="a", **kwargs):
    stub = moderation_pb2_grpc.ModerationStub(channel)
    return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text, **kwargs), timeout=10, **{})


def status_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_idle_streams_take_a_share_and_are_cancelled_after_the_read_timeout(front):
    gateway, address, channel = front
    loris = SlowLoris(address, 40, source_host="127.0.0.2")  # more streams than max_in_flight (16)
    try:
        deadline = time.monotonic() + 10
        while loris.held > 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loris.held == 12  # 3/4 of max_in_flight (16) on one connection
        assert classify(channel).top_category  # another connection still gets through
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        deadline = time.monotonic() + 20
        while loris.held and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loris.held == 0  # cancelled after request_read_timeout_s
        assert gateway.front.admission.in_flight == 0
    finally:
        loris.close()


def test_a_call_whose_message_never_comes_ends_with_deadline_exceeded(front):
    """The read timeout (2 s here) ends the call with DEADLINE_EXCEEDED, well before the
    caller's own 30 s deadline, and frees its place."""
    gateway, _, channel = front
    never = threading.Event()

    def no_message():
        never.wait(40)
        yield moderation_pb2.ClassifyTextRequest(text="a")

    call = channel.stream_unary("/moderation.v1.Moderation/ClassifyText",
                                request_serializer=moderation_pb2.ClassifyTextRequest.SerializeToString,
                                response_deserializer=moderation_pb2.Verdict.FromString)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        call(no_message(), timeout=30)
    never.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no request message arrived within the server's 2 s" in err.value.details()
    assert time.monotonic() - started < 20
    assert wait_for(lambda: gateway.front.admission.in_flight == 0)


HEALTH_CHECK, HEALTH_WATCH, REFLECTION = METHODS["Check"], METHODS["Watch"], METHODS["ServerReflectionInfo"]


@pytest.mark.parametrize("path, share", [(HEALTH_CHECK, wire.HEALTH_WAITING_PER_PEER),
                                         (HEALTH_WATCH, wire.HEALTH_WAITING_PER_PEER),
                                         (REFLECTION, wire.REFLECTION_PER_PEER)])
def test_idle_health_or_reflection_streams_lock_nobody_out(front, path, share):
    """Idle Check, Watch or reflection streams from one client hold only that client's share
    (health: 4 late messages per address; reflection: 2 sessions per address), the rest end at
    once, and calls and probes from elsewhere are answered."""
    gateway, address, channel = front
    loris = SlowLoris(address, 40, path=path, source_host="127.0.0.2")
    try:
        assert wait_for(lambda: loris.held <= share, timeout_s=1.5)  # well before the 2 s read timeouts
        for _ in range(5):
            assert classify(channel).top_category
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        loris.close()
    assert wait_for(lambda: gateway.front.admission.in_flight == 0)
    assert wait_for(lambda: gateway.front.health_waiting.in_flight == 0)
    assert wait_for(lambda: gateway.front.reflection_sessions.in_flight == 0)


def test_idle_checks_from_many_addresses_hold_at_most_half_the_health_threads(front):
    gateway, address, channel = front
    crowd = [SlowLoris(address, 10, path=HEALTH_CHECK, source_host=f"127.0.0.{host}") for host in range(2, 6)]
    try:
        assert wait_for(lambda: sum(loris.held for loris in crowd) <= wire.HEALTH_WAITING, timeout_s=1.5)
        for _ in range(5):
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for loris in crowd:
            loris.close()
    assert wait_for(lambda: gateway.front.health_waiting.in_flight == 0)


def test_idle_health_checks_end_after_their_short_read_timeout(front):
    gateway, address, _ = front
    loris = SlowLoris(address, 4, path=HEALTH_CHECK, source_host="127.0.0.3")
    try:
        time.sleep(1.0)
        assert loris.held == 4  # within the limit: waiting, not refused
        assert wait_for(lambda: loris.held == 0, timeout_s=wire.HEALTH_READ_TIMEOUT_S + 5)
        assert wait_for(lambda: gateway.front.health_waiting.in_flight == 0)
    finally:
        loris.close()


def test_a_watch_holds_no_place_once_it_has_its_message(front):
    gateway, _, channel = front
    watches = [health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=30) for _ in range(20)]
    try:
        assert all(next(watch).status == health_pb2.HealthCheckResponse.SERVING for watch in watches)
        # 20 open Watches, more than the 16 health threads: none holds a thread, a place or a count
        assert wait_for(lambda: gateway.front.health_waiting.in_flight == 0)
        assert gateway.front.admission.in_flight == 0
        assert classify(channel).top_category
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for watch in watches:
            watch.cancel()


@pytest.mark.parametrize("path", [HEALTH_CHECK, HEALTH_WATCH, REFLECTION])
@pytest.mark.parametrize("payload", [b"\x0a\x03a\xffc", b"\x0a\x05ab", b"\xff\xff\xff"])
def test_malformed_health_and_reflection_requests_are_invalid_argument(front, path, payload):
    _, _, channel = front
    with pytest.raises(grpc.RpcError) as err:
        if path == HEALTH_CHECK:
            channel.unary_unary(path)(payload, timeout=10)
        elif path == HEALTH_WATCH:
            list(channel.unary_stream(path)(payload, timeout=10))
        else:
            list(channel.stream_stream(path)(iter([payload]), timeout=10))
    assert err.value.code() == INVALID
    assert "malformed request" in err.value.details()


def test_watch_and_reflection_still_answer(front):
    _, _, channel = front
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=10)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    info = channel.stream_stream(REFLECTION, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    answers = list(info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    names = {service.name for service in answers[0].list_services_response.service}
    assert {"moderation.v1.Moderation", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_a_watch_without_its_message_is_invalid(front):
    _, _, channel = front
    with pytest.raises(grpc.RpcError) as err:
        list(channel.stream_stream(HEALTH_WATCH)(iter([]), timeout=10))
    assert err.value.code() == INVALID and "Watch needs one request message" in err.value.details()


def test_an_idle_reflection_session_ends_after_the_read_timeout(front):
    """Every message of a reflection session is due within the read timeout (2 s here), not
    only the first, so a session left open holds its place no longer."""
    gateway, _, channel = front
    more = threading.Event()

    def one_question_then_silence():
        yield reflection_pb2.ServerReflectionRequest(list_services="")
        more.wait(40)

    info = channel.stream_stream(REFLECTION, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    call = info(one_question_then_silence(), timeout=30)
    assert next(call).list_services_response.service
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    more.set()
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no request message arrived within the server's 2 s" in err.value.details()
    assert wait_for(lambda: gateway.front.reflection_sessions.in_flight == 0)


@pytest.mark.parametrize("payload", [b"\x0a\x03a\xffc", b"\x0a\x05ab", b"\x12\x03\xff\xfe\xfd", b"\xff\xff\xff"])
def test_malformed_requests_are_invalid_argument(front, payload):
    _, _, channel = front
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "ClassifyText", payload, timeout=10)
    assert err.value.code() == INVALID
    assert "malformed request" in err.value.details()


def test_oversize_and_gzip_bombs_are_refused_before_parsing(front):
    _, _, channel = front
    huge = moderation_pb2.ClassifyTextRequest(text="a" * 200_000)
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "ClassifyText", huge.SerializeToString(), timeout=10, compression=grpc.Compression.Gzip)
    assert err.value.code() == INVALID and "the limit is 65536 bytes" in err.value.details()
    assert len(gzip.compress(huge.SerializeToString())) < 1000
    many = moderation_pb2.ClassifyTextBatchRequest(texts=["a"] * 100_000)
    with pytest.raises(grpc.RpcError) as err:
        raw_call(channel, "ClassifyTextBatch", many.SerializeToString(), timeout=10)
    assert err.value.code() == INVALID
    assert classify(channel, "a").top_category  # small gzip calls and plain calls work


def test_batch_count_is_checked(front):
    _, _, channel = front
    stub = moderation_pb2_grpc.ModerationStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=["a"] * 5), timeout=10)
    assert err.value.code() == INVALID and "the limit is 4" in err.value.details()


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00", "\ufeff \u200d"])
def test_invisible_only_text_is_invalid(front, text):
    _, _, channel = front
    assert status_of(lambda: classify(channel, text)) == INVALID


def test_long_or_forging_request_ids_are_invalid(front):
    _, _, channel = front
    assert status_of(lambda: classify(channel, request_id="x" * 100_000)) == INVALID
    assert status_of(lambda: classify(channel, request_id="x\r\nINFO forged")) == INVALID
    assert classify(channel, request_id="ok-1").request_id == "ok-1"


def test_a_taken_port_fails_with_its_number(front, model_repo):  # noqa: F811
    _, address, _ = front
    settings = Settings(metrics_listen_address="", listen_address=address, model_repository=str(model_repo), admin_listen_address="")
    with pytest.raises(GatewayStartError, match=f"port {address.rpartition(':')[2]} is in use"):
        create_server(settings, classifier=FakeClassifier(), voice=None)


@pytest.fixture
def holding_gateway(model_repo):  # noqa: F811
    """A gateway of 2 places whose fake classifier holds each call until released."""
    fake = FakeClassifier()
    fake.hold = threading.Event()
    settings = Settings(metrics_listen_address="", listen_address="127.0.0.1:0", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="", max_in_flight=2, max_in_flight_per_connection=2,
                        max_in_flight_per_peer=2, default_deadline_s=1.0, triton_timeout_s=30)
    gateway, port = create_server(settings, classifier=fake, voice=None)
    gateway.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield fake, channel
    fake.hold.set()
    channel.close()
    gateway.stop(0)


def test_health_answers_while_every_place_is_taken(holding_gateway):
    fake, channel = holding_gateway
    stub = moderation_pb2_grpc.ModerationStub(channel)
    held = [stub.ClassifyText.future(moderation_pb2.ClassifyTextRequest(text="a"), timeout=30) for _ in range(2)]
    assert wait_for(lambda: len(fake.calls) == 2)
    assert status_of(lambda: classify(channel)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    fake.hold.set()
    assert all(call.result().top_category for call in held)


def test_a_call_without_a_deadline_ends_after_the_default_one(holding_gateway):
    fake, channel = holding_gateway
    stub = moderation_pb2_grpc.ModerationStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a"))  # no timeout: default_deadline_s (1 s)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "default of 1 s" in err.value.details()


def wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(sorted(wire._METHODS)))
def test_deserializers_never_raise(data, method):
    request_class = wire._METHODS[method][0]
    decoded = wire._deserializer(method, request_class, 200)(data)
    assert isinstance(decoded, (request_class, wire.Undecodable))
    if len(data) > 200:
        assert isinstance(decoded, wire.Undecodable) and "the limit is 200 bytes" in decoded.reason


def test_old_connections_are_closed_with_their_held_streams(model_repo):  # noqa: F811
    settings = Settings(metrics_listen_address="", listen_address="127.0.0.1:0", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="", request_read_timeout_s=120, max_connection_age_s=1,
                        max_connection_age_grace_s=1)
    gateway, port = create_server(settings, classifier=FakeClassifier(), voice=None)
    gateway.start()
    loris = SlowLoris(f"127.0.0.1:{port}", 4)
    try:
        assert loris.closed.wait(30)  # GOAWAY after about 1 s, the connection cut 1 s later
        assert wait_for(lambda: gateway.front.admission.in_flight == 0)
    finally:
        loris.close()
        gateway.stop(0)


def _goaway_within(address: str, timeout_s: float, ping_every_s: float = 0.0):
    """Opens an HTTP/2 connection with no call on it (pinging every ping_every_s if set) and
    returns the server's GOAWAY (h2's ConnectionTerminated), or None if none came in timeout_s."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    host, _, port = address.rpartition(":")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection((host, int(port)), timeout=0.1) as sock:
        sock.sendall(conn.data_to_send())
        deadline, next_ping = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() < deadline:
            if ping_every_s and time.monotonic() >= next_ping:
                conn.ping(b"12345678")
                next_ping += ping_every_s
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                return None  # closed without a GOAWAY
            for event in conn.receive_data(data) if data else ():
                if isinstance(event, h2.events.ConnectionTerminated):
                    return event
            sock.sendall(conn.data_to_send())
    return None


def _gateway_with(model_repo, **changes):  # noqa: F811
    settings = Settings(metrics_listen_address="", listen_address="127.0.0.1:0", model_repository=str(model_repo),
                        health_poll_s=3600, admin_listen_address="", **changes)
    gateway, port = create_server(settings, classifier=FakeClassifier(), voice=None)
    gateway.start()
    return gateway, f"127.0.0.1:{port}"


def test_an_idle_connection_is_closed_after_max_connection_idle(model_repo):  # noqa: F811
    gateway, address = _gateway_with(model_repo, max_connection_idle_s=1)
    try:
        goaway = _goaway_within(address, 15)
        assert goaway is not None  # with the default (5 min), a quiet connection keeps going: see below
    finally:
        gateway.stop(0)


def test_a_client_pinging_too_often_is_sent_away(model_repo):  # noqa: F811
    """Pings every 0.2 s with no call open: past two strikes, GOAWAY ENHANCE_YOUR_CALM."""
    import h2.errors

    gateway, address = _gateway_with(model_repo)
    try:
        goaway = _goaway_within(address, 15, ping_every_s=0.2)
        assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert _goaway_within(address, 2) is None  # a quiet client keeps its connection
    finally:
        gateway.stop(0)


def test_every_server_refuses_to_share_its_port():
    front = wire.Front(Settings())
    options = dict(front.server_options())
    front.close()
    assert options["grpc.so_reuseport"] == 0
    assert options["grpc.max_concurrent_streams"] > Settings().max_in_flight


def test_a_unary_call_without_its_message_is_invalid(front):
    _, _, channel = front
    call = channel.stream_unary("/moderation.v1.Moderation/ClassifyText")  # bytes in, bytes out
    with pytest.raises(grpc.RpcError) as err:
        call(iter([]), timeout=10)
    assert err.value.code() == INVALID and "needs one request message" in err.value.details()
