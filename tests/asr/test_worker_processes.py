"""WorkerProcessExecutor behind the speech queue: the real tiny.en model in worker processes."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from asr import AsrUnavailable, SpeechQueue, TranscriberOptions, WorkerProcessExecutor, decode_audio

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def workers():
    queue = SpeechQueue(WorkerProcessExecutor(TranscriberOptions()), max_waiting=2, max_batch=1)
    yield queue
    queue.close()


def test_a_worker_is_a_process_of_its_own_and_transcribes(workers, toxic_speech):
    (pid,) = workers.executor.worker_pids
    assert pid != os.getpid()
    transcript = workers.transcribe(decode_audio(toxic_speech.path.read_bytes()), language="en")
    assert all(word in transcript.text.lower() for word in toxic_speech.key_words), transcript.text
    assert transcript.segments and transcript.segments[-1].end_s <= toxic_speech.duration_s + 0.05


def test_checks_run_before_the_worker_and_errors_come_back(workers):
    with pytest.raises(ValueError, match="float32"):
        workers.transcribe(np.zeros(16000, dtype=np.int16))
    with pytest.raises(ValueError, match="language"):
        workers.transcribe(np.zeros(16000, dtype=np.float32), language="English please")
    silence = workers.transcribe(np.zeros(16000, dtype=np.float32))
    assert silence.text == "" and silence.segments == []


def test_a_killed_worker_fails_its_clip_and_is_replaced(workers, clean_speech):
    audio = decode_audio(clean_speech.path.read_bytes())
    (old_pid,) = workers.executor.worker_pids
    os.kill(old_pid, signal.SIGKILL)
    _wait_for_exit(old_pid)
    # The pipe of a dead worker either fails this clip (UNAVAILABLE) or the death is noticed first
    # and a new worker serves it; either way the next clip is transcribed by a fresh process.
    try:
        workers.transcribe(audio)
    except AsrUnavailable as err:
        assert "died" in str(err)
    transcript = workers.transcribe(audio)
    (new_pid,) = workers.executor.worker_pids
    assert new_pid != old_pid
    assert any(word in transcript.text.lower() for word in clean_speech.key_words), transcript.text


def test_a_closed_queue_stops_its_workers_and_refuses():
    queue = SpeechQueue(WorkerProcessExecutor(TranscriberOptions()), max_waiting=0)
    (pid,) = queue.executor.worker_pids
    queue.close()
    _wait_for_exit(pid)
    with pytest.raises(AsrUnavailable, match="shut down"):
        queue.transcribe(np.zeros(16000, dtype=np.float32) + 0.1)


def test_a_missing_model_fails_at_start_with_the_reason(tmp_path):
    from asr import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="does not exist"):
        WorkerProcessExecutor(TranscriberOptions(model=str(tmp_path / "missing") + os.sep))


GATEWAY_STAND_IN = """
import time
from asr import TranscriberOptions, WorkerProcessExecutor

if __name__ == "__main__":
    executor = WorkerProcessExecutor(TranscriberOptions(cpu_threads=1))
    print(executor.worker_pids[0], flush=True)
    time.sleep(120)
"""


def test_a_worker_dies_with_its_gateway_even_when_it_cannot_notice(tmp_path):
    """A stopped worker stands in for one busy in native code: it never reads the closed pipe, so
    only the kernel (PR_SET_PDEATHSIG) can end it when the gateway is killed."""
    script = tmp_path / "gateway_stand_in.py"
    script.write_text(GATEWAY_STAND_IN)
    repo = Path(__file__).resolve().parents[2]
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}) as gateway:
        worker = None
        try:
            worker_pid = int(gateway.stdout.readline())
            worker = os.pidfd_open(worker_pid)  # stays this worker's, even once its pid is reused
            os.kill(worker_pid, signal.SIGSTOP)
            time.sleep(0.3)
            assert not select.select([worker], [], [], 0)[0], "the worker exited while its gateway lived"
            gateway.kill()
            gateway.wait()
            assert select.select([worker], [], [], 5.0)[0], "the worker outlived its gateway"
        finally:
            if gateway.poll() is None:
                gateway.kill()
            if worker is not None:  # never leave it stopped after a failure
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(worker, signal.SIGKILL)
                os.close(worker)


def test_clips_waiting_for_a_busy_worker_are_decoded_as_one_batch(toxic_speech, clean_speech, busy_audio):
    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    queue = SpeechQueue(WorkerProcessExecutor(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1)),
                        max_waiting=4, max_batch=4)
    try:
        results = {}
        first = threading.Thread(target=lambda: results.update(long=queue.transcribe(busy_audio)))
        first.start()  # keeps the one worker busy while three more arrive
        _wait_until(lambda: queue.batch_sizes[1] == 1)
        others = [threading.Thread(target=lambda name=name, audio=audio: results.update({name: queue.transcribe(audio)}))
                  for name, audio in (("toxic", toxic), ("clean", clean), ("toxic again", toxic))]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(timeout=120)
    finally:
        queue.close()

    assert queue.batch_sizes == {1: 1, 3: 1}
    for name, speech in (("toxic", toxic_speech), ("clean", clean_speech), ("toxic again", toxic_speech)):
        assert all(word in results[name].text.lower() for word in speech.key_words), (name, results[name].text)
    assert results["toxic"].text == results["toxic again"].text
    assert results["long"].text.lower().count("idiot") >= 2


def test_closing_fails_running_and_waiting_clips_instead_of_hanging(busy_audio):
    queue = SpeechQueue(WorkerProcessExecutor(TranscriberOptions(cpu_threads=1)), max_waiting=2, max_batch=1)
    errors = []

    def call() -> None:
        try:
            queue.transcribe(busy_audio)
        except AsrUnavailable as err:
            errors.append(str(err))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: queue.batch_sizes[1] == 1 and queue.waiting == 2)  # one running, two waiting
    queue.close()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert len(errors) == 3, errors
    assert sum("shut down" in error for error in errors) == 2, errors  # the two that were waiting


def test_a_clip_whose_caller_stopped_waiting_is_never_decoded(toxic_speech, clean_speech, busy_audio):
    from asr import AsrExpired

    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    queue = SpeechQueue(WorkerProcessExecutor(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1)),
                        max_waiting=4, max_batch=4)
    outcomes = {}
    try:
        first = threading.Thread(target=lambda: outcomes.update(long=queue.transcribe(busy_audio)))
        first.start()  # keeps the one worker busy
        _wait_until(lambda: queue.batch_sizes[1] == 1)
        with pytest.raises(AsrExpired, match="deadline"):
            queue.transcribe(toxic, expires_at=time.monotonic() + 0.05)
        patient = queue.transcribe(clean)
        first.join(timeout=60)
    finally:
        queue.close()

    assert queue.expired == 1
    assert sum(size * count for size, count in queue.batch_sizes.items()) == 2  # the long clip and `clean`
    assert outcomes["long"].text and all(word in patient.text.lower() for word in clean_speech.key_words)


def test_clips_go_to_free_workers_before_they_share_a_batch(toxic_speech, clean_speech):
    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    executor = WorkerProcessExecutor(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1, num_workers=2))
    queue = SpeechQueue(executor, max_waiting=2, max_batch=2)
    try:
        threads = [threading.Thread(target=queue.transcribe, args=(audio,)) for audio in (toxic, clean)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        queue.close()

    assert queue.batch_sizes == {1: 2}


def _wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def _wait_for_exit(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as stat:  # a zombie (not yet reaped) counts as gone
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return
        except (ProcessLookupError, FileNotFoundError):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout_s} s")
