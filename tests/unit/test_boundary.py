"""gateway.boundary: each domain error becomes its status code, anything else INTERNAL with nothing
leaked, for unary and streaming methods, through a real in-process gRPC server."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
import pytest

from contract.pb import admin_pb2_grpc, moderation_pb2, moderation_pb2_grpc
from gateway.admin import AdminService
from gateway.boundary import RequestLog, rpc
from gateway.errors import (
    BackendTimeout,
    BackendUnavailable,
    FailedPrecondition,
    InvalidInput,
    ModerationError,
    NotFound,
    Overloaded,
    Unimplemented,
)
from gateway.service import ModerationService

SECRET = "secret detail from deep inside"


class Raising(moderation_pb2_grpc.ModerationServicer):
    """Raises whatever the test sets: from a unary method, and from a stream after one event."""

    error: BaseException | None = None

    @rpc("text")
    def ClassifyText(self, request, context, log: RequestLog):
        log.describe(request.request_id, 1, len(request.text))
        if self.error is not None:
            raise self.error
        return moderation_pb2.Verdict(top_category="non_toxic", request_id=log.request_id)

    @rpc("stream", units=("chunks", "bytes"))
    def StreamVoice(self, request_iterator, context, log: RequestLog):
        for index, chunk in enumerate(request_iterator):
            log.size, log.chars = log.size + 1, log.chars + len(chunk.pcm16)
            yield moderation_pb2.VoiceEvent(utterance=index)
            if self.error is not None:
                raise self.error


@pytest.fixture(scope="module")
def server():
    servicer = Raising()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    moderation_pb2_grpc.add_ModerationServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield servicer, moderation_pb2_grpc.ModerationStub(channel)
    server.stop(0)


@pytest.fixture
def raising(server):
    servicer, stub = server
    yield servicer, stub
    servicer.error = None


def _asr_errors():
    asr_errors = pytest.importorskip("asr.errors", reason="asr needs the asr extra (PyAV)")
    return [
        (asr_errors.UndecodableAudio("not a WAV file"), grpc.StatusCode.INVALID_ARGUMENT, "audio rejected: not a WAV"),
        (asr_errors.AsrOverloaded("pool full"), grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        (asr_errors.AsrExpired("gone"), grpc.StatusCode.DEADLINE_EXCEEDED, "during speech recognition"),
        (asr_errors.ModelUnavailable("no model files"), grpc.StatusCode.UNAVAILABLE, "no model files"),
    ]


DOMAIN_ERRORS = [
    (InvalidInput("text is empty"), grpc.StatusCode.INVALID_ARGUMENT, "text is empty"),
    (Overloaded("overloaded, retry later"), grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded, retry later"),
    (BackendUnavailable("model server unavailable"), grpc.StatusCode.UNAVAILABLE, "model server unavailable"),
    (BackendTimeout("deadline exceeded in the model call"), grpc.StatusCode.DEADLINE_EXCEEDED, "model call"),
    (NotFound("version '9' not found"), grpc.StatusCode.NOT_FOUND, "version '9' not found"),
    (FailedPrecondition("no previous version"), grpc.StatusCode.FAILED_PRECONDITION, "no previous version"),
    (Unimplemented("voice is not enabled"), grpc.StatusCode.UNIMPLEMENTED, "voice is not enabled"),
]


@pytest.mark.parametrize(("raised", "code", "details"), DOMAIN_ERRORS,
                         ids=[code.name for _, code, _ in DOMAIN_ERRORS])
def test_each_domain_error_is_its_status_code(raising, raised, code, details, caplog):
    servicer, stub = raising
    servicer.error = raised
    with caplog.at_level(logging.INFO, logger="gateway.boundary"), pytest.raises(grpc.RpcError) as exc:
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg", request_id="r-1"), timeout=5)
    assert exc.value.code() == code
    assert details in exc.value.details()
    assert not [r for r in caplog.records if r.exc_info]  # the caller's problem or a known state: no traceback
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rpc ")]
    assert "kind=text id=r-1 texts=1 chars=2" in line and f"status={code.name}" in line


def test_asr_errors_are_their_status_codes(raising):
    servicer, stub = raising
    for raised, code, details in _asr_errors():
        servicer.error = raised
        with pytest.raises(grpc.RpcError) as exc:
            stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5)
        assert exc.value.code() == code, raised
        assert details in exc.value.details()


@pytest.mark.parametrize("raised", [RuntimeError(SECRET), ModerationError(SECRET), KeyError(SECRET)],
                         ids=["runtime-error", "moderation-error", "key-error"])
def test_unexpected_errors_are_internal_with_nothing_leaked_and_one_traceback(raising, raised, caplog):
    servicer, stub = raising
    servicer.error = raised
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as exc:
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert exc.value.details() == "internal error"
    assert SECRET not in str(exc.value.trailing_metadata())
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and tracebacks[0].exc_info[1] is not None
    assert SECRET in caplog.text  # the operator still finds it in the log


def test_a_stream_error_ends_the_stream_with_its_status_after_what_was_sent(raising):
    servicer, stub = raising
    chunks = [moderation_pb2.AudioChunk(pcm16=b"\0\0") for _ in range(3)]
    for raised, code, details in [(InvalidInput("chunk too big"), grpc.StatusCode.INVALID_ARGUMENT, "chunk too big"),
                                  (RuntimeError(SECRET), grpc.StatusCode.INTERNAL, "internal error")]:
        servicer.error = raised
        received = []
        with pytest.raises(grpc.RpcError) as exc:
            for event in stub.StreamVoice(iter(chunks), timeout=5):
                received.append(event.utterance)
        assert received == [0]
        assert exc.value.code() == code
        assert exc.value.details() == details


def test_success_is_logged_once_with_sizes_and_never_the_text(raising, caplog):
    _, stub = raising
    with caplog.at_level(logging.INFO, logger="gateway.boundary"):
        reply = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="private words"), timeout=5)
    assert len(reply.request_id) == 16  # made up when the request has none
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"id={reply.request_id} texts=1 chars=13" in line and "status=OK" in line
    assert "private" not in caplog.text


@pytest.mark.parametrize(("servicer", "base"), [(ModerationService, moderation_pb2_grpc.ModerationServicer),
                                                 (AdminService, admin_pb2_grpc.ModelAdminServicer)])
def test_every_rpc_method_goes_through_the_boundary(servicer, base):
    rpcs = [name for name in vars(base) if name[0].isupper()]
    assert rpcs
    for name in rpcs:
        assert getattr(getattr(servicer, name), "rpc_kind", None), f"{servicer.__name__}.{name} lacks @rpc"
