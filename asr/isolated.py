"""Whisper in worker processes at a lower CPU priority, so speech never starves chat.

On a box that also serves text, a transcription in the gateway's process competes for the same
cores as Triton and the gateway's own threads, and faster-whisper's Python-side steps (features,
VAD, decoding loop) hold the GIL the gRPC threads need. Here each worker is a separate process
that loads the model once and runs `niceness` below the gateway, in a session and autogroup of its
own (`asr.priority`): when text traffic needs the CPU the scheduler gives it first, and when it
does not, speech runs at full speed.

`IsolatedTranscriber` is a `Transcriber`, so `TranscriptionPool` bounds it exactly as it bounds an
in-process model: the pool's threads only wait here for a worker's answer. Each worker has a
feeder thread that takes the oldest waiting clip when the worker falls idle and, when no other
worker is free, the short clips (<= BATCH_MAX_S) queued behind it, up to `max_batch`, and sends
them as one batch (`Transcriber.transcribe_batch`): callers that overlap share the decoder's
steps instead of waiting in turn. A worker that dies (killed, out of memory) fails the clips it held with AsrUnavailable and
is replaced for the next batch; other clips are unaffected.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ
from asr.errors import AsrError, AsrExpired, AsrUnavailable
from asr.transcriber import Transcriber, TranscriberOptions, Transcript

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # loading a model from a cold disk cache
BATCH_MAX_S = 10.0  # longer clips decode alone: a batch answers when its slowest clip is done
CALL_TIMEOUT_S = 120.0  # one clip (<= 30 s of audio); past this the worker is deemed hung and replaced
ORPHAN_POLL_S = 1.0  # how often a worker checks that the gateway still runs
ORPHAN_EXIT_CODE = 3
_READY = "ready"


class IsolatedTranscriber(Transcriber):
    """Runs `options.num_workers` worker processes, each with its own loaded model.

    Args:
      options: What each worker loads (as `create_transcriber` takes it).
      niceness: Added to each worker's nice value (0-19); 10 lets text work preempt speech;
        19 also puts the workers in the SCHED_IDLE class (they run only on otherwise idle CPU).
    """

    def __init__(self, options: TranscriberOptions, niceness: int = 10, call_timeout_s: float = CALL_TIMEOUT_S,
                 max_batch: int = 1):
        super().__init__(options)
        if not 0 <= niceness <= 19:
            raise ValueError(f"niceness must be in 0..19, got {niceness}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.niceness = niceness
        self.call_timeout_s = call_timeout_s
        self.max_batch = max_batch
        self.batch_sizes: collections.Counter[int] = collections.Counter()  # clips per batch sent -> batches
        self.expired = 0  # clips dropped unstarted because their callers had stopped waiting
        # each worker runs one clip at a time, so its model needs no parallel decoders
        self._worker_options = dataclasses.replace(options, num_workers=1)
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded gateway
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # clips waiting, or closing
        self._waiting: collections.deque[_Clip] = collections.deque()
        self._idle_feeders = 0
        self._workers: list[_Worker] = []
        self._closed = False
        started = time.perf_counter()
        try:
            for _ in range(options.num_workers):
                self._workers.append(self._start_worker())
        except BaseException:  # no half-started set of processes left behind
            self.close()
            raise
        for slot in range(len(self._workers)):
            threading.Thread(target=self._feed, args=(slot,), name=f"asr-feeder-{slot}", daemon=True).start()
        logger.info("asr: %d worker process(es) at nice +%d ready in %.1f s", options.num_workers,
                    niceness, time.perf_counter() - started)

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_worker_main,
                                        args=(child_end, self._worker_options, self.niceness, os.getpid()),
                                        name="asr-worker", daemon=True)
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        if not parent_end.poll(START_TIMEOUT_S):
            worker.stop()
            raise AsrUnavailable(f"speech worker did not start within {START_TIMEOUT_S:.0f} s")
        try:
            status, detail = parent_end.recv()
        except (EOFError, OSError):
            worker.stop()
            raise AsrUnavailable("speech worker exited while loading the model") from None
        if status != _READY:
            worker.stop()
            raise detail if isinstance(detail, AsrError) else AsrUnavailable(f"speech worker failed to load: {detail}")
        return worker

    def _transcribe(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        return self._queue_and_wait([_Clip(audio, language)])[0]

    def _transcribe_until(self, audio: np.ndarray, language: str | None, duration_s: float,
                          expires_at: float | None) -> Transcript:
        return self._queue_and_wait([_Clip(audio, language, expires_at)])[0]

    @property
    def queued(self) -> int:
        """Clips waiting for a worker."""
        with self._ready:
            return len(self._waiting)

    def _transcribe_batch(self, audios: list[np.ndarray], language: str | None) -> list[Transcript]:
        return self._queue_and_wait([_Clip(audio, language) for audio in audios])

    def _queue_and_wait(self, clips: list[_Clip]) -> list[Transcript]:
        with self._ready:  # ordered against close(), so no clip is queued after the feeders have left
            if self._closed:
                raise AsrUnavailable("the speech workers are shut down")
            self._waiting.extend(clips)
            self._ready.notify(len(clips))
        return [clip.result() for clip in clips]

    def _feed(self, slot: int) -> None:
        """One worker's feeder: the oldest waiting clip, plus, when no other worker is free to take
        them, the short clips queued behind it (up to max_batch)."""
        while (batch := self._next_batch()) is not None:
            try:
                results = self._alive(slot).call([(clip.audio, clip.language) for clip in batch], self.call_timeout_s)
                if len(results) != len(batch):
                    raise AsrUnavailable(f"the speech worker answered {len(results)} of {len(batch)} clips")
            except Exception as err:  # the worker died, hung or would not start: these clips fail
                results = [("error", err if isinstance(err, AsrError) else AsrUnavailable(str(err)))] * len(batch)
            for clip, (status, value) in zip(batch, results, strict=True):
                clip.settle(status, value)

    def _next_batch(self) -> list[_Clip] | None:
        with self._ready:
            self._idle_feeders += 1
            while not self._closed and (self._drop_expired() or not self._waiting):
                self._ready.wait()
            self._idle_feeders -= 1
            if self._closed:
                return None  # close() fails whatever is still waiting
            batch = [self._waiting.popleft()]
            # A clip that another free worker can start now is better off there than sharing a batch,
            # and a long clip would hold the short ones beside it until it is done.
            if self._idle_feeders == 0 and _batchable(batch[0]):
                while len(batch) < self.max_batch and self._waiting and _batchable(self._waiting[0]):
                    batch.append(self._waiting.popleft())
            self.batch_sizes[len(batch)] += 1
            return batch

    def _drop_expired(self) -> None:
        """Clips whose callers have stopped waiting are failed unstarted (called under the lock).
        Returns None, so `_next_batch`'s wait condition can call it first."""
        now = time.monotonic()
        expired = [clip for clip in self._waiting if clip.expires_at is not None and clip.expires_at <= now]
        for clip in expired:
            self._waiting.remove(clip)
            clip.settle("error", AsrExpired("the caller's deadline passed before a speech worker was free"))
        self.expired += len(expired)

    def _alive(self, slot: int) -> _Worker:
        """The slot's worker, or a fresh one in its place if it has died since its last batch."""
        with self._lock:
            worker = self._workers[slot]
            if self._closed:
                raise AsrUnavailable("the speech workers are shut down")
        if worker.process.is_alive() and not worker.broken:
            return worker
        logger.warning("asr: worker pid %s is gone (exit %s); starting a new one", worker.process.pid,
                       worker.process.exitcode)
        worker.stop()
        fresh = self._start_worker()
        with self._lock:
            self._workers[slot] = fresh
            closed = self._closed
        if closed:  # close() ran while this one started
            fresh.stop()
            raise AsrUnavailable("the speech workers are shut down")
        return fresh

    def close(self) -> None:
        with self._ready:
            self._closed = True
            workers = list(self._workers)
            waiting = list(self._waiting)
            self._waiting.clear()
            self._ready.notify_all()  # idle feeders exit
        for clip in waiting:
            clip.settle("error", AsrUnavailable("the speech workers are shut down"))
        for worker in workers:
            worker.stop()  # a feeder in the middle of a batch gets AsrUnavailable from its pipe


def _batchable(clip: _Clip) -> bool:
    return len(clip.audio) <= BATCH_MAX_S * WHISPER_SAMPLE_RATE_HZ


class _Clip:
    """One clip waiting for a worker, and its answer once settled."""

    def __init__(self, audio: np.ndarray, language: str | None, expires_at: float | None = None):
        self.audio = audio
        self.language = language
        self.expires_at = expires_at  # time.monotonic(); None: waits as long as it takes
        self._done = threading.Event()
        self._outcome: tuple[str, object] = ("error", AsrUnavailable("no answer"))

    def settle(self, status: str, value) -> None:
        self._outcome = (status, value)
        self._done.set()

    def result(self) -> Transcript:
        self._done.wait()
        status, value = self._outcome
        if status == "ok":
            return value
        raise value


class _Worker:
    def __init__(self, process, connection: Connection):
        self.process = process
        self.connection = connection
        self.broken = False
        self._stopping = threading.Lock()  # close() and a feeder's restart may both stop a worker

    def call(self, clips: list[tuple[np.ndarray, str | None]], timeout_s: float) -> list[tuple[str, object]]:
        """(status, transcript or error) per clip."""
        try:
            self.connection.send(clips)
            if not self.connection.poll(timeout_s):
                self.broken = True  # hung: replaced on the next call
                self.process.kill()
                raise AsrUnavailable(f"the speech worker gave no answer in {timeout_s:.0f} s; it is being replaced")
            return self.connection.recv()
        except (EOFError, OSError, TypeError):  # TypeError: the pipe was closed (stop()) while we waited
            self.broken = True
            raise AsrUnavailable("the speech worker died or was stopped while transcribing") from None

    def stop(self) -> None:
        """Ends the process, then closes the pipe (a feeder reading it gets EOF, not a reused fd)."""
        with self._stopping:
            if self.process.is_alive():
                self.process.terminate()
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
            try:
                self.connection.close()
            except OSError:
                pass


def _worker_main(connection: Connection, options: TranscriberOptions, niceness: int, gateway_pid: int) -> None:
    """The worker process: lower its priority, load the model, answer clips until the pipe closes."""
    from asr.priority import lower_priority
    from asr.transcriber import create_transcriber

    exit_when_orphaned(gateway_pid)  # passed in: a gateway that died during start-up is noticed too
    lower_priority(niceness)
    try:
        transcriber = create_transcriber(options)
    except Exception as err:  # reported to the parent, which raises it
        connection.send(("error", _picklable(err)))
        return
    connection.send((_READY, None))
    while True:
        try:
            clips = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(_transcribe_clips(transcriber, clips))


def exit_when_orphaned(parent_pid: int, poll_s: float = ORPHAN_POLL_S) -> threading.Thread:
    """Ends this process soon after `parent_pid` dies, even in the middle of a clip.

    A worker at a lower priority has a session of its own (asr.priority), so signals sent to the
    gateway's process group miss it. An idle worker exits when its pipe closes; a busy one would
    otherwise finish its clip, and one hung in native code would never exit. Once re-parented it
    leaves within `poll_s`: faster-whisper's native steps release the GIL, so this thread runs."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(ORPHAN_EXIT_CODE)

    watcher = threading.Thread(target=watch, name="orphan-watch", daemon=True)
    watcher.start()
    return watcher


def _transcribe_clips(transcriber: Transcriber, clips: list[tuple[np.ndarray, str | None]]) -> list[tuple[str, object]]:
    """Clips of one language as one batch; if a batch fails, its clips one by one, so one bad clip
    fails alone."""
    results: list[tuple[str, object] | None] = [None] * len(clips)
    by_language: dict[str | None, list[int]] = {}
    for index, (_, language) in enumerate(clips):
        by_language.setdefault(language, []).append(index)
    for language, indexes in by_language.items():
        try:
            transcripts = transcriber.transcribe_batch([clips[index][0] for index in indexes], language)
            for index, transcript in zip(indexes, transcripts, strict=True):
                results[index] = ("ok", transcript)
        except Exception:
            for index in indexes:
                try:
                    results[index] = ("ok", transcriber.transcribe(clips[index][0], language))
                except Exception as err:
                    results[index] = ("error", _picklable(err))
    return results


def _picklable(err: Exception) -> Exception:
    """Our own errors and plain ValueErrors (bad arguments) cross the pipe as they are; anything
    else, which might not unpickle in the gateway, as AsrUnavailable with its text."""
    if isinstance(err, AsrError) or type(err) is ValueError:
        return err
    return AsrUnavailable(f"{type(err).__name__}: {err}")
