"""The bounded transcription pool: full means AsrOverloaded at once, never a longer queue.

Most tests hold the workers with a gated transcriber so the pool's state is exact; one runs the
real model through the pool.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from asr import (
    AsrOverloaded,
    AsrUnavailable,
    Transcriber,
    TranscriberOptions,
    Transcript,
    TranscriptionPool,
    decode_audio,
)

SECOND_OF_SILENCE = np.zeros(16_000, dtype=np.float32)


class GatedTranscriber(Transcriber):
    """Blocks every call until `gate` is set; counts the calls that started."""

    def __init__(self):
        super().__init__(TranscriberOptions())
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def _transcribe(self, audio, language, duration_s):
        self.started.release()
        if not self.gate.wait(timeout=10):
            raise TimeoutError("test gate never opened")
        return Transcript(text="", language=language, duration_s=duration_s)


class FailingTranscriber(Transcriber):
    def __init__(self):
        super().__init__(TranscriberOptions())

    def _transcribe(self, audio, language, duration_s):
        raise RuntimeError("model crashed")


def test_full_pool_refuses_at_once_and_recovers():
    gated = GatedTranscriber()
    with TranscriptionPool(gated, workers=1, max_queued=1) as pool:
        running = pool.submit(SECOND_OF_SILENCE)
        assert gated.started.acquire(timeout=5)
        queued = pool.submit(SECOND_OF_SILENCE)
        assert pool.in_flight == 2

        started = time.perf_counter()
        with pytest.raises(AsrOverloaded, match="retry later"):
            pool.submit(SECOND_OF_SILENCE)
        assert time.perf_counter() - started < 0.05  # refused, not queued behind the others

        gated.gate.set()
        assert running.result(timeout=5).duration_s == pytest.approx(1.0)
        assert queued.result(timeout=5).text == ""
        _wait_until(lambda: pool.in_flight == 0)
        assert pool.submit(SECOND_OF_SILENCE).result(timeout=5).text == ""


def test_zero_queue_means_only_running_work():
    gated = GatedTranscriber()
    with TranscriptionPool(gated, workers=2, max_queued=0) as pool:
        futures = [pool.submit(SECOND_OF_SILENCE) for _ in range(2)]
        with pytest.raises(AsrOverloaded):
            pool.submit(SECOND_OF_SILENCE)
        gated.gate.set()
        assert [f.result(timeout=5).text for f in futures] == ["", ""]


def test_transcriber_errors_reach_the_caller_and_free_the_slot():
    with TranscriptionPool(FailingTranscriber(), workers=1, max_queued=0) as pool:
        with pytest.raises(RuntimeError, match="model crashed"):
            pool.submit(SECOND_OF_SILENCE).result(timeout=5)
        _wait_until(lambda: pool.in_flight == 0)
        with pytest.raises(RuntimeError, match="model crashed"):
            pool.submit(SECOND_OF_SILENCE).result(timeout=5)


def test_shut_down_pool_refuses_work_and_can_cancel_the_queue():
    gated = GatedTranscriber()
    pool = TranscriptionPool(gated, workers=1, max_queued=2)
    running = pool.submit(SECOND_OF_SILENCE)
    assert gated.started.acquire(timeout=5)
    queued = pool.submit(SECOND_OF_SILENCE)

    pool.shutdown(wait=False, cancel_queued=True)
    with pytest.raises(AsrUnavailable, match="shut down"):
        pool.submit(SECOND_OF_SILENCE)
    gated.gate.set()

    assert queued.cancelled()
    assert running.result(timeout=5).text == ""
    _wait_until(lambda: pool.in_flight == 0)


def test_bad_pool_sizes_are_refused():
    with pytest.raises(ValueError, match="workers"):
        TranscriptionPool(GatedTranscriber(), workers=0)
    with pytest.raises(ValueError, match="max_queued"):
        TranscriptionPool(GatedTranscriber(), max_queued=-1)


def test_real_model_through_the_pool(transcriber, toxic_speech):
    audio = decode_audio(toxic_speech.path.read_bytes())
    with TranscriptionPool(transcriber, workers=1, max_queued=1) as pool:
        transcript = pool.submit(audio, language="en").result(timeout=60)

    assert all(word in transcript.text.lower() for word in toxic_speech.key_words), transcript.text


def _wait_until(condition, timeout_s: float = 5.0) -> None:
    # The slot is freed in a done-callback, which may run just after result() returns.
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)
