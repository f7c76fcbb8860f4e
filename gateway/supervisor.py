"""Keeps `moderation-serve`'s Triton alive: a dead tritonserver is reaped (its stubs ended, no
zombie) and started again after a growing pause; once it is ready, the versions the gateway
served are loaded again (a fresh Triton loads only the newest). Restarts that keep failing end
the launcher with a non-zero exit, so whatever supervises it (systemd, Kubernetes) takes over.

While Triton is down, model calls fail at once with UNAVAILABLE and the readiness monitor reports
NOT_SERVING; it reports SERVING again by itself once the version is back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from gateway.errors import ModerationError
from gateway.triton_process import TritonProcess

logger = logging.getLogger(__name__)

STABLE_S = 60.0  # a Triton up this long after a restart ends a run of failures
POLL_S = 0.5  # how often the process is checked
MAX_BACKOFF_S = 30.0
AFTER_READY_RETRY_S = 0.5  # the gateway's channel may still be in its reconnect backoff (<= 2 s)
CRASH_STUB_GRACE_S = 1.0  # stubs of a crashed Triton have nothing to finish; the outage lasts until they go


def backoff_s(failures: int, initial_s: float) -> float:
    """Pause before restart number `failures` + 1 of a run: initial_s, doubling, capped."""
    return min(MAX_BACKOFF_S, initial_s * 2 ** failures)


class TritonSupervisor:
    """Watches one TritonProcess from a thread that lives as long as the launcher (Triton dies
    with the thread that started it, PR_SET_PDEATHSIG's rule).

    Args:
      triton: the running process to watch.
      max_restarts: restarts in a row (Triton up less than STABLE_S in between) before giving up.
      initial_backoff_s: pause before the first restart of a run.
      start_timeout_s: how long a restarted Triton may take to become ready.
      after_ready: called once a restarted Triton is ready (reloads the served versions).
      restart_lock: held from a restart's start until after_ready returns, so the gateway does not
        pick another version from a half-restored Triton.
      on_give_up: called with the reason when restarts are exhausted.
    """

    def __init__(self, triton: TritonProcess, *, max_restarts: int, initial_backoff_s: float, start_timeout_s: float,
                 after_ready: Callable[[], None], on_give_up: Callable[[str], None], restart_lock=None):
        self.triton = triton
        self.max_restarts = max_restarts
        self.initial_backoff_s = initial_backoff_s
        self.start_timeout_s = start_timeout_s
        self.after_ready = after_ready
        self.on_give_up = on_give_up
        self.restart_lock = restart_lock if restart_lock is not None else contextlib.nullcontext()
        self.restarts = 0  # successful restarts since start, for logs and tests
        self.gave_up: str = ""
        self._failures = 0
        self._up_since = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triton-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float = 10.0) -> None:
        """Stops watching, then stops Triton (before the thread ends: the kernel would kill a
        Triton this thread started at once, without a drain)."""
        self._stop.set()
        self.triton.stop(grace_s)  # a restart under way then fails at once
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        self.triton.stop(grace_s)  # one the thread started while we stopped the first

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            if self.triton.running:
                if self._failures and time.monotonic() - self._up_since >= STABLE_S:
                    self._failures = 0
                continue
            pid = self.triton.pid
            status = self.triton.reap(stub_grace_s=CRASH_STUB_GRACE_S)
            if self._stop.is_set():
                return
            logger.error("tritonserver (pid %s) exited with %s; model calls fail with UNAVAILABLE until it is back",
                         pid, _describe(status))
            if not self._restart_until_up():
                return

    def _restart_until_up(self) -> bool:
        while not self._stop.is_set():
            if self._failures >= self.max_restarts:
                self.gave_up = (f"tritonserver failed {self._failures} restart(s) in a row "
                                f"(--triton-max-restarts {self.max_restarts}); giving up. Log: {self.triton.log_path}\n"
                                f"{self.triton.log_tail()}")
                logger.critical("%s", self.gave_up)
                self.on_give_up(self.gave_up)
                return False
            pause = backoff_s(self._failures, self.initial_backoff_s)
            self._failures += 1
            logger.info("restarting tritonserver in %.1f s (attempt %d of %d)", pause, self._failures, self.max_restarts)
            if self._stop.wait(pause):
                return False
            if self._try_restart():
                return True
        return False

    def _after_ready_with_retries(self) -> None:
        """Reloads the served versions; retried while the gateway's own connection to the new
        Triton is still reconnecting, for at most start_timeout_s."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                self.after_ready()
                return
            except ModerationError:  # e.g. UNAVAILABLE while the channel reconnects
                if time.monotonic() >= deadline or self._stop.wait(AFTER_READY_RETRY_S):
                    logger.exception("reloading the served versions after a restart failed")
                    return
            except Exception:  # Triton is up; the readiness monitor reports what serves
                logger.exception("reloading the served versions after a restart failed")
                return

    def _try_restart(self) -> bool:
        with self.restart_lock:
            if self._stop.is_set():
                return False
            try:
                self.triton.start()
                self.triton.wait_until_ready(self.start_timeout_s)
            except Exception as err:  # any failure to come back counts against max_restarts
                logger.error("tritonserver restart failed: %s", str(err).splitlines()[0] if str(err) else err)
                self.triton.stop(grace_s=2.0)
                return False
            self._up_since = time.monotonic()
            self.restarts += 1
            self._after_ready_with_retries()
        logger.info("tritonserver is back (pid %s)", self.triton.pid)
        return True


def _describe(status: int | None) -> str:
    if status is None:
        return "an unknown status"
    if status < 0:
        import signal

        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:
            return f"signal {-status}"
    return f"exit code {status}"
