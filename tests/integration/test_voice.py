"""ClassifyVoice end to end: espeak-ng clips -> gateway -> Whisper -> real Triton -> verdicts."""

from __future__ import annotations

import os
from contextlib import ExitStack

import grpc
import pytest

from contract.pb import moderation_pb2
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


def test_a_clip_past_the_voice_capacity_is_turned_away_before_it_is_decoded(gateway, stub, clean_speech, monkeypatch):
    voice = gateway.gateway.service.voice
    decoded = []
    real_decode = voice.decode
    monkeypatch.setattr(voice, "decode", lambda request: decoded.append(1) or real_decode(request))
    with ExitStack() as held:
        for _ in range(voice.queue.capacity):  # every place taken, as by clips in progress
            held.enter_context(voice.admitted())
        with pytest.raises(grpc.RpcError) as refused:
            classify_voice(stub, clean_speech.path.read_bytes())
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "speech recognition" in refused.value.details()
        assert decoded == []
        for never_valid in (b"", b"\x00" * (voice.limits.max_bytes + 1)):  # still told so, not "retry later"
            with pytest.raises(grpc.RpcError) as invalid:
                classify_voice(stub, never_valid)
            assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "empty" in invalid.value.details() or "the limit is" in invalid.value.details()
        assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg wp"), timeout=10).top_category  # text still served
    reply = classify_voice(stub, clean_speech.path.read_bytes())  # the slots are back
    assert "good game" in reply.transcript.lower() and decoded == [1]


def test_silence_is_non_toxic_with_empty_transcript(stub, silent_wav):
    reply = classify_voice(stub, silent_wav.read_bytes())
    assert reply.transcript == "" and not reply.segments and not reply.speech_detected
    assert reply.verdict.top_category == "non_toxic" and not reply.verdict.toxic
    assert reply.verdict.scores[0].category == "non_toxic" and reply.verdict.scores[0].score == 1.0
    assert reply.verdict.action != "review"


def test_speech_the_short_window_drops_is_heard_by_the_full_window_retry(gateway, stub, audio_tools):
    """FACTS.md: this 2.6 s clip gives an empty transcript with the 7 s window, every time."""
    from loadtest.speech import speak_wav

    assert gateway.gateway.service.voice.settings.asr_window_s < 30
    reply = classify_voice(stub, speak_wav("you are a worthless idiot, uninstall the game", words_per_minute=175))
    assert "idiot" in reply.transcript.lower(), reply.transcript
    assert reply.speech_detected and reply.verdict.scores[0].score < 1.0  # the model scored the words


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


# --- StreamVoice -----------------------------------------------------------------------------

CHUNK_S = 0.1  # 100 ms chunks, as a game client would send them


def _two_utterances_pcm16(toxic_speech, clean_speech, tmp_path) -> bytes:
    """toxic sentence, 1.5 s of silence, clean sentence, as 16 kHz PCM16."""
    from tests.asr.speech import ffmpeg, write_silence

    silence = write_silence(tmp_path / "gap.wav", seconds=1.5, sample_rate_hz=22050)
    joined = tmp_path / "joined.wav"
    ffmpeg(toxic_speech.path, joined, "-i", str(silence), "-i", str(clean_speech.path),
           "-filter_complex", "[0:a][1:a][2:a]concat=n=3:v=0:a=1", "-ar", "16000", "-ac", "1")
    return ffmpeg_to_bytes(joined, "-f", "s16le", "-c:a", "pcm_s16le")


def _chunks(pcm: bytes, rate: int = 16000, **first):
    """Paced at 1.5x real time: the gateway refuses audio faster than 2x (stream_max_speed)."""
    import time

    step = int(CHUNK_S * rate) * 2
    started = time.monotonic()
    for i, offset in enumerate(range(0, len(pcm), step)):
        time.sleep(max(0.0, started + i * CHUNK_S / 1.5 - time.monotonic()))
        fields = dict(first, sample_rate_hz=rate) if i == 0 else {}
        yield moderation_pb2.AudioChunk(pcm16=pcm[offset : offset + step], **fields)


def test_stream_gives_one_event_per_utterance_in_order(stub, toxic_speech, clean_speech, tmp_path):
    pcm = _two_utterances_pcm16(toxic_speech, clean_speech, tmp_path)
    events = list(stub.StreamVoice(_chunks(pcm, request_id="stream-1"), timeout=120))
    assert [e.utterance for e in events] == [0, 1]
    first, second = events
    assert all(w in first.transcript.lower() for w in toxic_speech.key_words), first.transcript
    assert "good game" in second.transcript.lower(), second.transcript
    assert first.verdict.toxic and not second.verdict.toxic
    assert first.speech_detected and second.speech_detected
    total_s = len(pcm) / 2 / 16000
    assert 0 <= first.start_s < first.end_s < second.start_s < second.end_s <= total_s + 0.01
    assert first.verdict.request_id == "stream-1"


@pytest.mark.parametrize(
    "chunks, needle",
    [
        ([moderation_pb2.AudioChunk(pcm16=b"\x00\x00" * 160)], "sample_rate_hz"),
        ([moderation_pb2.AudioChunk(pcm16=b"\x00" * (64 * 1024 + 2), sample_rate_hz=16000)], "limit"),
        ([moderation_pb2.AudioChunk(pcm16=b"\x00" * 3, sample_rate_hz=16000)], "whole samples"),
    ],
    ids=["no-rate", "chunk-too-big", "odd-bytes"],
)
def test_stream_limits_are_invalid_argument(stub, chunks, needle):
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamVoice(iter(chunks), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in caught.value.details()
