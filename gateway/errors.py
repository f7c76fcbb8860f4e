"""Domain errors and their gRPC status codes; Triton client errors translated in one place."""

from __future__ import annotations

import grpc


class ModerationError(Exception):
    """Anything unexpected: INTERNAL, with a generic message (details go only to the log)."""

    code = grpc.StatusCode.INTERNAL
    public = False  # whether the message may be shown to the caller


class InvalidInput(ModerationError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    public = True


class Overloaded(ModerationError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    public = True


class BackendUnavailable(ModerationError):
    code = grpc.StatusCode.UNAVAILABLE
    public = True


class BackendTimeout(ModerationError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    public = True


def caller_message(error: ModerationError) -> str:
    return str(error) if error.public else "internal error"


def rpc_status(error: Exception, logger, what: str) -> tuple[grpc.StatusCode, str]:
    """The status and caller-facing message for an error that ends an RPC. Only INTERNAL errors
    are logged, with their traceback (the boundary's one logger.exception); the rest are the
    caller's problem or a known backend state, already in the request's log line."""
    if isinstance(error, ModerationError) and error.code != grpc.StatusCode.INTERNAL:
        return error.code, caller_message(error)
    logger.error("%s failed: %s", what, error, exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error"


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
    if status.endswith("DEADLINE_EXCEEDED") or "Deadline Exceeded" in message:
        return BackendTimeout("deadline exceeded while waiting for the model server")
    if status.endswith("UNAVAILABLE") or "failed to connect" in message.lower():
        return BackendUnavailable("model server unavailable")
    if "is not ready" in message or "unknown model" in message.lower() or status.endswith("NOT_FOUND"):
        return BackendUnavailable("model not ready")
    return ModerationError(f"model call failed ({status}): {message}")


class NotFound(ModerationError):
    code = grpc.StatusCode.NOT_FOUND
    public = True


class FailedPrecondition(ModerationError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    public = True


class Unimplemented(ModerationError):
    code = grpc.StatusCode.UNIMPLEMENTED
    public = True
