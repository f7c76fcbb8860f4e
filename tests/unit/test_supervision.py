"""Process plumbing of the launcher (no Triton started): parent-death signal, process groups,
port ownership, and the supervisor's restart and give-up rules on a stand-in process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from gateway import processes
from gateway.supervisor import MAX_BACKOFF_S, TritonSupervisor, backoff_s
from gateway.triton_process import TritonProcess, TritonStartError

linux_only = pytest.mark.skipif(not processes.ON_LINUX, reason="reads /proc, uses prctl")


@linux_only
def test_child_dies_with_the_thread_that_started_it():
    started = []

    def start():
        started.append(subprocess.Popen(["sleep", "60"], preexec_fn=processes.die_with_parent_hook()))

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    assert started[0].wait(timeout=30) == -signal.SIGKILL


@linux_only
def test_end_group_kills_members_that_ignore_sigterm():
    leader = subprocess.Popen(["sh", "-c", 'trap "" TERM; sleep 60 & sleep 60 & wait'], start_new_session=True)
    deadline = time.monotonic() + 10
    while len(processes.group_members(leader.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(processes.group_members(leader.pid)) == 3
    processes.end_group(leader.pid, grace_s=0.5)
    assert leader.wait(timeout=10) == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while processes.group_members(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes.group_members(leader.pid) == []


@linux_only
def test_exited_unreaped_leaves_the_zombie_for_the_caller():
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while not processes.exited_unreaped(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert child.wait() == 0
    assert processes.exited_unreaped(child.pid)


@linux_only
def test_port_owner_is_told_apart_from_another_process():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert processes.port_taken("127.0.0.1", port)
        assert processes.foreign_listeners(os.getpid(), port) == (True, False)
        other = subprocess.Popen(["sleep", "30"])
        try:
            assert processes.foreign_listeners(other.pid, port) == (False, True)
        finally:
            other.kill()
            other.wait()
    assert not processes.port_taken("127.0.0.1", port)


def test_triton_refuses_a_taken_port_naming_it(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        triton = TritonProcess(tmp_path, grpc_port=port)
        with pytest.raises(TritonStartError, match=f"gRPC port 127.0.0.1:{port} is already in use"):
            triton.start()
    assert triton.pid is None  # nothing was started


def test_backoff_doubles_up_to_the_cap():
    assert [backoff_s(n, 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(20, 1.0) == MAX_BACKOFF_S


class StandInTriton:
    """What the supervisor uses of TritonProcess; `die()` ends it, starts fail while `broken`."""

    def __init__(self):
        self.alive = True
        self.broken = False
        self.starts = 0
        self.reaped = 0
        self.pid = 1000
        self.log_path = Path("triton.log")

    @property
    def running(self) -> bool:
        return self.alive

    def die(self) -> None:
        self.alive = False

    def reap(self, stub_grace_s: float = 0.0):
        self.reaped += 1
        return -signal.SIGKILL

    def start(self) -> None:
        self.starts += 1
        self.pid += 1
        self.alive = not self.broken

    def wait_until_ready(self, timeout_s: float) -> None:
        if not self.alive:
            raise TritonStartError("tritonserver exited during start-up")

    def stop(self, grace_s: float = 10.0) -> None:
        self.alive = False

    def log_tail(self) -> str:
        return "(log)"


def _wait(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_supervisor_restarts_a_dead_triton_and_reloads_versions():
    triton, reloads, reasons = StandInTriton(), [], []
    supervisor = TritonSupervisor(triton, max_restarts=3, initial_backoff_s=0.01, start_timeout_s=5,
                                  after_ready=lambda: reloads.append(triton.pid), on_give_up=reasons.append)
    supervisor.start()
    try:
        triton.die()
        assert _wait(lambda: supervisor.restarts == 1)
        assert triton.reaped == 1 and triton.starts == 1 and reloads == [triton.pid] and reasons == []
    finally:
        supervisor.stop()


def test_supervisor_gives_up_after_max_restarts_in_a_row():
    triton, reasons = StandInTriton(), []
    supervisor = TritonSupervisor(triton, max_restarts=2, initial_backoff_s=0.01, start_timeout_s=5,
                                  after_ready=lambda: None, on_give_up=reasons.append)
    supervisor.start()
    try:
        triton.broken = True
        triton.die()
        assert _wait(lambda: bool(reasons))
        assert triton.starts == 2
        assert "failed 2 restart(s) in a row" in reasons[0] and supervisor.gave_up == reasons[0]
    finally:
        supervisor.stop()


def test_a_triton_that_keeps_dying_after_restarts_also_counts():
    triton, reasons = StandInTriton(), []
    supervisor = TritonSupervisor(triton, max_restarts=1, initial_backoff_s=0.01, start_timeout_s=5,
                                  after_ready=lambda: None, on_give_up=reasons.append)
    supervisor.start()
    try:
        triton.die()
        assert _wait(lambda: supervisor.restarts == 1)
        triton.die()  # again, well within STABLE_S of the restart
        assert _wait(lambda: bool(reasons))
        assert triton.starts == 1
    finally:
        supervisor.stop()
