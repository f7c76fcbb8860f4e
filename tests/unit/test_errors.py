"""translate_triton_error and translate_asr_error: tritonclient's and asr's exceptions -> the gateway's."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.grpc._utils import get_error_grpc
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    ModerationError,
    Overloaded,
    caller_message,
    translate_asr_error,
    translate_triton_error,
)


def triton_error(message: str, code: grpc.StatusCode | None) -> InferenceServerException:
    return InferenceServerException(msg=message, status=str(code) if code else None)


@pytest.mark.parametrize(
    ("message", "code", "expected", "status"),
    [
        # Triton answers a full queue with UNAVAILABLE: the message decides, not the status
        ("Exceeds maximum queue size", grpc.StatusCode.UNAVAILABLE, Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("Deadline Exceeded", grpc.StatusCode.DEADLINE_EXCEEDED, BackendTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("timed out", grpc.StatusCode.DEADLINE_EXCEEDED, BackendTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("failed to connect to all addresses", grpc.StatusCode.UNAVAILABLE, BackendUnavailable,
         grpc.StatusCode.UNAVAILABLE),
        ("Socket closed", grpc.StatusCode.UNAVAILABLE, BackendUnavailable, grpc.StatusCode.UNAVAILABLE),
        ("Request for unknown model: 'toxicity' is not found", grpc.StatusCode.NOT_FOUND, BackendUnavailable,
         grpc.StatusCode.UNAVAILABLE),
        ("Request for unknown model: 'toxicity' version 3 is not ready", grpc.StatusCode.INVALID_ARGUMENT,
         BackendUnavailable, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_known_failures_map_to_their_status(message, code, expected, status):
    translated = translate_triton_error(triton_error(message, code))
    assert type(translated) is expected
    assert translated.code == status
    assert caller_message(translated) == str(translated)  # public: the caller sees why


def test_other_failures_are_internal_and_hide_details():
    translated = translate_triton_error(
        triton_error("model forward failed: shape mismatch in layer 3", grpc.StatusCode.INTERNAL)
    )
    assert type(translated) is ModerationError
    assert translated.code == grpc.StatusCode.INTERNAL
    assert "shape mismatch" in str(translated)  # for the log
    assert caller_message(translated) == "internal error"  # never for the caller


def test_exception_without_status_is_internal():
    translated = translate_triton_error(InferenceServerException(msg="something odd"))
    assert type(translated) is ModerationError
    assert type(translate_triton_error(ValueError("not from tritonclient"))) is ModerationError


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details

    def debug_error_string(self):
        return ""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, BackendUnavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, BackendTimeout),
        (grpc.StatusCode.INTERNAL, ModerationError),
    ],
)
def test_status_format_of_the_real_tritonclient_conversion(code, expected):
    """tritonclient turns an RpcError into InferenceServerException itself; its status format must match."""
    translated = translate_triton_error(get_error_grpc(_FakeRpcError(code, "details")))
    assert type(translated) is expected


def test_invalid_input_is_public():
    error = InvalidInput("text is empty")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caller_message(error) == "text is empty"


def test_asr_errors_are_translated_and_nothing_else_is():
    asr_errors = pytest.importorskip("asr.errors", reason="asr needs the asr extra (PyAV)")
    assert type(translate_asr_error(asr_errors.AudioTooLong("clip is 31 s; the limit is 30 s"))) is InvalidInput
    assert type(translate_asr_error(asr_errors.AsrOverloaded("full"))) is Overloaded
    assert type(translate_asr_error(asr_errors.AsrExpired("gone"))) is BackendTimeout
    assert type(translate_asr_error(asr_errors.ModelUnavailable("no files"))) is BackendUnavailable
    assert translate_asr_error(asr_errors.AsrError("a new kind")) is None  # unknown: INTERNAL at the boundary
    assert translate_asr_error(ValueError("not asr's")) is None
