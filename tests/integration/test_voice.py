"""ClassifyVoice end to end: espeak-ng clips -> gateway -> Whisper -> real Triton -> verdicts."""

from __future__ import annotations

import os

import grpc
import pytest

from gateway.pb import moderation_pb2
from tests.asr.speech import ffmpeg_to_bytes

pytestmark = pytest.mark.integration


def classify_voice(stub, data: bytes, **fields):
    request = moderation_pb2.ClassifyVoiceRequest(audio=data, **fields)
    return stub.ClassifyVoice(request, timeout=60)


def test_toxic_clip_is_flagged_with_its_words(stub, toxic_speech):
    reply = classify_voice(stub, toxic_speech.path.read_bytes(), request_id="voice-1")
    assert all(word in reply.transcript.lower() for word in toxic_speech.key_words), reply.transcript
    assert reply.verdict.toxic and reply.verdict.top_category != "non_toxic"
    assert reply.verdict.request_id == "voice-1"
    assert reply.asr_ms > 0 and reply.classify_ms > 0
    assert reply.segments, "a spoken sentence has at least one segment"
    previous_end = 0.0
    for segment in reply.segments:  # ordered, inside the clip, each with its own verdict
        assert previous_end - 0.01 <= segment.start_s <= segment.end_s <= toxic_speech.duration_s + 0.5
        assert segment.text.strip() and len(segment.verdict.scores) == len(reply.verdict.scores)
        previous_end = segment.end_s
    assert any(segment.verdict.toxic for segment in reply.segments)


def test_clean_clip_is_not_toxic(stub, clean_speech):
    reply = classify_voice(stub, clean_speech.path.read_bytes())
    assert "good game" in reply.transcript.lower(), reply.transcript
    assert not reply.verdict.toxic and reply.verdict.top_category == "non_toxic"


def test_compressed_and_raw_clips_give_the_same_words(stub, toxic_speech):
    ogg = ffmpeg_to_bytes(toxic_speech.path, "-c:a", "libopus", "-b:a", "24k", "-f", "ogg")
    raw = ffmpeg_to_bytes(toxic_speech.path, "-f", "s16le", "-ar", "48000", "-ac", "2", "-c:a", "pcm_s16le")
    raw_mono = ffmpeg_to_bytes(toxic_speech.path, "-f", "s16le", "-c:a", "pcm_s16le")
    for data, fields in ((ogg, {}), (raw_mono, {"format": "pcm16", "sample_rate_hz": 22050})):
        reply = classify_voice(stub, data, **fields)
        assert all(word in reply.transcript.lower() for word in toxic_speech.key_words), reply.transcript
        assert reply.verdict.toxic
    assert raw  # 48 kHz stereo raw PCM is not a declared input format; containers carry their layout


def test_silence_is_non_toxic_with_empty_transcript(stub, silent_wav):
    reply = classify_voice(stub, silent_wav.read_bytes())
    assert reply.transcript == "" and not reply.segments
    assert reply.verdict.top_category == "non_toxic" and not reply.verdict.toxic
    assert reply.verdict.scores[0].category == "non_toxic" and reply.verdict.scores[0].score == 1.0


@pytest.mark.parametrize(
    "make, fields, needle",
    [
        (lambda clip: b"", {}, "empty"),
        (lambda clip: os.urandom(4096), {}, "audio rejected"),
        (lambda clip: clip[:30], {}, "audio rejected"),  # cut inside the WAV header
        (lambda clip: b"\x00\x01" * 8000, {"format": "pcm16"}, "sample rate"),
        (lambda clip: b"\x00\x00" * 16000 * 31, {"format": "pcm16", "sample_rate_hz": 16000}, "30"),
    ],
    ids=["zero-length", "random-bytes", "truncated", "pcm-without-rate", "too-long"],
)
def test_bad_audio_is_invalid_argument(stub, toxic_speech, make, fields, needle):
    with pytest.raises(grpc.RpcError) as caught:
        classify_voice(stub, make(toxic_speech.path.read_bytes()), **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in caught.value.details().lower()
