"""Follows mounted files: `--version-file` (the version a fleet serves) and `--policy-path`.

A fleet of gateways keeps one model version by watching one file, in Kubernetes a ConfigMap
mounted into every pod: changing the ConfigMap changes the file in every pod within the
kubelet's sync period, and every gateway switches by itself through the same activation as the
admin API (load the version on every Triton replica, a smoke inference, then the switch; calls
under way finish on the old version). No coordinator of our own.

Files are polled, not watched with inotify: a ConfigMap mount updates by swapping a symlink
(`..data`), which inotify on the file's old inode never reports. Each poll re-resolves the path
and compares the target's identity (resolved path, inode, mtime, size).
A version that fails to activate is logged and tried again every RETRY_S until it works or the
file changes; a policy file that fails validation is logged and the old policy stays.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.errors import ModerationError

logger = logging.getLogger(__name__)

RETRY_S = 30.0  # a failed activation is tried again this often (a replica may come back)


def file_signature(path: str) -> tuple | None:
    """The identity of what `path` names now (symlinks followed), or None when it is missing."""
    try:
        stat = os.stat(path)
        return os.path.realpath(path), stat.st_ino, stat.st_mtime_ns, stat.st_size
    except OSError:
        return None


def read_version_file(path: str) -> str:
    """The version number the file holds (its first word).

    Raises:
      ValueError: the file is unreadable, empty, or holds no version number.
    """
    try:
        words = Path(path).read_text(encoding="utf-8").split()
    except OSError as err:
        raise ValueError(f"cannot read version file {path}: {err.strerror or err}") from None
    if not words or not words[0].isdigit():
        raise ValueError(f"version file {path} must hold a version number, got {' '.join(words)[:20]!r}")
    return words[0]


class GatewayWatcher:
    """A background thread polling the version file and the policy file.

    Args:
      version_file: The watched version file ('' for none).
      policy_path: The watched policy file ('' for none: the shipped default never changes).
      activate: Switches to a version (lifecycle.VersionManager.activate); raises ModerationError.
      active_version: The version serving now ('' when none).
      reload_policy: Re-reads and validates the policy file; logs and keeps the old one on failure.
      interval_s: How often the files are checked.
    """

    def __init__(self, version_file: str, policy_path: str, activate: Callable[[str], object],
                 active_version: Callable[[], str], reload_policy: Callable[[], None], interval_s: float = 1.0):
        self.version_file = version_file
        self.policy_path = policy_path
        self._activate = activate
        self._active_version = active_version
        self._reload_policy = reload_policy
        self.interval_s = interval_s
        self._version_seen: tuple | None = None
        self._wanted = ""  # the version file's version, once read
        self._retry_at = 0.0
        self._policy_seen = file_signature(policy_path) if policy_path else None  # loaded at start-up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-watch", daemon=True)

    @property
    def active(self) -> bool:
        return bool(self.version_file or self.policy_path)

    def start(self) -> None:
        if self.active:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:  # the watcher must outlive any one bad check
                logger.exception("file watch check failed")
            self._stop.wait(self.interval_s)

    def check_once(self) -> None:
        if self.version_file:
            self._check_version()
        if self.policy_path:
            self._check_policy()

    def _check_version(self) -> None:
        signature = file_signature(self.version_file)
        changed = signature != self._version_seen
        if changed:
            self._version_seen = signature
            if signature is None:
                logger.error("version file %s is missing; serving version %s stays", self.version_file,
                             self._active_version() or "-")
                return
            try:
                self._wanted = read_version_file(self.version_file)
            except ValueError as err:
                logger.error("%s; serving version %s stays", err, self._active_version() or "-")
                return
        if not self._wanted or self._wanted == self._active_version():
            return
        if not changed and time.monotonic() < self._retry_at:
            return
        logger.info("version file %s names version %s: activating", self.version_file, self._wanted)
        try:
            self._activate(self._wanted)
        except ModerationError as err:
            self._retry_at = time.monotonic() + RETRY_S
            logger.error("version %s from %s not activated (retry in %.0f s): %s", self._wanted,
                         self.version_file, RETRY_S, err)

    def _check_policy(self) -> None:
        signature = file_signature(self.policy_path)
        if signature == self._policy_seen or signature is None:  # a missing file: keep the policy in force
            return
        self._policy_seen = signature
        logger.info("policy file %s changed: reloading", self.policy_path)
        self._reload_policy()
