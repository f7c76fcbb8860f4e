"""loadtest.speech: one spoken sentence, as WAV bytes, as 16 kHz float32 and as PCM16, cached."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from loadtest import speech

pytestmark = pytest.mark.skipif(not speech.espeak_available(), reason="espeak-ng is not installed")
SENTENCE = "good game everyone"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(speech, "CACHE_DIR", tmp_path / "speech")


def test_a_sentence_is_spoken_once_and_then_read_from_the_cache():
    first = speech.speak_wav(SENTENCE)
    with wave.open(io.BytesIO(first)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        assert 0.5 < wav.getnframes() / wav.getframerate() < 5
    (cached,) = speech.CACHE_DIR.iterdir()
    assert cached.suffix == ".wav"
    assert speech.speak_wav(SENTENCE) == first
    assert speech.speak_wav(SENTENCE, voice="en-us") != first  # voice and speed are part of the key
    assert len(list(speech.CACHE_DIR.iterdir())) == 2


def test_whisper_samples_and_pcm16_are_the_same_speech_at_16_khz():
    audio = speech.speak_audio(SENTENCE)
    pcm = np.frombuffer(speech.speak_pcm16(SENTENCE), dtype="<i2")
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
    assert len(pcm) == len(audio)
    assert np.abs(pcm / 32767 - audio).max() < 1e-3
