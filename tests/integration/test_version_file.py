"""Two gateways watching one version file (as a fleet watches one ConfigMap) switch to the
version it names, with no failed call from callers on both; the watched policy file
is reloaded the same way, and a bad one leaves the policy in force."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest

from contract.pb import moderation_pb2
from export.repository import publish_directory
from gateway.policy import DEFAULT_POLICY_PATH
from loadtest.model_variants import copy_repository
from tests.integration.conftest import MODEL_REPOSITORY, _has_version, start_gateway, start_triton

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

# The fleet's target is 60 s (the file change to the last gateway switched), logged below; the test
# waits longer, because loading a version on this shared 2-core machine has taken over a minute.
ROLLOUT_TIMEOUT_S = 300
TEXTS = ["good game everyone, well played", "you are a stupid idiot, shut up you worthless loser"]


def write_atomically(path: Path, text: str) -> None:
    """As kubelet updates a mounted ConfigMap: the reader sees the old file or the new one, never half."""
    staging = path.with_name(path.name + ".new")
    staging.write_text(text)
    os.replace(staging, path)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    root = tmp_path_factory.mktemp("fleet")
    model_dir = copy_repository(MODEL_REPOSITORY, root / "repo")  # the shipped model as version 1
    version_file, policy_file = root / "version", root / "policy.toml"
    version_file.write_text("1\n")
    shutil.copyfile(DEFAULT_POLICY_PATH, policy_file)
    triton = start_triton(root, root / "repo")
    gateways = []
    try:
        for _ in range(2):  # sharing one Triton: loading a version there serves both
            gateways.append(start_gateway(triton, version_file=str(version_file), policy_path=str(policy_file),
                                          watch_interval_s=0.5, triton_timeout_s=20.0))
        yield {"model_dir": model_dir, "version_file": version_file, "policy_file": policy_file, "gateways": gateways}
    finally:
        for running in gateways:
            running.close()
        triton.stop()


class Callers:
    """Threads calling ClassifyText on every gateway; records each caller's served versions and errors."""

    def __init__(self, gateways, per_gateway: int = 2):
        self.stop = threading.Event()
        self.versions: list[list[str]] = []
        self.errors: list[str] = []
        self.threads = []
        for running in gateways:
            for _ in range(per_gateway):
                seen: list[str] = []
                self.versions.append(seen)
                self.threads.append(threading.Thread(target=self._run, args=(running.stub, seen)))

    def _run(self, stub, seen: list[str]) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXTS[i % 2]), timeout=60)
                seen.append(verdict.model_version)
            except grpc.RpcError as err:
                self.errors.append(f"{err.code().name}: {err.details()}")
            i += 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()


def serving_version(running) -> str:
    return running.stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=30).model_version


def wait_until(condition, timeout_s: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            return -1.0
        time.sleep(0.2)
    return time.monotonic() - started


def test_every_gateway_follows_the_version_file_without_failing_a_call(fleet):
    gateways = fleet["gateways"]
    assert [serving_version(g) for g in gateways] == ["1", "1"]
    version = publish_directory(fleet["model_dir"] / "1", fleet["model_dir"]).name  # an operator publishes
    assert version == "2"
    with Callers(gateways) as callers:
        time.sleep(1.0)
        write_atomically(fleet["version_file"], f"{version}\n")
        took_s = wait_until(lambda: all(serving_version(g) == version for g in gateways), ROLLOUT_TIMEOUT_S)
        counts = [len(seen) for seen in callers.versions]  # every caller completes two calls after the switch
        wait_until(lambda: all(len(seen) >= c + 2 for seen, c in zip(callers.versions, counts)), 60)
    assert took_s >= 0, f"not every gateway served version {version} within {ROLLOUT_TIMEOUT_S} s"
    logger.info("every gateway served version %s %.1f s after the version file changed", version, took_s)
    assert callers.errors == []
    for seen in callers.versions:  # each caller: the old version, then the new one, never back
        assert seen and seen[-1] == version
        assert [v for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v] in (["1", version], [version])


def test_the_watched_policy_file_is_reloaded_and_a_bad_one_is_refused(fleet, caplog):
    gateways, policy_file = fleet["gateways"], fleet["policy_file"]
    default = policy_file.read_text()

    def toxic_everywhere() -> list[bool]:
        return [g.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXTS[1]), timeout=30).toxic for g in gateways]

    assert toxic_everywhere() == [True, True]
    write_atomically(policy_file, "default_threshold = 1.0\ntoxic_threshold = 1.0\n")  # nothing reaches 1.0
    assert wait_until(lambda: toxic_everywhere() == [False, False], 30) >= 0
    write_atomically(policy_file, "[thresholds]\nno_such_category = 0.5\n")
    assert wait_until(lambda: caplog.text.count("no_such_category") >= 2, 30) >= 0  # each gateway logged it
    assert toxic_everywhere() == [False, False]  # the strict policy stays in force
    write_atomically(policy_file, default)
    assert wait_until(lambda: toxic_everywhere() == [True, True], 30) >= 0
