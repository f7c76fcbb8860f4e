"""A bounded pool for transcription, the costly stage of a voice call.

`ThreadPoolExecutor` alone queues without limit, so under load callers would wait behind an
ever longer queue and time out anyway. Here a semaphore caps the work in the pool (running plus
waiting) at `workers + max_queued`; past that `submit` raises AsrOverloaded at once, which the
gateway answers with RESOURCE_EXHAUSTED so clients back off.

Threads suffice: CTranslate2 releases the GIL while it decodes. On 2 CPU cores, with the short
encoder window, two workers of one thread each serve concurrent callers best (Whisper's decoder
works on one token at a time, too little to split across threads); give the model as many workers
as the pool (`TranscriberOptions.num_workers`), or the extra workers only wait inside the model.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from asr.errors import AsrOverloaded, AsrUnavailable
from asr.transcriber import Transcriber, Transcript

logger = logging.getLogger(__name__)


class TranscriptionPool:
    """Runs `transcriber.transcribe` on a fixed number of threads with a bounded queue.

    Args:
      transcriber: A loaded model, shared by the workers.
      workers: Transcriptions that run at once.
      max_queued: Transcriptions that may wait for a worker; 0 means none wait.
    """

    def __init__(self, transcriber: Transcriber, *, workers: int = 1, max_queued: int = 4):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {max_queued}")
        self._transcriber = transcriber
        self.capacity = workers + max_queued
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asr")
        self._lock = threading.RLock()  # orders submit() against shutdown(); re-entered by _release
        self._closed = False
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Transcriptions running or waiting now."""
        return self._in_flight

    def submit(self, audio: np.ndarray, language: str | None = None,
               expires_at: float | None = None) -> Future[Transcript]:
        """Queues one clip; the future holds its Transcript (or the transcriber's exception).

        `expires_at` (`time.monotonic()`): past it the clip is not started, here or in a
        transcriber that queues clips itself (its future then holds AsrExpired).

        Raises:
          AsrOverloaded: the pool already holds `capacity` clips; nothing was queued.
          AsrUnavailable: the pool is shut down.
        """
        with self._lock:
            if self._closed:
                raise AsrUnavailable("the transcription pool is shut down")
            if not self._slots.acquire(blocking=False):
                logger.info("asr pool full capacity=%d", self.capacity)
                raise AsrOverloaded(f"speech recognition is overloaded ({self.capacity} clips in progress); retry later")
            self._in_flight += 1
            try:
                future = self._executor.submit(self._transcriber.transcribe, audio, language, expires_at)
            except BaseException:
                self._release()
                raise
        future.add_done_callback(lambda _: self._release())
        return future

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
        self._slots.release()

    def shutdown(self, *, wait: bool = True, cancel_queued: bool = False) -> None:
        """Stops taking clips; waits for those in progress unless `wait` is False.

        `cancel_queued` cancels clips that have not started (their futures raise CancelledError).
        """
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=wait, cancel_futures=cancel_queued)

    def __enter__(self) -> TranscriptionPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
