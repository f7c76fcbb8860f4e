"""Where a SpeechQueue's batches run: in the gateway's process, or in worker processes.

- `InProcessExecutor`: the queue's runner threads call one loaded model (CTranslate2 releases the
  GIL while it decodes). One model in memory.
- `WorkerProcessExecutor`: one process per slot, each with its own model, so a crash, a leak or a
  hang in the speech stack cannot take the chat path with it, and Whisper's Python steps never
  hold the gateway's GIL. A worker that died is replaced before its slot's next batch. The kernel
  kills the workers when the gateway dies (`die_with_parent`), even in the middle of a clip.

CPU priorities are left alone: where speech must not slow chat, give Whisper a CPU budget of its
own (docs/decisions/0009-no-process-priorities.md).
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from asr.backends import create_transcriber
from asr.errors import AsrError, AsrUnavailable
from asr.speech_queue import Clip
from asr.transcriber import Transcriber, TranscriberOptions, Transcript

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # loading a model from a cold disk cache
CALL_TIMEOUT_S = 120.0  # one batch of clips (<= 30 s each); past this the worker is deemed hung
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_READY = "ready"


class InProcessExecutor:
    """Runs batches on `transcriber` in the calling (runner) threads; slots: its num_workers."""

    def __init__(self, transcriber: Transcriber):
        self.transcriber = transcriber
        self.slots = transcriber.options.num_workers

    def run(self, slot: int, clips: list[Clip]) -> list[Transcript | Exception]:
        return transcribe_clips(self.transcriber, clips)

    def close(self) -> None:
        self.transcriber.close()


class WorkerProcessExecutor:
    """Runs `options.num_workers` worker processes, each with its own loaded model, one per slot.

    A worker dies with the thread that started it (PR_SET_PDEATHSIG's rule): the constructor's
    thread for the first ones, the slot's runner thread for a replacement.

    Raises:
      AsrUnavailable: a worker could not load the model (ModelUnavailable when it is missing).
    """

    def __init__(self, options: TranscriberOptions, call_timeout_s: float = CALL_TIMEOUT_S):
        self.slots = options.num_workers
        self.call_timeout_s = call_timeout_s
        # each worker runs one batch at a time, so its model needs no parallel decoders
        self._worker_options = dataclasses.replace(options, num_workers=1)
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded gateway
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False
        started = time.perf_counter()
        try:
            for _ in range(self.slots):
                self._workers.append(self._start_worker())
        except BaseException:  # no half-started set of processes left behind
            self.close()
            raise
        logger.info("asr: %d worker process(es) ready in %.1f s", self.slots, time.perf_counter() - started)

    @property
    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._workers]

    def run(self, slot: int, clips: list[Clip]) -> list[Transcript | Exception]:
        return self._alive(slot).call(clips, self.call_timeout_s)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.stop()  # a runner in the middle of a batch gets AsrUnavailable from its pipe

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child_end, self._worker_options, os.getpid()),
                                        name="asr-worker", daemon=True)
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end)
        if not parent_end.poll(START_TIMEOUT_S):
            worker.stop()
            raise AsrUnavailable(f"speech worker did not start within {START_TIMEOUT_S:.0f} s")
        try:
            answer = parent_end.recv()
        except (EOFError, OSError):
            worker.stop()
            raise AsrUnavailable("speech worker exited while loading the model") from None
        if answer != _READY:
            worker.stop()
            raise answer if isinstance(answer, AsrError) else AsrUnavailable(f"speech worker failed to load: {answer}")
        return worker

    def _alive(self, slot: int) -> _Worker:
        """The slot's worker, or a fresh one in its place if it has died since its last batch."""
        with self._lock:
            if self._closed:
                raise AsrUnavailable("the speech workers are shut down")
            worker = self._workers[slot]
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


class _Worker:
    def __init__(self, process, connection: Connection):
        self.process = process
        self.connection = connection
        self.broken = False
        self._stopping = threading.Lock()  # close() and a runner's restart may both stop a worker

    def call(self, clips: list[Clip], timeout_s: float) -> list[Transcript | Exception]:
        try:
            self.connection.send(clips)
            if not self.connection.poll(timeout_s):
                self.broken = True  # hung: replaced before the next batch
                self.process.kill()
                raise AsrUnavailable(f"the speech worker gave no answer in {timeout_s:.0f} s; it is being replaced")
            return self.connection.recv()
        except (EOFError, OSError, TypeError):  # TypeError: the pipe was closed (stop()) while we waited
            self.broken = True
            raise AsrUnavailable("the speech worker died or was stopped while transcribing") from None

    def stop(self) -> None:
        """Ends the process, then closes the pipe (a runner reading it gets EOF, not a reused fd)."""
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


def _worker_main(connection: Connection, options: TranscriberOptions, parent_pid: int) -> None:
    """The worker process: tie its life to the gateway's, load the model, answer batches until the
    pipe closes."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the gateway closes us
    try:
        transcriber = create_transcriber(options)
    except Exception as err:  # reported to the gateway, which raises it
        connection.send(_picklable(err))
        return
    connection.send(_READY)
    while True:
        try:
            clips = connection.recv()
        except (EOFError, OSError):
            return
        outcomes = transcribe_clips(transcriber, clips)
        connection.send([_picklable(o) if isinstance(o, Exception) else o for o in outcomes])


def die_with_parent(parent_pid: int) -> None:
    """Has the kernel SIGKILL this process when its parent dies, busy or not (Linux only).

    A busy worker would otherwise finish its clip first, and one hung in native code would never
    notice that its pipe closed.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def transcribe_clips(transcriber: Transcriber, clips: list[Clip]) -> list[Transcript | Exception]:
    """Clips of one language as one batch; if a batch fails, its clips one by one, so one bad clip
    fails alone."""
    outcomes: list[Transcript | Exception | None] = [None] * len(clips)
    by_language: dict[str | None, list[int]] = {}
    for index, (_, language) in enumerate(clips):
        by_language.setdefault(language, []).append(index)
    for language, indexes in by_language.items():
        try:
            transcripts = transcriber.transcribe_batch([clips[index][0] for index in indexes], language)
            for index, transcript in zip(indexes, transcripts, strict=True):
                outcomes[index] = transcript
        except Exception:
            for index in indexes:
                try:
                    outcomes[index] = transcriber.transcribe(clips[index][0], language)
                except Exception as err:
                    outcomes[index] = err
    return outcomes


def _picklable(err: Exception) -> Exception:
    """Our own errors and plain ValueErrors (bad arguments) cross the pipe as they are; anything
    else, which might not unpickle in the gateway, as AsrUnavailable with its text."""
    if isinstance(err, AsrError) or type(err) is ValueError:
        return err
    return AsrUnavailable(f"{type(err).__name__}: {err}")
