"""A short, seeded fuzz corpus of every public RPC and of the audio decoder (loadtest/fuzz.py runs
10,000 cases; this runs a few hundred, the same each time), plus the probes it once found.

The gateway is in-process (loadtest/fuzz_harness.py): real parsers, boundary, decoder, stream
limits and VAD; a fake classifier and a fake Whisper.
"""

from __future__ import annotations

import pytest

pytest.importorskip("av", reason="the asr extra is not installed")
pytest.importorskip("hypothesis")

from contract.pb import moderation_pb2  # noqa: E402

SEED = 15
CASES = 300
DECODER_CASES = 100


@pytest.fixture(scope="module")
def fuzz_gateway(audio_tools):
    from loadtest.fuzz_harness import FuzzGateway

    with FuzzGateway() as gateway:
        yield gateway


def test_seeded_corpus_gets_no_internal_and_no_crash(fuzz_gateway):
    from loadtest.fuzz import run_fuzz

    report = run_fuzz(CASES, DECODER_CASES, SEED, derandomize=True, gateway=fuzz_gateway)
    assert report["internal"] == 0, report["internal_examples"]
    assert report["crashes"] == 0, report["crash_examples"]
    assert report["healthy_after"]
    assert report["rpc_cases"] >= CASES * 0.9 and report["decoder_cases"] >= DECODER_CASES * 0.9
    assert set(report["by_method"]) == {"ClassifyText", "ClassifyTextBatch", "ClassifyVoice", "StreamVoice",
                                        "GetModelInfo", "Health.Check", "Health.Watch", "Reflection"}
    assert {"message", "mutated", "wire", "random_bytes"} <= set(report["by_family"]), report["by_family"]


def utf8_invalid_text_request() -> bytes:
    payload = b"ok \xff\xfe"
    return b"\x0a" + bytes([len(payload)]) + payload  # field 1 (text), length-delimited


@pytest.mark.parametrize("method, payload", [
    ("ClassifyText", moderation_pb2.ClassifyTextRequest(text="good game").SerializeToString()[:-3]),
    ("ClassifyText", utf8_invalid_text_request()),
    ("ClassifyTextBatch", b"\x0a\xff\xff\xff\xff\x0f"),  # a length past the end
    ("ClassifyVoice", b"\x22\x02\xc3\x28"),  # language: invalid UTF-8
    ("GetModelInfo", b"\x08"),  # a tag with no value
    ("Health.Check", b"\x0a\x02\xc3\x28"),  # service: invalid UTF-8
    ("Health.Watch", b"\x0a\x05ab"),  # truncated
    ("Reflection", (b"\x1a\x03\xff\xfe\xfd",)),  # file_containing_symbol: invalid UTF-8
], ids=["truncated", "text-not-utf8", "overrun", "language-not-utf8", "dangling-tag", "health-not-utf8",
        "watch-truncated", "reflection-not-utf8"])
def test_malformed_requests_are_invalid_argument(fuzz_gateway, method, payload):
    code, details = fuzz_gateway.call(method, payload)
    assert code == "INVALID_ARGUMENT" and "malformed request" in details


def test_a_malformed_chunk_ends_the_stream_with_invalid_argument(fuzz_gateway):
    first = moderation_pb2.AudioChunk(pcm16=b"\0\0" * 1600, sample_rate_hz=16000).SerializeToString()
    code, details = fuzz_gateway.call("StreamVoice", [first, b"\x0a\x10\x00"])
    assert code == "INVALID_ARGUMENT" and "malformed request" in details


def test_an_unknown_language_is_invalid_argument_naming_the_known_ones(fuzz_gateway):
    from loadtest.fuzz_cases import audio_seeds

    request = moderation_pb2.ClassifyVoiceRequest(audio=audio_seeds()[0], language="xx")
    code, details = fuzz_gateway.call("ClassifyVoice", request.SerializeToString())
    assert code == "INVALID_ARGUMENT" and "'xx'" in details and "en" in details
