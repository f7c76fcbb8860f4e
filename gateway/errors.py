"""Domain errors and the status code each stands for; Triton's and asr's errors translated here.

Code raises these; gateway.boundary turns them into status codes for the caller.
"""

from __future__ import annotations

import sys

import grpc

INTERNAL_MESSAGE = "internal error"  # all a caller learns of an INTERNAL error


class GatewayStartError(RuntimeError):
    """The gateway cannot start as configured (a port taken, voice that cannot load); the entry
    points print the message and exit non-zero."""


class ModerationError(Exception):
    """Anything unexpected: INTERNAL, with a generic message (details go only to the log)."""

    code = grpc.StatusCode.INTERNAL

    @property
    def public(self) -> bool:
        """Whether the caller may see the message: all but INTERNAL errors are written for it."""
        return self.code != grpc.StatusCode.INTERNAL


class InvalidInput(ModerationError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Overloaded(ModerationError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class BackendUnavailable(ModerationError):
    code = grpc.StatusCode.UNAVAILABLE


class BackendTimeout(ModerationError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ModerationError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ModerationError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unimplemented(ModerationError):
    code = grpc.StatusCode.UNIMPLEMENTED


def caller_message(error: ModerationError) -> str:
    return str(error) if error.public else INTERNAL_MESSAGE


def translate_triton_error(error: Exception) -> ModerationError:
    """Maps a tritonclient InferenceServerException onto our errors.

    tritonclient's gRPC client reports status as `str(grpc.StatusCode.X)`. Triton answers a full
    queue with UNAVAILABLE "Exceeds maximum queue size", so the message is checked first. The
    integration tests cover each mapping, since these strings can change between versions.
    """
    status = str(getattr(error, "status", lambda: "")() or "")
    message = str(getattr(error, "message", lambda: "")() or error)
    if "Exceeds maximum queue size" in message:
        return Overloaded("overloaded: the model queue is full, retry later")
    if "protocol is restricted" in message:  # Triton's model-control lock (gateway/triton_access.py)
        return FailedPrecondition("the model server refused model control: the gateway has no or the wrong "
                                  "Triton control key (--triton-control-key-file)")
    if status.endswith("DEADLINE_EXCEEDED") or "Deadline Exceeded" in message:
        return BackendTimeout("deadline exceeded while waiting for the model server")
    if status.endswith("UNAVAILABLE") or "failed to connect" in message.lower():
        return BackendUnavailable("model server unavailable")
    if "is not ready" in message or "unknown model" in message.lower() or status.endswith("NOT_FOUND"):
        return BackendUnavailable("model not ready")
    return ModerationError(f"model call failed ({status}): {message}")


def translate_asr_error(error: Exception) -> ModerationError | None:
    """asr's errors (asr/errors.py) as ours; None for anything else.

    asr needs the optional asr extra, so it is looked up rather than imported: until something
    imported it, none of its errors can exist.
    """
    asr_errors = sys.modules.get("asr.errors")
    if asr_errors is None or not isinstance(error, asr_errors.AsrError):
        return None
    if isinstance(error, asr_errors.AudioError):
        return InvalidInput(f"audio rejected: {error}")
    if isinstance(error, asr_errors.AsrOverloaded):
        return Overloaded("overloaded: speech recognition queue is full, retry later")
    if isinstance(error, asr_errors.AsrExpired):
        return BackendTimeout("deadline exceeded during speech recognition")
    if isinstance(error, asr_errors.AsrUnavailable):
        return BackendUnavailable(f"speech recognition unavailable: {error}")
    return None
