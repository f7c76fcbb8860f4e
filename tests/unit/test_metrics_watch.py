"""gateway.watch: the version file and the policy file, including a ConfigMap-style symlink swap."""

from __future__ import annotations

import os
import time

import pytest

from gateway import watch
from gateway.errors import FailedPrecondition
from gateway.watch import GatewayWatcher, read_version_file


class Fleet:
    """What the watcher drives: activation (may fail) and policy reloads, recorded."""

    def __init__(self, active: str = "3"):
        self.active = active
        self.activations: list[str] = []
        self.reloads = 0
        self.fail = False

    def activate(self, version: str):
        self.activations.append(version)
        if self.fail:
            raise FailedPrecondition(f"version {version} failed to load")
        self.active = version

    def reload_policy(self):
        self.reloads += 1


def watcher_for(fleet: Fleet, version_file="", policy_path="") -> GatewayWatcher:
    return GatewayWatcher(str(version_file) if version_file else "", str(policy_path) if policy_path else "",
                          fleet.activate, lambda: fleet.active, fleet.reload_policy, interval_s=0.05)


def bump_mtime(path, step_ns: int = 10**9) -> None:  # same-second rewrites must still count as changes
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + step_ns))


def test_the_file_version_is_activated_when_it_differs(tmp_path):
    fleet, path = Fleet("3"), tmp_path / "version"
    path.write_text("3\n")
    watcher = watcher_for(fleet, path)
    watcher.check_once()
    assert fleet.activations == []  # already serving it
    path.write_text("4\n")
    bump_mtime(path)
    watcher.check_once()
    watcher.check_once()
    assert fleet.activations == ["4"] and fleet.active == "4"


def test_a_configmap_symlink_swap_is_seen(tmp_path):
    """kubelet writes a new timestamped directory and swaps the `..data` link: the file's own path never changes."""
    fleet = Fleet("3")
    for name, version in (("..2026_1", "3"), ("..2026_2", "4")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "version").write_text(version)
    os.symlink("..2026_1", tmp_path / "..data")
    os.symlink("..data/version", tmp_path / "version")
    watcher = watcher_for(fleet, tmp_path / "version")
    watcher.check_once()
    os.symlink("..2026_2", tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    watcher.check_once()
    assert fleet.activations == ["4"]


@pytest.mark.parametrize("content", ["", "four", "v4"])
def test_a_bad_version_file_changes_nothing(tmp_path, content, caplog):
    fleet, path = Fleet("3"), tmp_path / "version"
    path.write_text(content)
    watcher_for(fleet, path).check_once()
    assert fleet.activations == []
    assert "must hold a version number" in caplog.text and "serving version 3 stays" in caplog.text
    with pytest.raises(ValueError):
        read_version_file(str(path))


def test_a_failed_activation_is_retried_later_not_at_every_poll(tmp_path, monkeypatch):
    fleet, path = Fleet("3"), tmp_path / "version"
    path.write_text("4")
    fleet.fail = True
    watcher = watcher_for(fleet, path)
    watcher.check_once()
    watcher.check_once()
    assert fleet.activations == ["4"]
    monkeypatch.setattr(watch, "RETRY_S", 0.0)
    fleet.fail = False
    watcher._retry_at = 0.0  # the retry time has come
    watcher.check_once()
    assert fleet.activations == ["4", "4"] and fleet.active == "4"


def test_a_missing_version_file_keeps_the_version(tmp_path):
    fleet = Fleet("3")
    watcher_for(fleet, tmp_path / "nothing-here").check_once()
    assert fleet.activations == []


def test_the_policy_is_reloaded_when_its_file_changes_only(tmp_path):
    fleet, policy = Fleet("3"), tmp_path / "policy.toml"
    policy.write_text("default_threshold = 0.5\n")
    watcher = watcher_for(fleet, policy_path=policy)
    watcher.check_once()
    assert fleet.reloads == 0  # loaded at start-up already
    policy.write_text("default_threshold = 0.6\n")
    bump_mtime(policy)
    watcher.check_once()
    watcher.check_once()
    assert fleet.reloads == 1
    policy.unlink()
    watcher.check_once()  # a missing file: the policy in force stays
    assert fleet.reloads == 1


def test_the_thread_follows_the_file(tmp_path):
    fleet, path = Fleet("3"), tmp_path / "version"
    path.write_text("5")
    watcher = watcher_for(fleet, path)
    watcher.start()
    try:
        deadline = time.monotonic() + 30
        while fleet.active != "5" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.stop()
    assert fleet.active == "5"
