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

import contextvars
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

# The call's hashed caller id, set by gateway.caller_interceptor when callers are identified.
CALLER_ID: contextvars.ContextVar[str] = contextvars.ContextVar("caller_id", default="-")


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

    def fields(self, method: str, code: grpc.StatusCode, total_ms: float, message: str) -> dict:
        """The line's facts as fields, for structured (JSON) logs (gateway.logformat)."""
        fields = {"method": method, "kind": self.kind, "request_id": self.request_id,
                  **dict(zip(self.units, (self.size, self.chars))),
                  **{f"{stage}_ms": round(ms, 1) for stage, ms in self.stages_ms.items()},
                  "total_ms": round(total_ms, 1), "verdict": self.outcome, "status": code.name}
        if message and code != grpc.StatusCode.INTERNAL:
            fields["error"] = message
        return fields

    def line(self, code: grpc.StatusCode, total_ms: float, message: str) -> str:
        parts = [f"rpc kind={self.kind} id={self.request_id}"]
        if CALLER_ID.get() != "-":
            parts.append(f"caller={CALLER_ID.get()}")
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
        name = method.__name__  # the RPC method: the `method` label of the metrics
        if inspect.isgeneratorfunction(method):
            @functools.wraps(method)
            def serve(self, request, context):
                log, metrics = RequestLog(kind, units), getattr(self, "metrics", None)
                with _boundary(context, log, stream=True, method=name, metrics=metrics):
                    yield from _counted(method(self, request, context, log), metrics, log)
        else:
            @functools.wraps(method)
            def serve(self, request, context):
                log, metrics = RequestLog(kind, units), getattr(self, "metrics", None)
                with _boundary(context, log, stream=False, method=name, metrics=metrics):
                    check_decoded(request)  # a request gateway.wire could not parse
                    response = method(self, request, context, log)
                    if metrics is not None:
                        metrics.count_verdicts(response)
                    return response

        serve.rpc_kind = kind  # lets a test check that every RPC method is served through here
        return serve

    return decorate


def _counted(responses, metrics, log: RequestLog):
    """A response stream whose verdicts, and the stages each response cost, are counted as they go out."""
    seen = dict(log.stages_ms)
    try:
        for response in responses:
            if metrics is not None:
                metrics.count_verdicts(response)
                # stages the method timed afresh for this response (an utterance without words has none)
                _observe_stages(metrics, {k: v for k, v in log.stages_ms.items() if seen.get(k) != v})
                seen = dict(log.stages_ms)
            yield response
    finally:
        responses.close()  # the caller went away: end the method's generator now


@contextmanager
def _boundary(context: grpc.ServicerContext, log: RequestLog, stream: bool, method: str = "", metrics=None):
    """Logs the call once it ends (and counts it in `metrics`, a gateway.metrics.GatewayMetrics,
    when the servicer has one); an exception ends it with its status code instead."""
    started = time.perf_counter()
    code, message = grpc.StatusCode.OK, ""
    if metrics is not None:
        metrics.in_flight.inc()
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
        total_s = time.perf_counter() - started
        logger.info("%s", log.line(code, total_s * 1e3, message), extra={"rpc": log.fields(method, code, total_s * 1e3, message)})
        if metrics is not None:
            _observe(metrics, method, code, total_s, log, stream)


def _observe(metrics, method: str, code: grpc.StatusCode, total_s: float, log: RequestLog, stream: bool) -> None:
    metrics.in_flight.dec()
    metrics.observe_request(method, code.name, total_s)
    if not stream:  # a stream's are observed per response (_counted)
        _observe_stages(metrics, log.stages_ms)


def _observe_stages(metrics, stages_ms: dict[str, float]) -> None:
    for stage in ("tokenize", "model"):  # `asr` is observed where it runs (gateway.voice), queue wait included
        if stage in stages_ms:
            metrics.observe_stage(stage, stages_ms[stage] / 1e3)


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
