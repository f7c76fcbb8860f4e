"""Voice answers say whether speech was found, and speech that could not be transcribed never
reads as clean (issue 14, part 11): the real servicer and speech queue, a fake Whisper."""

from __future__ import annotations

import grpc
import pytest

from asr.executors import InProcessExecutor
from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.server import create_server
from gateway.settings import Settings
from gateway.voice import UNTRANSCRIBED_SPEECH_ACTION, VoicePipeline
from tests.asr.test_full_window_retry import HEARD, SILENCE, UNHEARD, FakeWhisper
from tests.unit.test_grpc_servicer import FakeClassifier
from tests.unit.test_grpc_servicer import model_repo as model_repo  # a fixture, shared

SAMPLE_RATE_HZ = 16_000
ONE_SECOND_PCM16 = b"\x10\x00\xf0\xff" * (SAMPLE_RATE_HZ // 2)


@pytest.fixture(scope="module")
def voice_gateway(model_repo):
    """A gateway whose Whisper is a FakeWhisper (`whisper`), with a fake classifier."""
    settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", model_repository=str(model_repo), health_poll_s=3600,
                        admin_listen_address="", asr_process=False)
    whisper = FakeWhisper(short=SILENCE, full=SILENCE, encoder_window_s=settings.asr_window_s)
    classifier = FakeClassifier()
    gateway, port = create_server(settings, classifier=classifier,
                                  voice=VoicePipeline(settings, executor=InProcessExecutor(whisper)))
    gateway.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield moderation_pb2_grpc.ModerationStub(channel), whisper, classifier
    channel.close()
    gateway.stop(0)


@pytest.fixture
def voice(voice_gateway):
    stub, whisper, classifier = voice_gateway
    whisper.calls.clear()
    classifier.calls.clear()
    return voice_gateway


def _classify(stub):
    request = moderation_pb2.ClassifyVoiceRequest(audio=ONE_SECOND_PCM16, format="pcm16", sample_rate_hz=SAMPLE_RATE_HZ)
    return stub.ClassifyVoice(request, timeout=10)


def test_speech_not_transcribed_even_by_the_retry_is_sent_to_review(voice):
    stub, whisper, classifier = voice
    whisper.short, whisper.full = UNHEARD, UNHEARD

    reply = _classify(stub)

    assert whisper.calls == ["short", "full"]
    assert reply.speech_detected and reply.transcript == "" and not reply.segments
    assert reply.verdict.action == UNTRANSCRIBED_SPEECH_ACTION == "review"
    assert classifier.calls == []  # no words: no model call


def test_speech_heard_by_the_retry_is_classified(voice):
    stub, whisper, classifier = voice
    whisper.short, whisper.full = UNHEARD, HEARD

    reply = _classify(stub)

    assert reply.speech_detected and reply.transcript == HEARD.text
    assert len(classifier.calls) == 1 and reply.verdict.action != UNTRANSCRIBED_SPEECH_ACTION


def test_silence_is_plain_non_toxic_without_a_retry(voice):
    stub, whisper, classifier = voice
    whisper.short, whisper.full = SILENCE, HEARD

    reply = _classify(stub)

    assert whisper.calls == ["short"]
    assert not reply.speech_detected and reply.transcript == ""
    assert reply.verdict.top_category == "non_toxic" and not reply.verdict.toxic
    assert reply.verdict.action != UNTRANSCRIBED_SPEECH_ACTION and classifier.calls == []


def test_stream_events_carry_speech_detected(voice, audio_tools):
    from loadtest.speech import speak_pcm16

    stub, whisper, _ = voice
    whisper.short, whisper.full = UNHEARD, UNHEARD
    pcm = speak_pcm16("good game everyone") + b"\x00\x00" * SAMPLE_RATE_HZ
    step = SAMPLE_RATE_HZ // 5 * 2  # 0.2 s chunks
    chunks = [moderation_pb2.AudioChunk(pcm16=pcm[i:i + step], sample_rate_hz=SAMPLE_RATE_HZ)
              for i in range(0, len(pcm), step)]

    events = list(stub.StreamVoice(iter(chunks), timeout=30))

    assert events and all(e.speech_detected and e.transcript == "" for e in events)
    assert all(e.verdict.action == UNTRANSCRIBED_SPEECH_ACTION for e in events)
