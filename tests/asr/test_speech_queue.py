"""The speech queue: full means AsrOverloaded at once, expired clips never run, overlapping clips
share a batch.

Most tests run a gated executor so the queue's state is exact; one runs the real model through
the queue in this process.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from asr import (
    AsrExpired,
    AsrOverloaded,
    AsrUnavailable,
    InProcessExecutor,
    SpeechQueue,
    Transcript,
    decode_audio,
)

SECOND_OF_SILENCE = np.zeros(16_000, dtype=np.float32)
LONG_CLIP = np.zeros(16_000 * 12, dtype=np.float32)  # past BATCH_MAX_S: always runs alone


class GatedExecutor:
    """Blocks every batch until `gate` is set; records the batches that started."""

    def __init__(self, slots: int = 1, fail_with: Exception | None = None):
        self.slots = slots
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self.batches: list[int] = []
        self.closed = False
        self._fail_with = fail_with

    def run(self, slot, clips):
        self.batches.append(len(clips))
        self.started.release()
        if not self.gate.wait(timeout=10):
            raise TimeoutError("test gate never opened")
        if self._fail_with is not None:
            return [self._fail_with for _ in clips]
        return [Transcript(text="", language=language, duration_s=len(audio) / 16_000) for audio, language in clips]

    def close(self):
        self.closed = True
        self.gate.set()


def _call(queue: SpeechQueue, audio=SECOND_OF_SILENCE, expires_at=None) -> dict:
    """transcribe() in a thread; the returned dict gets 'result' or 'error'."""
    outcome: dict = {}

    def call():
        try:
            outcome["result"] = queue.transcribe(audio, expires_at=expires_at)
        except Exception as err:
            outcome["error"] = err

    outcome["thread"] = threading.Thread(target=call)
    outcome["thread"].start()
    return outcome


def test_full_queue_refuses_at_once_and_recovers():
    gated = GatedExecutor()
    queue = SpeechQueue(gated, max_waiting=1, max_batch=1)
    assert queue.capacity == 2
    running = _call(queue)
    assert gated.started.acquire(timeout=5)
    waiting = _call(queue)
    _wait_until(lambda: queue.waiting == 1)
    assert queue.taken == 2

    started = time.perf_counter()
    with pytest.raises(AsrOverloaded, match="retry later"):
        queue.reserve()
    assert time.perf_counter() - started < 0.05  # refused, not queued behind the others

    gated.gate.set()
    for call in (running, waiting):
        call["thread"].join(timeout=5)
        assert call["result"].duration_s == pytest.approx(1.0)
    assert queue.taken == 0
    assert queue.transcribe(SECOND_OF_SILENCE).text == ""
    queue.close()


def test_a_place_is_taken_before_decoding_and_freed_when_left_unused():
    queue = SpeechQueue(GatedExecutor(), max_waiting=0, max_batch=1)
    with queue.reserve():  # the clip is being decoded: the one place is taken
        with pytest.raises(AsrOverloaded):
            queue.reserve()
    assert queue.taken == 0
    with queue.reserve() as place:
        with pytest.raises(ValueError, match="float32"):  # checked before it is queued
            place.transcribe(np.zeros(16_000, dtype=np.int16))
    assert queue.taken == 0
    queue.close()


def test_zero_waiting_means_only_what_the_slots_run():
    gated = GatedExecutor(slots=2)
    queue = SpeechQueue(gated, max_waiting=0, max_batch=1)
    calls = [_call(queue) for _ in range(2)]
    _wait_until(lambda: queue.taken == 2)
    with pytest.raises(AsrOverloaded):
        queue.reserve()
    gated.gate.set()
    for call in calls:
        call["thread"].join(timeout=5)
        assert call["result"].text == ""
    queue.close()


def test_clips_that_overlap_share_a_batch_but_idle_slots_come_first():
    gated = GatedExecutor(slots=2)
    queue = SpeechQueue(gated, max_waiting=4, max_batch=3)
    first, second = _call(queue), _call(queue)  # two idle slots: one clip each
    assert gated.started.acquire(timeout=5) and gated.started.acquire(timeout=5)
    long_clip = _call(queue, LONG_CLIP)
    short = [_call(queue) for _ in range(4)]
    _wait_until(lambda: queue.waiting == 5)
    gated.gate.set()
    for call in (first, second, long_clip, *short):
        call["thread"].join(timeout=5)
        assert call["result"].text == ""
    queue.close()

    assert gated.batches[:2] == [1, 1]
    assert sorted(gated.batches[2:]) == [1, 1, 3]  # the long clip alone; short clips 3 and then 1
    assert queue.batch_sizes == {1: 4, 3: 1}


def test_a_clip_whose_caller_stopped_waiting_is_never_run():
    gated = GatedExecutor()
    queue = SpeechQueue(gated, max_waiting=2, max_batch=4)
    running = _call(queue, LONG_CLIP)
    assert gated.started.acquire(timeout=5)
    expiring = _call(queue, expires_at=time.monotonic() + 0.05)
    expiring["thread"].join(timeout=5)
    assert isinstance(expiring["error"], AsrExpired) and "deadline" in str(expiring["error"])
    assert queue.taken == 1  # its place is free again
    patient = _call(queue)
    gated.gate.set()
    for call in (running, patient):
        call["thread"].join(timeout=5)
        assert call["result"].text == ""
    queue.close()

    assert queue.expired == 1
    assert gated.batches == [1, 1]  # the long clip and `patient`; the expired clip never ran


def test_a_running_clip_past_its_deadline_keeps_its_place_until_it_ends():
    gated = GatedExecutor()
    queue = SpeechQueue(gated, max_waiting=0, max_batch=1)
    call = _call(queue, expires_at=time.monotonic() + 0.5)
    assert gated.started.acquire(timeout=5)
    call["thread"].join(timeout=5)
    assert isinstance(call["error"], AsrExpired) and "during" in str(call["error"])
    assert queue.taken == 1  # still decoding for nobody: the place counts it
    gated.gate.set()
    _wait_until(lambda: queue.taken == 0)
    queue.close()


def test_errors_reach_the_caller_and_free_the_place():
    queue = SpeechQueue(GatedExecutor(fail_with=RuntimeError("model crashed")), max_waiting=0)
    queue.executor.gate.set()
    for _ in range(2):
        with pytest.raises(RuntimeError, match="model crashed"):
            queue.transcribe(SECOND_OF_SILENCE)
        assert queue.taken == 0
    queue.close()


def test_closing_fails_waiting_clips_and_refuses_new_ones():
    gated = GatedExecutor()
    queue = SpeechQueue(gated, max_waiting=2, max_batch=1)
    running = _call(queue)
    assert gated.started.acquire(timeout=5)
    waiting = _call(queue)
    _wait_until(lambda: queue.waiting == 1)

    queue.close()
    waiting["thread"].join(timeout=5)
    assert isinstance(waiting["error"], AsrUnavailable) and "shut down" in str(waiting["error"])
    with pytest.raises(AsrUnavailable, match="shut down"):
        queue.reserve()
    running["thread"].join(timeout=5)
    assert gated.closed and gated.batches == [1]


def test_bad_queue_sizes_are_refused():
    with pytest.raises(ValueError, match="max_waiting"):
        SpeechQueue(GatedExecutor(), max_waiting=-1)
    with pytest.raises(ValueError, match="max_batch"):
        SpeechQueue(GatedExecutor(), max_batch=0)


@pytest.mark.integration
def test_real_model_through_the_queue(transcriber, toxic_speech, clean_speech):
    queue = SpeechQueue(InProcessExecutor(transcriber), max_waiting=2, max_batch=2)
    clips = {name: decode_audio(speech.path.read_bytes()) for name, speech in
             (("toxic", toxic_speech), ("clean", clean_speech))}
    results: dict = {}
    threads = [threading.Thread(target=lambda n=n, a=a: results.update({n: queue.transcribe(a, "en")}))
               for n, a in clips.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    queue.close()

    assert all(word in results["toxic"].text.lower() for word in toxic_speech.key_words), results["toxic"].text
    assert all(word in results["clean"].text.lower() for word in clean_speech.key_words), results["clean"].text


def _wait_until(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.005)
