"""The one queue in front of Whisper: every clip's admission, expiry and batching.

A clip takes a place before it is decoded (`reserve`) and keeps it until its transcription ends,
so the queue counts all the speech work the gateway holds, running and waiting:

- Capacity: when every place is taken, `reserve` raises AsrOverloaded at once; the caller gets
  RESOURCE_EXHAUSTED to retry later instead of a longer wait, and the clip costs no decoding.
- Expiry: a clip carries the time its caller stops waiting; if it has not started by then it is
  dropped unstarted (AsrExpired), so no slot decodes speech for nobody.
- Batching: each executor slot has one runner thread. A runner that falls idle takes the oldest
  waiting clip and, when no other runner is idle to take them, the short clips waiting behind it,
  up to `max_batch`, as one call: callers that overlap share the decoder's steps.

Where the model runs (in this process or in worker processes) is the executor's business
(`asr.executors`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Protocol

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ
from asr.errors import AsrError, AsrExpired, AsrOverloaded, AsrUnavailable
from asr.transcriber import Transcript, check_audio, check_language

logger = logging.getLogger(__name__)

BATCH_MAX_S = 10.0  # longer clips run alone: a batch answers when its slowest clip is done

# One clip for an executor: 16 kHz float32 samples and the language (None: the model's default).
Clip = tuple[np.ndarray, str | None]


class Executor(Protocol):
    """Runs batches of clips on a loaded model (see asr.executors)."""

    slots: int  # batches that can run at once

    def run(self, slot: int, clips: list[Clip]) -> list[Transcript | Exception]:
        """One outcome per clip: its transcript, or the error that clip alone failed with."""

    def close(self) -> None:
        """Stops the model; a batch running meanwhile fails with AsrUnavailable."""


class SpeechQueue:
    """Admits clips up to a fixed capacity and feeds them, batched, to an executor.

    Args:
      executor: Where the model runs; the queue starts one runner thread per executor slot.
      max_waiting: Clips that may wait beyond those the slots can run; 0 means none wait.
      max_batch: Clips one slot decodes together when callers overlap (1: never batch).
    """

    def __init__(self, executor: Executor, *, max_waiting: int = 4, max_batch: int = 1):
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.executor = executor
        self.max_batch = max_batch
        self.capacity = executor.slots * max_batch + max_waiting
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # clips per batch -> batches
        self.expired = 0  # clips dropped unstarted because their callers had stopped waiting
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # clips waiting, or closing
        self._waiting: collections.deque[_QueuedClip] = collections.deque()
        self._taken = 0  # places reserved: clips being decoded, waiting or running
        self._idle_runners = 0
        self._closed = False
        for slot in range(executor.slots):
            threading.Thread(target=self._run, args=(slot,), name=f"asr-runner-{slot}", daemon=True).start()

    @property
    def taken(self) -> int:
        """Places held now: clips being decoded, waiting or running."""
        with self._lock:
            return self._taken

    @property
    def waiting(self) -> int:
        """Clips waiting for a slot."""
        with self._lock:
            return len(self._waiting)

    def reserve(self) -> Place:
        """A place for one clip, to hold while it is decoded and transcribed (`with` it).

        Raises:
          AsrOverloaded: every place is taken; nothing was reserved.
          AsrUnavailable: the queue is shut down.
        """
        with self._lock:
            if self._closed:
                raise AsrUnavailable("the speech queue is shut down")
            if self._taken >= self.capacity:
                logger.info("speech queue full capacity=%d", self.capacity)
                raise AsrOverloaded(f"speech recognition is overloaded ({self.capacity} clips in progress); retry later")
            self._taken += 1
        return Place(self)

    def transcribe(self, audio: np.ndarray, language: str | None = None, expires_at: float | None = None) -> Transcript:
        """`reserve` and `Place.transcribe` in one step, for audio that is already decoded."""
        with self.reserve() as place:
            return place.transcribe(audio, language, expires_at)

    def close(self) -> None:
        """Refuses new clips, fails the waiting ones with AsrUnavailable and stops the executor."""
        with self._ready:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._ready.notify_all()  # idle runners exit
        for clip in waiting:
            clip.settle(AsrUnavailable("the speech queue is shut down"))
        self.executor.close()

    def _release(self) -> None:
        with self._lock:
            self._taken -= 1

    def _enqueue(self, clip: _QueuedClip) -> None:
        with self._ready:
            if self._closed:
                raise AsrUnavailable("the speech queue is shut down")
            self._waiting.append(clip)
            self._ready.notify()

    def _withdraw(self, clip: _QueuedClip) -> bool:
        """Takes a clip whose caller gave up out of the queue; False if a runner has it already."""
        with self._lock:
            if clip not in self._waiting:
                return False
            self._waiting.remove(clip)
            self.expired += 1
        return True

    def _run(self, slot: int) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                outcomes = self.executor.run(slot, [(clip.audio, clip.language) for clip in batch])
                if len(outcomes) != len(batch):
                    raise AsrUnavailable(f"speech recognition answered {len(outcomes)} of {len(batch)} clips")
            except Exception as err:  # the executor itself failed: every clip of the batch fails
                outcomes = [err if isinstance(err, AsrError) else AsrUnavailable(str(err))] * len(batch)
            for clip, outcome in zip(batch, outcomes, strict=True):
                clip.settle(outcome)

    def _next_batch(self) -> list[_QueuedClip] | None:
        with self._ready:
            self._idle_runners += 1
            while not self._closed and (self._drop_expired() or not self._waiting):
                self._ready.wait()
            self._idle_runners -= 1
            if self._closed:
                return None
            batch = [self._waiting.popleft()]
            # An idle runner starts a clip sooner than a shared batch would, and a long clip would
            # hold the short ones beside it until it is done.
            if self._idle_runners == 0 and _batchable(batch[0]):
                while len(batch) < self.max_batch and self._waiting and _batchable(self._waiting[0]):
                    batch.append(self._waiting.popleft())
            self.batch_sizes[len(batch)] += 1
            return batch

    def _drop_expired(self) -> None:
        """Fails waiting clips whose callers have stopped waiting (under the lock). Returns None,
        so `_next_batch`'s wait condition can call it first."""
        now = time.monotonic()
        expired = [clip for clip in self._waiting if clip.expires_at is not None and clip.expires_at <= now]
        for clip in expired:
            self._waiting.remove(clip)
            clip.settle(AsrExpired("the caller's deadline passed before speech recognition started"))
        self.expired += len(expired)


class Place:
    """One clip's place in a SpeechQueue, from before its decoding until its transcription ends.

    The caller's `with` block holds the place, and so does a clip it queued: a clip still running
    for a caller that stopped waiting keeps the place taken until the run ends.
    """

    def __init__(self, queue: SpeechQueue):
        self._queue = queue
        self._lock = threading.Lock()
        self._holders = 1  # the caller's `with` block; a queued or running clip adds one
        self._used = False

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc_info) -> None:
        self._let_go()

    def transcribe(self, audio: np.ndarray, language: str | None = None, expires_at: float | None = None) -> Transcript:
        """Queues the clip and waits for its transcript.

        Args:
          audio: 1-D float32 samples in [-1, 1] at 16 kHz, as decode_audio returns them.
          language: The language to decode in (None: the model's default).
          expires_at: `time.monotonic()` time after which the caller stops waiting (None: never).

        Raises:
          AsrExpired: expires_at passed first; a clip that had not started then never runs.
          AsrUnavailable: the queue is shut down, or the model's worker died.
          ValueError: bad audio or language (checked before queueing); AudioError from the model.
        """
        audio = check_audio(audio)
        check_language(language)
        with self._lock:
            if self._used or not self._holders:
                raise RuntimeError("a place holds one clip, inside its `with` block")
            self._used = True
            self._holders += 1
        clip = _QueuedClip(audio, language, expires_at, on_settled=self._let_go)
        try:
            self._queue._enqueue(clip)
        except BaseException:
            clip.settle(AsrUnavailable("the clip was not queued"))
            raise
        return self._wait(clip)

    def _wait(self, clip: _QueuedClip) -> Transcript:
        timeout_s = None if clip.expires_at is None else max(0.0, clip.expires_at - time.monotonic())
        if not clip.done.wait(timeout_s):
            if not self._queue._withdraw(clip):  # running: it keeps the place until it ends
                raise AsrExpired("the caller's deadline passed during speech recognition")
            clip.settle(AsrExpired("the caller's deadline passed before speech recognition started"))
        if isinstance(clip.outcome, BaseException):
            raise clip.outcome
        return clip.outcome

    def _let_go(self) -> None:
        with self._lock:
            self._holders -= 1
            free = self._holders == 0
        if free:
            self._queue._release()


def _batchable(clip: _QueuedClip) -> bool:
    return len(clip.audio) <= BATCH_MAX_S * WHISPER_SAMPLE_RATE_HZ


class _QueuedClip:
    """One clip in the queue, and its outcome once settled."""

    def __init__(self, audio: np.ndarray, language: str | None, expires_at: float | None, on_settled):
        self.audio = audio
        self.language = language
        self.expires_at = expires_at
        self.outcome: Transcript | BaseException = AsrUnavailable("no answer")
        self.done = threading.Event()
        self._on_settled = on_settled

    def settle(self, outcome: Transcript | BaseException) -> None:
        """Called once, by whoever took the clip out of the queue (a runner, close or the caller)."""
        self.outcome = outcome
        self.done.set()
        self._on_settled()
