"""Whisper in worker processes at a lower CPU priority, so speech never starves chat.

On a box that also serves text, a transcription in the gateway's process competes for the same
cores as Triton and the gateway's own threads, and faster-whisper's Python-side steps (features,
VAD, decoding loop) hold the GIL the gRPC threads need. Here each worker is a separate process
that loads the model once and runs at `os.nice(niceness)`: when text traffic needs the CPU the
scheduler gives it first, and when it does not, speech runs at full speed.

`IsolatedTranscriber` is a `Transcriber`, so `TranscriptionPool` bounds it exactly as it bounds an
in-process model: the pool's threads only wait here for a worker's answer. A worker that dies
(killed, out of memory) fails the clip it held with AsrUnavailable and is replaced on the next
call; other clips are unaffected.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from asr.errors import AsrError, AsrUnavailable
from asr.transcriber import Transcriber, TranscriberOptions, Transcript

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # loading a model from a cold disk cache
CALL_TIMEOUT_S = 120.0  # one clip (<= 30 s of audio); past this the worker is deemed hung and replaced
_READY = "ready"


class IsolatedTranscriber(Transcriber):
    """Runs `options.num_workers` worker processes, each with its own loaded model.

    Args:
      options: What each worker loads (as `create_transcriber` takes it).
      niceness: Added to each worker's nice value (0-19); 10 lets text work preempt speech;
        19 also puts the workers in the SCHED_IDLE class (they run only on otherwise idle CPU).
    """

    def __init__(self, options: TranscriberOptions, niceness: int = 10, call_timeout_s: float = CALL_TIMEOUT_S):
        super().__init__(options)
        if not 0 <= niceness <= 19:
            raise ValueError(f"niceness must be in 0..19, got {niceness}")
        self.niceness = niceness
        self.call_timeout_s = call_timeout_s
        # each worker runs one clip at a time, so its model needs no parallel decoders
        self._worker_options = dataclasses.replace(options, num_workers=1)
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded gateway
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False
        started = time.perf_counter()
        try:
            for _ in range(options.num_workers):
                worker = self._start_worker()
                self._workers.append(worker)
                self._idle.put(worker)
        except BaseException:  # no half-started set of processes left behind
            self.close()
            raise
        logger.info("asr: %d worker process(es) at nice +%d ready in %.1f s", options.num_workers,
                    niceness, time.perf_counter() - started)

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child_end, self._worker_options, self.niceness),
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
        if self._closed:
            raise AsrUnavailable("the speech workers are shut down")
        worker = self._idle.get()
        try:
            worker = self._alive(worker)
            return worker.call(audio, language, self.call_timeout_s)
        finally:
            self._idle.put(worker)

    def _alive(self, worker: _Worker) -> _Worker:
        """The worker, or a fresh one in its place if it has died since its last clip."""
        if worker.process.is_alive() and not worker.broken:
            return worker
        logger.warning("asr: worker pid %s is gone (exit %s); starting a new one", worker.process.pid,
                       worker.process.exitcode)
        worker.stop()
        fresh = self._start_worker()
        with self._lock:
            self._workers[self._workers.index(worker)] = fresh
            closed = self._closed
        if closed:  # close() ran while this one started
            fresh.stop()
            raise AsrUnavailable("the speech workers are shut down")
        return fresh

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.stop()


class _Worker:
    def __init__(self, process, connection: Connection):
        self.process = process
        self.connection = connection
        self.broken = False

    def call(self, audio: np.ndarray, language: str | None, timeout_s: float) -> Transcript:
        try:
            self.connection.send((audio, language))
            if not self.connection.poll(timeout_s):
                self.broken = True  # hung: replaced on the next call
                self.process.kill()
                raise AsrUnavailable(f"the speech worker gave no answer in {timeout_s:.0f} s; it is being replaced")
            status, result = self.connection.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.broken = True
            raise AsrUnavailable("the speech worker died while transcribing; it is being replaced") from None
        if status == "ok":
            return result
        raise result

    def stop(self) -> None:
        try:
            self.connection.close()
        except OSError:
            pass
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)


def _worker_main(connection: Connection, options: TranscriberOptions, niceness: int) -> None:
    """The worker process: lower its priority, load the model, answer clips until the pipe closes."""
    from asr.transcriber import create_transcriber

    if niceness:
        os.nice(niceness)
    if niceness >= 19 and hasattr(os, "SCHED_IDLE"):  # the lowest: runs only on otherwise idle CPU
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        transcriber = create_transcriber(options)
    except Exception as err:  # reported to the parent, which raises it
        connection.send(("error", _picklable(err)))
        return
    connection.send((_READY, None))
    while True:
        try:
            audio, language = connection.recv()
        except (EOFError, OSError):
            return
        try:
            connection.send(("ok", transcriber.transcribe(audio, language)))
        except Exception as err:
            connection.send(("error", _picklable(err)))


def _picklable(err: Exception) -> Exception:
    """Our own errors and plain ValueErrors (bad arguments) cross the pipe as they are; anything
    else, which might not unpickle in the gateway, as AsrUnavailable with its text."""
    if isinstance(err, AsrError) or type(err) is ValueError:
        return err
    return AsrUnavailable(f"{type(err).__name__}: {err}")
