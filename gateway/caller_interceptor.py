"""The public port's admission point: identify the caller, apply its limits, trim its answers.

A server interceptor that wraps the Moderation service's method handlers (health and reflection
pass untouched, so probes need no key). The wrapper runs in the call's own thread, where the
servicer context gives the client certificate (`auth_context`), which `intercept_service` alone
does not see. Callers with scope `decision` get verdicts without scores, toxic_score, top category
or model evidence, and GetModelInfo without thresholds: a continuous score or a known threshold
lets a cheater search for text that just passes.
"""

from __future__ import annotations

import logging

import grpc

from gateway.boundary import CALLER_ID
from gateway.callers import Caller, CallerRegistry, CallerRejected, short_id

logger = logging.getLogger(__name__)

PUBLIC_SERVICE_PREFIX = "/moderation.v1.Moderation/"
RETRY_AFTER_KEY = "retry-after-ms"


def api_key_from(metadata) -> str:
    """The key from `authorization: Bearer <key>` or `x-api-key: <key>`; empty when neither."""
    values = dict(metadata or ())
    bearer = str(values.get("authorization", ""))
    if bearer.lower().startswith("bearer "):
        return bearer[7:].strip()
    return str(values.get("x-api-key", "")).strip()


def certificate_names(context: grpc.ServicerContext) -> list[str]:
    """The verified client certificate's CN and SANs (empty without mTLS)."""
    auth = context.auth_context() or {}
    names = auth.get("x509_common_name", []) + auth.get("x509_subject_alternative_name", [])
    return [n.decode() if isinstance(n, bytes) else n for n in names]


# --- the decision scope ----------------------------------------------------------------------------
def redact_verdict(verdict) -> None:
    del verdict.scores[:]
    verdict.toxic_score = 0.0
    verdict.top_category = ""
    kept = [e for e in verdict.evidence if e.source != "model"]  # list matches are the operator's own words
    del verdict.evidence[:]
    verdict.evidence.extend(kept)


def redact(message):
    """Strips what a `decision` caller may not see from any public response; returns the message."""
    name = message.DESCRIPTOR.name
    if name == "Verdict":
        redact_verdict(message)
    elif name == "ClassifyTextBatchResponse":
        for verdict in message.verdicts:
            redact_verdict(verdict)
    elif name == "VoiceVerdict":
        redact_verdict(message.verdict)
        for segment in message.segments:
            redact_verdict(segment.verdict)
    elif name == "VoiceEvent":
        redact_verdict(message.verdict)
    elif name == "ModelInfo":
        message.thresholds.clear()
    return message


# --- the interceptor -------------------------------------------------------------------------------
class CallerInterceptor(grpc.ServerInterceptor):
    def __init__(self, registry: CallerRegistry):
        self.registry = registry

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(PUBLIC_SERVICE_PREFIX):
            return handler
        api_key = api_key_from(handler_call_details.invocation_metadata)
        method = handler_call_details.method[len(PUBLIC_SERVICE_PREFIX):]
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary, api_key, method))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=self._streaming(handler.stream_stream, api_key, method))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream, api_key, method))
        return handler._replace(stream_unary=self._unary(handler.stream_unary, api_key, method))

    def _admit(self, api_key: str, context, method: str) -> Caller:
        """The admitted caller; on refusal, ends the call with its status and retry delay."""
        names: list[str] = []
        try:
            names = certificate_names(context)
            caller = self.registry.identify(api_key, names)
            CALLER_ID.set(caller.entry.caller_id)
            caller.admit()
            return caller
        except CallerRejected as rejection:
            presented = api_key or (names[0] if names else "")
            who = CALLER_ID.get() if CALLER_ID.get() != "-" else short_id(presented) if presented else "-"
            # the message, not the exception: a handler that keeps records (pytest's, a memory
            # buffer) would keep its traceback, and with it the call and its HTTP/2 stream, alive
            logger.info("rpc %s refused caller=%s status=%s: %s", method, who, rejection.code, str(rejection))
            if rejection.retry_after_ms:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(rejection.retry_after_ms)),))
            context.abort(grpc.StatusCode[rejection.code], str(rejection))

    def _unary(self, behaviour, api_key: str, method: str):
        def serve(request, context):
            CALLER_ID.set("-")
            caller = self._admit(api_key, context, method)
            try:
                response = behaviour(request, context)
            finally:
                caller.release()
            return redact(response) if caller.entry.scope == "decision" and response is not None else response
        return serve

    def _streaming(self, behaviour, api_key: str, method: str):
        def serve(request, context):
            CALLER_ID.set("-")
            caller = self._admit(api_key, context, method)
            try:
                for response in behaviour(request, context):
                    yield redact(response) if caller.entry.scope == "decision" else response
            finally:
                caller.release()
        return serve
