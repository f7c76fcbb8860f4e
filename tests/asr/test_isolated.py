"""IsolatedTranscriber: the real tiny.en model in a worker process at a lower CPU priority."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from pathlib import Path

import pytest

from asr import AsrUnavailable, IsolatedTranscriber, TranscriberOptions, TranscriptionPool, decode_audio
from asr.priority import autogroup_nice, autogroups_enabled


@pytest.fixture(scope="module")
def isolated():
    transcriber = IsolatedTranscriber(TranscriberOptions(), niceness=7)
    yield transcriber
    transcriber.close()


def test_worker_runs_at_the_lower_priority_and_transcribes(isolated, toxic_speech):
    (pid,) = isolated.worker_pids
    assert pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7
    audio = decode_audio(toxic_speech.path.read_bytes())
    with TranscriptionPool(isolated, workers=1, max_queued=1) as pool:
        transcript = pool.submit(audio, language="en").result(timeout=60)
    # the model's own threads, started after the priority was lowered, run at it too
    assert set(_thread_nice_values(pid)) == {os.getpriority(os.PRIO_PROCESS, 0) + 7}
    assert all(word in transcript.text.lower() for word in toxic_speech.key_words), transcript.text
    assert transcript.segments and transcript.segments[-1].end_s <= toxic_speech.duration_s + 0.05


def test_with_autogroups_the_worker_has_its_own_at_the_lower_priority(isolated):
    """Under autogroup scheduling nice values count only within a session: a worker left in the
    gateway's session would compete with Triton (in a session of its own) at full weight."""
    if not autogroups_enabled():
        pytest.skip("this kernel does not group scheduling by session")
    (pid,) = isolated.worker_pids
    assert os.getsid(pid) == pid != os.getsid(0)
    assert autogroup_nice(pid) == 7
    # the gateway's own session keeps its priority: nice 0, or the root group (None) when the
    # tests run in init's session, as in a container
    assert autogroup_nice() in (0, None)


def test_checks_run_before_the_worker_and_errors_come_back(isolated):
    import numpy as np

    with pytest.raises(ValueError, match="float32"):
        isolated.transcribe(np.zeros(16000, dtype=np.int16))
    with pytest.raises(ValueError, match="language"):
        isolated.transcribe(np.zeros(16000, dtype=np.float32), language="English please")
    silence = isolated.transcribe(np.zeros(16000, dtype=np.float32))
    assert silence.text == "" and silence.segments == []


def test_a_killed_worker_fails_its_clip_and_is_replaced(isolated, clean_speech):
    audio = decode_audio(clean_speech.path.read_bytes())
    (old_pid,) = isolated.worker_pids
    os.kill(old_pid, signal.SIGKILL)
    _wait_for_exit(old_pid)
    # The pipe of a dead worker either fails this clip (UNAVAILABLE) or the death is noticed first
    # and a new worker serves it; either way the next clip is transcribed by a fresh process.
    try:
        isolated.transcribe(audio)
    except AsrUnavailable as err:
        assert "died" in str(err)
    transcript = isolated.transcribe(audio)
    (new_pid,) = isolated.worker_pids
    assert new_pid != old_pid
    assert any(word in transcript.text.lower() for word in clean_speech.key_words), transcript.text


def test_niceness_19_means_idle_scheduling_and_a_closed_transcriber_refuses():
    import numpy as np

    transcriber = IsolatedTranscriber(TranscriberOptions(), niceness=19)
    (pid,) = transcriber.worker_pids
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    transcriber.close()
    _wait_for_exit(pid)
    with pytest.raises(AsrUnavailable, match="shut down"):
        transcriber.transcribe(np.zeros(16000, dtype=np.float32) + 0.1)


def test_bad_niceness_is_refused():
    with pytest.raises(ValueError, match="niceness"):
        IsolatedTranscriber(TranscriberOptions(), niceness=25)


def _thread_nice_values(pid: int) -> list[int]:
    """The nice value of every thread of pid (field 19 of /proc/<pid>/task/<tid>/stat)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))
    return values


ORPHAN_SCRIPT = """
import multiprocessing, os, sys, time
from asr.isolated import exit_when_orphaned

def busy(parent_pid, marker):
    exit_when_orphaned(parent_pid, poll_s=0.1)
    open(marker, "w").close()
    time.sleep(60)  # as a clip (native code, GIL released) that would outlast the gateway

if __name__ == "__main__":
    worker = multiprocessing.get_context("spawn").Process(target=busy, args=(os.getpid(), sys.argv[1]))
    worker.start()
    print(worker.pid, flush=True)
    time.sleep(60)
"""


def test_a_busy_worker_exits_soon_after_its_gateway_is_killed(tmp_path):
    """Workers have sessions of their own, so killing the gateway's process group misses them."""
    import subprocess
    import sys

    script = tmp_path / "gateway_stand_in.py"
    script.write_text(ORPHAN_SCRIPT)
    repo = Path(__file__).resolve().parents[2]
    marker = tmp_path / "busy"
    with subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}) as parent:
        worker = None
        try:
            worker_pid = int(parent.stdout.readline())
            worker = os.pidfd_open(worker_pid)  # stays this worker's, even once its pid is reused
            deadline = time.monotonic() + 30
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists(), "the worker never started its clip"
            time.sleep(0.3)  # a few of the watcher's polls: it stays while its parent lives
            assert not select.select([worker], [], [], 0)[0], "the worker exited while its parent lived"
            parent.kill()
            parent.wait()
            _wait_for_exit(worker_pid, timeout_s=5.0)
        finally:
            if parent.poll() is None:
                parent.kill()
            if worker is not None:  # never leave it sleeping after a failure
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(worker, signal.SIGKILL)
                os.close(worker)


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


def test_clips_waiting_for_a_busy_worker_are_decoded_as_one_batch(toxic_speech, clean_speech, busy_audio):
    import threading


    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    long_clip = busy_audio  # keeps the one worker busy while three more arrive
    transcriber = IsolatedTranscriber(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1), max_batch=4)
    try:
        results = {}
        first = threading.Thread(target=lambda: results.update(long=transcriber.transcribe(long_clip)))
        first.start()
        _wait_until(lambda: transcriber.batch_sizes[1] == 1)
        others = [threading.Thread(target=lambda name=name, audio=audio: results.update({name: transcriber.transcribe(audio)}))
                  for name, audio in (("toxic", toxic), ("clean", clean), ("toxic again", toxic))]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(timeout=120)
    finally:
        transcriber.close()

    assert transcriber.batch_sizes == {1: 1, 3: 1}
    for name, speech in (("toxic", toxic_speech), ("clean", clean_speech), ("toxic again", toxic_speech)):
        assert all(word in results[name].text.lower() for word in speech.key_words), (name, results[name].text)
    assert results["toxic"].text == results["toxic again"].text
    assert results["long"].text.lower().count("idiot") >= 2


def test_closing_fails_running_and_waiting_clips_instead_of_hanging(busy_audio):
    import threading


    long_clip = busy_audio
    transcriber = IsolatedTranscriber(TranscriberOptions(cpu_threads=1), max_batch=1)
    errors = []

    def call() -> None:
        try:
            transcriber.transcribe(long_clip)
        except AsrUnavailable as err:
            errors.append(str(err))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_until(lambda: transcriber.batch_sizes[1] == 1 and transcriber.queued == 2)  # one running, two waiting
    transcriber.close()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert len(errors) == 3, errors
    assert sum("shut down" in error for error in errors) == 2, errors  # the two that were waiting


def test_a_clip_whose_caller_stopped_waiting_is_never_decoded(toxic_speech, clean_speech, busy_audio):
    import threading

    from asr import AsrExpired

    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    long_clip = busy_audio  # keeps the one worker busy
    transcriber = IsolatedTranscriber(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1), max_batch=4)
    outcomes = {}
    try:
        first = threading.Thread(target=lambda: outcomes.update(long=transcriber.transcribe(long_clip)))
        first.start()
        _wait_until(lambda: transcriber.batch_sizes[1] == 1)
        with TranscriptionPool(transcriber, workers=2, max_queued=0) as pool:
            expiring = pool.submit(toxic, expires_at=time.monotonic() + 0.05)
            with pytest.raises(AsrExpired, match="deadline"):
                expiring.result(timeout=60)
            patient = pool.submit(clean).result(timeout=60)
        first.join(timeout=60)
    finally:
        transcriber.close()

    assert transcriber.expired == 1
    assert sum(size * count for size, count in transcriber.batch_sizes.items()) == 2  # the long clip and `clean`
    assert outcomes["long"].text and all(word in patient.text.lower() for word in clean_speech.key_words)


def _wait_until(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_clips_go_to_free_workers_before_they_share_a_batch(toxic_speech, clean_speech):
    import threading

    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    transcriber = IsolatedTranscriber(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1, num_workers=2),
                                      max_batch=2)
    try:
        threads = [threading.Thread(target=transcriber.transcribe, args=(audio,)) for audio in (toxic, clean)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        transcriber.close()

    assert transcriber.batch_sizes == {1: 2}
