"""`moderation-serve` under process faults, with the real tritonserver: Triton killed under load
comes back (no zombie, no orphaned stub), the launcher killed takes Triton and its stubs with it,
a pinned version is loaded or start-up fails with the reason, and a Triton that cannot come back
ends the launcher non-zero.

Each test runs the launcher as its own process (`python -m gateway.serve`) and counts processes
by walking /proc, so it only looks at processes this test started (other stacks may run here).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway import processes
from gateway.triton_process import free_port
from tests.integration.conftest import MODEL_REPOSITORY, REPO_DIR, _has_version

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not processes.ON_LINUX, reason="reads /proc"),
]

START_TIMEOUT_S = 300.0  # Triton and the model load on a shared 2-core box
GATEWAY_LAG_S = 10.0  # from the restarted Triton's readiness to the first successful call
RECOVERY_S = 30.0  # from kill -9 to the first successful call (issue 15); 9 to 11 s seen, 8 busy loops beside
GONE_TIMEOUT_S = 15.0  # for killed processes to leave /proc
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def _wait_gone(pids, timeout_s: float = GONE_TIMEOUT_S) -> list[int]:
    """Pids still in /proc (zombies included) after timeout_s."""
    deadline = time.monotonic() + timeout_s
    left = list(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [pid for pid in left if _state(pid)]
    return left


class Launcher:
    """One `python -m gateway.serve` on free loopback ports, its output in a file."""

    def __init__(self, tmp: Path, repository: Path = MODEL_REPOSITORY, *extra: str):
        self.ports = {name: free_port() for name in ("grpc", "http", "metrics", "gateway")}
        self.log = tmp / "serve.log"
        env = dict(os.environ, PYTHONPATH=str(REPO_DIR), MODERATION_METRICS_LISTEN_ADDRESS="")
        args = [sys.executable, "-m", "gateway.serve", "--model-repository", str(repository),
                "--triton-grpc-port", str(self.ports["grpc"]), "--triton-http-port", str(self.ports["http"]),
                "--triton-metrics-port", str(self.ports["metrics"]), "--triton-log", str(tmp / "triton.log"),
                "--listen-address", f"127.0.0.1:{self.ports['gateway']}", "--admin-listen-address", "",
                "--health-poll-s", "0.5", "--triton-restart-backoff-s", "0.5", *extra]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_DIR)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.ports['gateway']}")
        self.stub = moderation_pb2_grpc.ModerationStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if " ready: gateway on " in self.output():
                return
            assert self.process.poll() is None, f"launcher exited {self.process.returncode}:\n{self.output()[-3000:]}"
            time.sleep(0.5)
        raise AssertionError(f"launcher not ready in {START_TIMEOUT_S:.0f} s:\n{self.output()[-3000:]}")

    def wait_exit(self, timeout_s: float = START_TIMEOUT_S) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher still running after {timeout_s:.0f} s:\n{self.output()[-3000:]}") from None

    def triton(self) -> int:
        found = [pid for pid in processes.children(self.process.pid) if _comm(pid) == "tritonserver"]
        assert len(found) == 1, f"expected one tritonserver child, found {found}"
        return found[0]

    def health_status(self):
        try:
            return self.health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        except grpc.RpcError as err:
            return err.code()

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        kids = processes.children(queue.pop())
        found += kids
        queue += kids
    return found


def _stubs(triton_pid: int) -> list[int]:
    return [pid for pid in processes.children(triton_pid) if _comm(pid).startswith("triton_python")]


def _our_orphans(pgid: int) -> list[int]:
    """Processes of Triton's group that init has adopted (orphaned stubs)."""
    return [pid for pid in processes.group_members(pgid, exclude_zombies=False) if _state(pid) and
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == "1"]


def _logged_at(output: str, text: str, last: bool = False) -> float:
    """Epoch seconds of the first (or last) log line holding `text` (asctime is local time)."""
    lines = [line for line in output.splitlines() if text in line]
    line = lines[-1] if last else lines[0]
    stamp, millis = line[:23].split(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


def _require_stack():
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    _require_stack()
    # one Whisper worker process too: it must die with the launcher like Triton
    running = Launcher(tmp_path_factory.mktemp("supervise"), MODEL_REPOSITORY, "--voice-enabled", "true",
                       "--asr-workers", "1")
    try:
        running.wait_ready()
    except BaseException:
        running.close()
        raise
    yield running
    running.close()


class Callers:
    """A few threads calling ClassifyText in a loop; records (start time, code, seconds)."""

    def __init__(self, stub, threads: int = 3):
        self.stub = stub
        self.calls: list[tuple[float, str, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="good game, well played"), timeout=10)
                code = "OK"
            except grpc.RpcError as err:
                code = err.code().name
            self.calls.append((started, code, time.monotonic() - started))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_ready_is_logged_only_once_serving(launcher):
    assert launcher.health_status() == SERVING
    out = launcher.output()
    assert out.index("health: SERVING") < out.index(" ready: gateway on ")


def test_triton_killed_under_load_comes_back_without_zombie_or_orphan(launcher):
    old_triton = launcher.triton()
    old_stubs = _stubs(old_triton)
    assert old_stubs, "the python backend runs its model in stub processes"
    callers = Callers(launcher.stub)
    readies_before = launcher.output().count("tritonserver ready at")
    try:
        time.sleep(2)
        killed_at, killed_wall = time.monotonic(), time.time()
        os.kill(old_triton, signal.SIGKILL)
        health_seen = set()
        recovered_at = None
        while time.monotonic() - killed_at < START_TIMEOUT_S:
            health_seen.add(launcher.health_status())
            ok_after = [t for t, code, _ in callers.calls if t > killed_at + 0.5 and code == "OK"]
            if ok_after and launcher.health_status() == SERVING and NOT_SERVING in health_seen:
                recovered_at = min(ok_after)
                break
            time.sleep(0.2)
        time.sleep(1)
    finally:
        callers.stop()
    assert recovered_at is not None, f"no successful call after the kill:\n{launcher.output()[-3000:]}"
    after = [(code, seconds) for t, code, seconds in callers.calls if t > killed_at]
    codes = Counter(code for code, _ in after)
    assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
    assert codes["UNAVAILABLE"] > 0, "calls during the outage should have failed"
    assert all(seconds < 5.0 for code, seconds in after if code == "UNAVAILABLE"), "outage calls must fail fast"
    # the supervisor logs the restart once its own probe and listener check pass, which can come
    # after the gateway's first OK call on a busy box: wait for that line, not an older one
    deadline = time.monotonic() + START_TIMEOUT_S
    while launcher.output().count("tritonserver ready at") <= readies_before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert launcher.output().count("tritonserver ready at") > readies_before, "the restart was never logged ready"
    back = _logged_at(launcher.output(), "tritonserver ready at", last=True) - killed_wall
    recovered = recovered_at - killed_at
    print(f"recovery: Triton ready again {back:.1f} s and first OK call {recovered:.1f} s after kill -9; "
          f"{codes['UNAVAILABLE']} UNAVAILABLE, max {max(s for c, s in after if c == 'UNAVAILABLE'):.3f} s each")
    assert recovered < RECOVERY_S, f"first OK call {recovered:.1f} s after kill -9"
    # Triton's own restart (model load) sets most of the pace; the gateway's share, finding the
    # restarted Triton, must stay short
    assert recovered - back < GATEWAY_LAG_S, f"first OK call {recovered - back:.1f} s after Triton was ready again"
    assert NOT_SERVING in health_seen

    # no zombie: the dead Triton is reaped, and the launcher's only child is the new Triton
    assert _wait_gone([old_triton]) == [], f"old tritonserver {old_triton} left as {_state(old_triton)!r}"
    zombies = [pid for pid in processes.children(launcher.process.pid) if _state(pid) == "Z"]
    assert zombies == []
    new_triton = launcher.triton()
    assert new_triton != old_triton
    # no orphan: the old stubs are gone, none was adopted by init
    assert _wait_gone(old_stubs) == [], f"stubs of the killed Triton still alive: {old_stubs}"
    assert _our_orphans(old_triton) == []
    assert "tritonserver is back" in launcher.output()


def test_second_launcher_on_the_same_ports_exits_naming_the_port(launcher, tmp_path):
    grpc_port = launcher.ports["grpc"]  # the last --triton-grpc-port wins: the first stack's
    clash = Launcher(tmp_path, MODEL_REPOSITORY, "--voice-enabled", "false", "--triton-grpc-port", str(grpc_port))
    try:
        code = clash.wait_exit()
    finally:
        clash.close()
    assert code != 0
    assert f"port 127.0.0.1:{grpc_port} is already in use" in clash.output()
    assert launcher.health_status() == SERVING
    assert launcher.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=30).scores


def test_sigkill_of_launcher_takes_triton_stubs_and_workers_with_it(launcher):
    triton = launcher.triton()
    group = processes.group_members(triton)
    assert triton in group and len(group) >= 2  # Triton and its stubs share its process group
    family = set(_descendants(launcher.process.pid)) | set(group)
    assert any(_comm(pid).startswith("python") for pid in family), "expected a Whisper worker process"
    launcher.process.kill()
    launcher.process.wait()
    left = _wait_gone(family)
    assert left == [], f"left alive after SIGKILL of the launcher: {[(p, _comm(p), _state(p)) for p in left]}"
    assert not processes.port_taken("127.0.0.1", launcher.ports["grpc"])


def test_pinned_version_that_does_not_exist_fails_start_up(tmp_path):
    _require_stack()
    launcher = Launcher(tmp_path, MODEL_REPOSITORY, "--model-version", "99")
    try:
        code = launcher.wait_exit()
    finally:
        launcher.close()
    out = launcher.output()
    assert code != 0
    assert "--model-version 99: no such version" in out
    assert " ready: gateway on " not in out
    assert not processes.port_taken("127.0.0.1", launcher.ports["grpc"])  # its Triton was stopped


def test_pinned_older_version_is_loaded_reloaded_after_a_crash_and_restarts_give_up(tmp_path):
    _require_stack()
    from loadtest.model_variants import copy_repository

    repository = tmp_path / "repo"
    model_dir = copy_repository(MODEL_REPOSITORY, repository)  # version 1
    shutil.copytree(model_dir / "1", model_dir / "2")  # Triton's own start loads only the newest
    launcher = Launcher(tmp_path, repository, "--model-version", "1", "--triton-max-restarts", "2")
    try:
        launcher.wait_ready()
        verdict = launcher.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=30)
        assert verdict.model_version == "1"

        # a restarted Triton loads the newest version; the launcher loads the pinned one again
        first = launcher.triton()
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "reloaded version(s) 1" not in launcher.output() and time.monotonic() < deadline:
            time.sleep(0.5)
        verdict = None
        while verdict is None and time.monotonic() < deadline:
            try:
                verdict = launcher.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=10)
            except grpc.RpcError:
                time.sleep(0.5)
        assert verdict is not None and verdict.model_version == "1", launcher.output()[-3000:]

        # a Triton that cannot come back (its config broke) ends the launcher non-zero
        (model_dir / "config.pbtxt").write_text("this is not a model config {\n")
        second = launcher.triton()
        group = processes.group_members(second)
        os.kill(second, signal.SIGKILL)
        code = launcher.wait_exit()
    finally:
        launcher.close()
    out = launcher.output()
    assert code != 0
    assert "failed 2 restart(s) in a row" in out and "giving up" in out
    assert _wait_gone(group) == []
    assert not processes.port_taken("127.0.0.1", launcher.ports["grpc"])
