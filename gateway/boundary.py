"""The gRPC error boundary: the one place where exceptions become status codes.

Code inside the gateway raises domain errors (gateway.errors; asr's own errors for audio); every
servicer method, unary or streaming, of the public and the admin API is decorated with `rpc`,
which maps them to status codes, sends a caller only what it may see, and writes the call's one
INFO log line. Anything unexpected is INTERNAL: its traceback is logged here, once, and the
caller gets "internal error". A decorator rather than a server interceptor: it travels with the
servicer class to whatever server it is added to, and hands the method its log record
explicitly.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

from gateway.errors import INTERNAL_MESSAGE, ModerationError, caller_message, translate_asr_error
from gateway.inputs import check_request_id
from gateway.wire import check_decoded

logger = logging.getLogger(__name__)


@dataclass
class RequestLog:
    """What a call's log line says besides its status and total time; the method fills it in.

    Sizes only: chat text and audio are never logged.
    """

    kind: str
    units: tuple[str, ...] = ("texts", "chars")  # what `size` and `chars` count; () leaves them out
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])  # unless the request names one
    size: int = 0
    chars: int = 0
    stages_ms: dict[str, float] = field(default_factory=dict)
    outcome: str = "-"

    def describe(self, request_id: str, size: int, chars: int) -> None:
        """The request's sizes and its own id (when it carries one)."""
        self.size, self.chars = size, chars
        self.name(request_id)

    def name(self, request_id: str) -> None:
        """Takes the request's own id, if any; a malformed one raises InvalidInput and the
        generated id stays (so no caller's bytes reach the log line)."""
        check_request_id(request_id)
        self.request_id = request_id or self.request_id

    def line(self, code: grpc.StatusCode, total_ms: float, message: str) -> str:
        parts = [f"rpc kind={self.kind} id={self.request_id}"]
        parts += [f"{unit}={count}" for unit, count in zip(self.units, (self.size, self.chars))]
        parts += [f"{stage}_ms={ms:.1f}" for stage, ms in self.stages_ms.items()]
        parts += [f"total_ms={total_ms:.1f} verdict={self.outcome} status={code.name}"]
        if message and code != grpc.StatusCode.INTERNAL:  # written for callers: no text, no audio
            parts.append(f"error={message!r}")
        return " ".join(parts)


def rpc_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and the caller's message for an exception that ends a call."""
    error = translate_asr_error(error) or error
    if isinstance(error, ModerationError):
        return error.code, caller_message(error)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def rpc(kind: str, units: tuple[str, ...] = ("texts", "chars")):
    """Serves a servicer method through the boundary; the method gets a RequestLog as last argument.

    A generator method serves a response stream: an error ends the stream with its status.

    Args:
      kind: The call's name in the log line (text, batch, voice, ...).
      units: What the log record's `size` and `chars` count in this call.
    """

    def decorate(method):
        if inspect.isgeneratorfunction(method):
            @functools.wraps(method)
            def serve(self, request, context):
                log = RequestLog(kind, units)
                with _boundary(context, log, stream=True):
                    yield from method(self, request, context, log)
        else:
            @functools.wraps(method)
            def serve(self, request, context):
                log = RequestLog(kind, units)
                with _boundary(context, log, stream=False):
                    check_decoded(request)  # a request gateway.wire could not parse
                    return method(self, request, context, log)

        serve.rpc_kind = kind  # lets a test check that every RPC method is served through here
        return serve

    return decorate


@contextmanager
def _boundary(context: grpc.ServicerContext, log: RequestLog, stream: bool):
    """Logs the call once it ends; an exception ends it with its status code instead."""
    started = time.perf_counter()
    code, message = grpc.StatusCode.OK, ""
    try:
        yield
    except GeneratorExit:  # the stream was closed early: the caller went away
        code = grpc.StatusCode.CANCELLED
        raise
    except Exception as err:
        if stream and isinstance(err, grpc.RpcError):  # the caller cancelled while we read its stream
            code = grpc.StatusCode.CANCELLED
            return
        code, message = rpc_status(err)
        if code == grpc.StatusCode.INTERNAL:  # a bug or an unexpected backend answer: the one traceback
            logger.error("%s %s failed: %s", log.kind, log.request_id, err, exc_info=err)
        context.abort(code, message)
    finally:
        logger.info("%s", log.line(code, (time.perf_counter() - started) * 1e3, message))


class EscapingFormatter(logging.Formatter):
    """Writes CR, LF and other control characters in a record's message as escapes, so no
    value logged from a request can start a line of its own (tracebacks keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def escape_controls(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
