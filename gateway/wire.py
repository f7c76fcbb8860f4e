"""How public calls come off the wire, before the servicer sees them (issue 15, parts 1 and 4).

Why not the generated add_ModerationServicer_to_server: gRPC's sync server starts a unary
handler only once the request message has arrived, yet the call holds a worker thread and an
RPC slot from its HEADERS on; a client sending HEADERS and no DATA held every slot, unseen by
our code. So every method is registered request-streaming (the same bytes on the wire): our code
runs at HEADERS, admits the call (gateway.admission: overall and per peer), waits a bounded
time for the request message, and parses it with a deserializer that checks the method's size
limit first and never raises (malformed bytes or invalid UTF-8 become INVALID_ARGUMENT at the
error boundary instead of gRPC's INTERNAL and a traceback). Health and reflection come off the
wire the same way: a client holding idle Check, Watch or reflection streams had locked everyone
out just as one holding ClassifyText streams had. Check and Watch run on threads of their own,
and only one whose message is late is counted (a few per address); a Watch then holds no thread.
Reflection sessions have threads and a small limit of their own. Neither takes a call's place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import logging
import threading
from concurrent import futures
from contextlib import nullcontext
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from contract.pb import admin_pb2, moderation_pb2
from gateway.admission import Admission, PeerLogLimit, Watchdog, peer_host
from gateway.errors import GatewayStartError, InvalidInput, Overloaded
from gateway.settings import Settings

logger = logging.getLogger(__name__)

SERVICE = "moderation.v1.Moderation"
HEALTH_SERVICE = "grpc.health.v1.Health"
HEALTH_THREADS = 16  # health's own threads: probes are answered while every RPC thread is busy
# A probe's request message comes with its HEADERS. A Check or Watch still waiting for it after
# HEALTH_PROMPT_S is counted, and ended at once past HEALTH_WAITING_PER_PEER from its address or
# HEALTH_WAITING in all, so idle health streams hold at most half the threads; the message must
# arrive within HEALTH_READ_TIMEOUT_S.
HEALTH_PROMPT_S = 0.05
HEALTH_WAITING_PER_PEER = 4
HEALTH_WAITING = HEALTH_THREADS // 2
HEALTH_READ_TIMEOUT_S = 2.0
# reflection sessions (grpcurl, grpc_cli) run on threads of their own, so they never take a
# call's place or thread: at most this many at once, and REFLECTION_PER_PEER from one address;
# twice as many threads, so the excess is turned away at once instead of queued
REFLECTION_SESSIONS = 4
REFLECTION_PER_PEER = 2
HEALTH_REQUEST_LIMIT_BYTES = 64 * 1024  # health and reflection requests hold a name
ADMIN_REQUEST_LIMIT_BYTES = 64 * 1024  # admin requests hold a version number or a file path
NO_REUSEPORT = ("grpc.so_reuseport", 0)  # gRPC shares a port by default: a second gateway would split the calls
NO_DEADLINE_S = 1e9  # context.time_remaining() of a call without a deadline is about 2**63
REQUEST_OVERHEAD_BYTES = 4 * 1024  # request_id, flags, field tags around the limited fields
UTF8_MAX_BYTES_PER_CHAR = 4
# Buffers from this size on get their own mapping, returned to the system when freed. glibc
# otherwise raises its threshold after the first large free, and the memory of a burst of large
# (or decompressed) messages stays in the process (docs/decisions/0015-front-limits.md).
MMAP_THRESHOLD_BYTES = 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers, from glibc's malloc.h
MIN_TEXT_REQUEST_BYTES = 64 * 1024  # text calls are never refused for a size a valid text can reach


@dataclass(frozen=True)
class Undecodable:
    """What the deserializer hands on instead of a message it refused; the boundary answers
    INVALID_ARGUMENT with `reason`."""

    reason: str


def check_decoded(request) -> None:
    """Raises InvalidInput for a request the wire layer could not decode."""
    if isinstance(request, Undecodable):
        raise InvalidInput(request.reason)


def request_limits(settings: Settings) -> dict[str, int]:
    """The largest serialized request each method accepts, checked before parsing."""
    text_bytes = settings.max_text_chars * UTF8_MAX_BYTES_PER_CHAR + 8  # a text's bytes and its tag
    return {
        "ClassifyText": max(MIN_TEXT_REQUEST_BYTES, text_bytes + REQUEST_OVERHEAD_BYTES),
        "ClassifyTextBatch": max(MIN_TEXT_REQUEST_BYTES, settings.max_batch_texts * text_bytes + REQUEST_OVERHEAD_BYTES),
        "ClassifyVoice": settings.max_audio_bytes + REQUEST_OVERHEAD_BYTES,
        "StreamVoice": settings.max_chunk_bytes + REQUEST_OVERHEAD_BYTES,
        "GetModelInfo": REQUEST_OVERHEAD_BYTES,
    }


def receive_limit_bytes(settings: Settings) -> int:
    """gRPC's own receive limit (grpc.max_receive_message_length), applied after decompression:
    twice the largest method limit, so a clip somewhat over its limit reaches our check and gets
    INVALID_ARGUMENT naming the limit; past this gRPC answers RESOURCE_EXHAUSTED itself."""
    return 2 * max(request_limits(settings).values())


_METHODS = {  # name: (request, response, request streaming, response streaming)
    "ClassifyText": (moderation_pb2.ClassifyTextRequest, moderation_pb2.Verdict, False, False),
    "ClassifyTextBatch": (moderation_pb2.ClassifyTextBatchRequest, moderation_pb2.ClassifyTextBatchResponse, False, False),
    "ClassifyVoice": (moderation_pb2.ClassifyVoiceRequest, moderation_pb2.VoiceVerdict, False, False),
    "StreamVoice": (moderation_pb2.AudioChunk, moderation_pb2.VoiceEvent, True, True),
    "GetModelInfo": (moderation_pb2.GetModelInfoRequest, moderation_pb2.ModelInfo, False, False),
}


def _deserializer(name: str, message_class, limit_bytes: int):
    def deserialize(data: bytes):
        if len(data) > limit_bytes:
            return Undecodable(f"{name} request is {len(data)} bytes; the limit is {limit_bytes} bytes")
        try:
            return message_class.FromString(data)
        except DecodeError:
            return Undecodable(f"malformed request: not a valid {message_class.DESCRIPTOR.full_name} "
                               "(truncated, or a string field is not UTF-8)")
    return deserialize


class Front:
    """Admission, read timeouts and a default deadline around the servicer's methods."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.admission = Admission(settings.max_in_flight,
                                   settings.max_in_flight_per_connection or settings.max_in_flight * 3 // 4,
                                   settings.max_in_flight_per_peer or settings.max_in_flight * 7 // 8)
        self.watchdog = Watchdog()
        self.health_pool = futures.ThreadPoolExecutor(HEALTH_THREADS, thread_name_prefix="health")
        self.health_waiting = Admission(HEALTH_WAITING, HEALTH_WAITING_PER_PEER, HEALTH_WAITING_PER_PEER,
                                        "health calls waiting for their message")
        self.reflection_pool = futures.ThreadPoolExecutor(2 * REFLECTION_SESSIONS, thread_name_prefix="reflection")
        self.reflection_sessions = Admission(REFLECTION_SESSIONS, REFLECTION_PER_PEER, REFLECTION_PER_PEER,
                                             "reflection sessions open")
        self._log_limit = PeerLogLimit()

    def close(self) -> None:
        self.watchdog.stop()
        self.health_pool.shutdown(wait=False)
        self.reflection_pool.shutdown(wait=False)

    @property
    def rpc_threads(self) -> int:
        """Threads for calls: max_in_flight admitted, plus spares that turn the excess away at once."""
        return self.settings.max_in_flight + max(8, self.settings.max_in_flight // 4)

    def thread_pool(self) -> futures.ThreadPoolExecutor:
        return futures.ThreadPoolExecutor(max_workers=self.rpc_threads, thread_name_prefix="rpc")

    @property
    def max_rpcs(self) -> int:
        """gRPC's own limit (maximum_concurrent_rpcs), health included: only a backstop against a
        flood larger than the spare threads drain; admission does the limiting."""
        return 4 * self.rpc_threads

    def server_options(self) -> list[tuple[str, int]]:
        settings = self.settings
        return [
            NO_REUSEPORT,
            ("grpc.max_receive_message_length", receive_limit_bytes(settings)),
            ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
            ("grpc.max_connection_idle_ms", int(settings.max_connection_idle_s * 1000)),
            # dead or vanished clients are found by our pings; clients pinging more often than
            # every 10 s, or with no call open, get GOAWAY after two strikes
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.keepalive_permit_without_calls", 0),
        ]

    def add_health(self, servicer, server: grpc.Server) -> None:
        """Registers the standard health service (`servicer`, grpc_health's HealthServicer built
        with experimental_non_blocking=True)."""
        decode = _deserializer("health check", health_pb2.HealthCheckRequest, HEALTH_REQUEST_LIMIT_BYTES)
        check, watch = self._health_check(servicer), self._health_watch(servicer)
        for method in (check, watch):
            method.experimental_thread_pool = self.health_pool  # read by grpc's sync server: they run there
        handlers = {
            "Check": grpc.stream_unary_rpc_method_handler(check, decode, health_pb2.HealthCheckResponse.SerializeToString),
            "Watch": grpc.stream_stream_rpc_method_handler(watch, decode, health_pb2.HealthCheckResponse.SerializeToString),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(HEALTH_SERVICE, handlers),))
        server.add_registered_method_handlers(HEALTH_SERVICE, handlers)

    def add_reflection(self, service_names, server: grpc.Server) -> None:
        """Registers server reflection (v1alpha, what grpcurl and grpc_cli ask) for `service_names`."""
        servicer = reflection.ReflectionServicer(tuple(service_names) + (reflection.SERVICE_NAME,))
        decode = _deserializer("reflection", reflection_pb2.ServerReflectionRequest, HEALTH_REQUEST_LIMIT_BYTES)
        session = self._reflection(servicer.ServerReflectionInfo)
        session.experimental_thread_pool = self.reflection_pool  # read by grpc's sync server: it runs there
        handlers = {"ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            session, decode, reflection_pb2.ServerReflectionResponse.SerializeToString)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(reflection.SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(reflection.SERVICE_NAME, handlers)

    def _health_request(self, requests, context, name: str):
        """A health call's request message (INVALID_ARGUMENT if it is none or malformed), counted
        in health_waiting only if it is late."""
        peer = context.peer()
        late = _LateMessage(self.health_waiting, peer, context)
        try:
            with self.watchdog.deadline(HEALTH_PROMPT_S, late.count):
                request = self._first(requests, context, peer, name, Undecodable(f"{name} needs one request message"),
                                      HEALTH_READ_TIMEOUT_S)
        finally:
            late.arrived()
        try:
            check_decoded(request)
        except InvalidInput as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return request

    def _health_check(self, servicer):
        def check(requests, context):
            return servicer.Check(self._health_request(requests, context, "Check"), context)
        return check

    def _health_watch(self, servicer):
        """Once its request message is read, a Watch holds no thread: the servicer sends its
        updates by callback while the stream stays open."""
        def watch(requests, context, send_response_callback):
            servicer.Watch(self._health_request(requests, context, "Watch"), context, send_response_callback)

        watch.experimental_non_blocking = True  # read by grpc's sync server: responses go by callback
        return watch

    def _reflection(self, method):
        """A reflection session: one of reflection_sessions, each message due within the read
        timeout and checked, ended after the default deadline when the caller set none."""
        def serve(requests, context):
            peer = context.peer()
            try:
                with self.reflection_sessions.admitted(peer), self._default_deadline(context, peer):
                    yield from method(self._each_in_time(requests, context, peer, "ServerReflectionInfo"), context)
            except Overloaded as err:
                context.abort(err.code, str(err))
            except InvalidInput as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return serve

    def _each_in_time(self, requests, context, peer: str, name: str):
        end = object()
        while (message := self._first(requests, context, peer, name, end)) is not end:
            check_decoded(message)
            yield message

    def add_to_server(self, service, server: grpc.Server) -> None:
        """Registers `service` (a ModerationServicer) on `server` in place of the generated code."""
        limits = request_limits(self.settings)
        handlers = {}
        for name, (request_class, response_class, _, streaming) in _METHODS.items():
            deserialize = _deserializer(name, request_class, limits[name])
            method = getattr(service, name)
            if streaming:
                handlers[name] = grpc.stream_stream_rpc_method_handler(
                    self._stream(method), deserialize, response_class.SerializeToString)
            else:
                handlers[name] = grpc.stream_unary_rpc_method_handler(
                    self._unary(name, method), deserialize, response_class.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        server.add_registered_method_handlers(SERVICE, handlers)

    def _unary(self, name: str, method):
        def serve(requests, context):
            peer = context.peer()
            try:
                with self.admission.admitted(peer), self._default_deadline(context, peer):
                    missing = Undecodable(f"{name} needs one request message; none was sent")
                    return method(self._first(requests, context, peer, name, missing), context)
            except Overloaded as err:
                context.abort(err.code, str(err))
        return serve

    def _stream(self, method):
        def serve(requests, context):
            peer = context.peer()
            try:
                with self.admission.admitted(peer):
                    first = self._first(requests, context, peer, "StreamVoice", None)
                    chunks = requests if first is None else itertools.chain([first], requests)  # None: an empty stream
                    yield from method(_checked(chunks), context)
            except Overloaded as err:
                context.abort(err.code, str(err))
        return serve

    def _first(self, requests, context, peer: str, name: str, missing, timeout_s: float = 0.0):
        """The call's first request message, or `missing` when the client sent none; the call is
        ended if it takes longer than timeout_s (by default request_read_timeout_s; a clip:
        default_deadline_s, as a large one may come over a slow link), and grpc.RpcError then
        ends it here."""
        timeout_s = timeout_s or self.settings.request_read_timeout_s
        if name == "ClassifyVoice":
            timeout_s = max(timeout_s, self.settings.default_deadline_s)
        expired = []

        def expire():
            expired.append(True)
            end_call(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                     f"no request message arrived within the server's {timeout_s:.0f} s")
        try:
            with self.watchdog.deadline(timeout_s, expire):
                return next(requests, missing)
        except grpc.RpcError:
            if expired:
                self._log_peer(peer, "ended a %s call that sent no request message within %.0f s", name, timeout_s)
            raise

    def _default_deadline(self, context, peer: str):
        """Calls that carry no deadline end with DEADLINE_EXCEEDED after default_deadline_s."""
        if context.time_remaining() < NO_DEADLINE_S:
            return nullcontext()
        limit_s = self.settings.default_deadline_s

        def expire():
            self._log_peer(peer, "ended a call with no deadline after %.0f s", limit_s)
            end_call(context, grpc.StatusCode.DEADLINE_EXCEEDED,
                     f"the call set no deadline and ran past the server's default of {limit_s:g} s")
        return self.watchdog.deadline(limit_s, expire)

    def _log_peer(self, peer: str, message: str, *args) -> None:
        if self._log_limit.ready(peer_host(peer)):
            logger.warning("peer=%s: " + message + " (logged at most every 10 s per peer)", peer, *args)


class _LateMessage:
    """Counts a call in `admission` from the moment its request message is late (count(), from
    the watchdog) until it arrives (arrived()); a call over the limits is ended at once."""

    def __init__(self, admission: Admission, peer: str, context: grpc.ServicerContext):
        self._admission, self._peer, self._context = admission, peer, context
        self._lock = threading.Lock()
        self._held = None
        self._over = False

    def count(self) -> None:
        with self._lock:
            if self._over:
                return
            try:
                self._held = self._admission.hold(self._peer)
            except Overloaded as err:
                end_call(self._context, err.code, str(err))

    def arrived(self) -> None:
        with self._lock:
            self._over = True
            if self._held is not None:
                self._admission.release(self._held)
                self._held = None


def end_call(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> None:
    """Ends a call from another thread with `code` and `details`. ServicerContext.cancel() can only
    send CANCELLED, so the underlying call's cancel-with-status is used where grpc has it."""
    try:
        context._rpc_event.call.cancel(code.value[0], details)
    except (AttributeError, TypeError):  # another grpc build: the call still ends, as CANCELLED
        context.cancel()


def _checked(chunks):
    for chunk in chunks:
        check_decoded(chunk)
        yield chunk


def return_large_buffers_to_the_system() -> bool:
    """Fixes glibc's mmap and trim thresholds at MMAP_THRESHOLD_BYTES (both grow on their own after
    a large free); False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                    and libc.mallopt(_M_TRIM_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # another C library: nothing to tune
        return False


def listen(server: grpc.Server, address: str, what: str, credentials=None) -> int:
    """Binds `address`; the port, or GatewayStartError naming it (every server sets
    grpc.so_reuseport 0, so a port another process holds fails here instead of being shared)."""
    try:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError:  # gRPC's "Failed to bind to address"
        port = 0
    if port == 0:
        raise GatewayStartError(f"cannot listen on {address} for the {what}: port {address.rpartition(':')[2]} "
                                "is in use by another process, or the address is not this machine's")
    return port


def add_admin_to_server(admin, server: grpc.Server) -> None:
    """Registers `admin` (a ModelAdminServicer) like the generated code, but with deserializers
    that never raise, so a malformed admin request gets INVALID_ARGUMENT from the boundary."""
    service = admin_pb2.DESCRIPTOR.services_by_name["ModelAdmin"]
    handlers = {}
    for method in service.methods:
        request_class = getattr(admin_pb2, method.input_type.name)
        response_class = getattr(admin_pb2, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(admin, method.name), _deserializer(method.name, request_class, ADMIN_REQUEST_LIMIT_BYTES),
            response_class.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
