"""moderation-client --stream's local side: decoding to 16 kHz PCM16 and pacing 100 ms chunks."""

from __future__ import annotations

import time
import wave

import numpy as np
import pytest

from gateway.client import STREAM_CHUNK_S, paced, pcm16_chunks


def write_tone(path, seconds: float, rate: int = 48_000, channels: int = 2) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(samples, channels).tobytes())


def test_a_stereo_48k_file_becomes_100ms_chunks_of_16k_pcm16(tmp_path):
    pytest.importorskip("av", reason="the asr extra is not installed")
    write_tone(tmp_path / "tone.wav", 1.05)
    chunks = pcm16_chunks(str(tmp_path / "tone.wav"))
    assert [len(c) for c in chunks[:-1]] == [3200] * 10  # 1,600 samples of 2 bytes
    assert 0 < len(chunks[-1]) <= 3200
    assert np.abs(np.frombuffer(chunks[3], "<i2")).max() > 5000  # the tone, scaled back to int16


def test_chunks_go_out_no_faster_than_real_time():
    chunks = [b"\0\0" * 1600] * 4
    started = time.monotonic()
    requests = list(paced(chunks))
    assert time.monotonic() - started >= 3 * STREAM_CHUNK_S * 0.95
    assert [r.sample_rate_hz for r in requests] == [16_000, 0, 0, 0]  # the rate rides on the first chunk
