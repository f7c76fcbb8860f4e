"""Switching model versions in a running system without failing a request.

Activation: load the version in Triton next to the active one (the active one keeps serving),
check it answers with as many scores as it has labels and judges the known toxic and clean
texts as expected (gateway/smoke.py), then move traffic by swapping the
gateway's ServingModel (model, tokenizer, labels together). Requests already under way finish
on the version they started with. The previous version stays loaded, so a rollback is only a
traffic switch; any older version is unloaded by the next activation.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.classifier import Classifier
from gateway.errors import FailedPrecondition, ModerationError, NotFound
from gateway.model_version import VersionFilesError, load_serving_model, numbered_versions
from gateway.service import ModelHolder
from gateway.settings import Settings
from gateway.smoke import load_smoke_texts, wrong_verdicts

logger = logging.getLogger(__name__)

SMOKE_TEXT = "good game"  # a harmless text every version must be able to score
SMOKE_TIMEOUT_S = 30.0  # the first call of a fresh version may be slow


@dataclass(frozen=True)
class Activation:
    active_version: str
    previous_version: str
    categories: tuple[str, ...]
    load_ms: float
    switch_ms: float


@dataclass(frozen=True)
class VersionInfo:
    version: str
    state: str
    reason: str
    active: bool
    categories: tuple[str, ...]


class VersionManager:
    def __init__(self, settings: Settings, classifier: Classifier, models: ModelHolder, policy=None):
        """policy: returns the policy in force, which judges the smoke texts (None: the shipped one).
        Raises ValueError for an unusable smoke texts file."""
        self.settings = settings
        self.classifier = classifier
        self.models = models
        self.policy = policy or (lambda: _shipped_policy())
        self.smoke_texts = load_smoke_texts(settings.smoke_texts_path)
        self.previous_version = ""
        # One activation at a time; the readiness monitor also takes it, so it never swaps in a
        # version while an activation is half done.
        self.lock = threading.RLock()

    @property
    def model_dir(self) -> Path:
        return Path(self.settings.model_repository) / self.settings.model_name

    def versions_on_disk(self) -> list[str]:
        return numbered_versions(self.model_dir)

    def list_versions(self) -> list[VersionInfo]:
        states = self.classifier.version_states()
        active = self.models.peek()
        infos = []
        for version in sorted(set(self.versions_on_disk()) | set(states), key=int):
            state, reason = states.get(version, ("ON_DISK", ""))
            infos.append(VersionInfo(version, state, reason, bool(active and active.version == version),
                                     _labels_on_disk(self.model_dir / version)))
        return infos

    def activate(self, version: str) -> Activation:
        started = time.perf_counter()
        with self.lock:
            current = self.models.peek()  # None: nothing serves (e.g. its files broke); activating is the fix
            current_version = current.version if current else ""
            if version == current_version:
                return Activation(version, self.previous_version, current.labels, 0.0, 0.0)
            if version not in self.versions_on_disk():
                raise NotFound(f"version {version!r} not found; on disk: {', '.join(self.versions_on_disk()) or 'none'}")
            try:
                candidate = load_serving_model(self.model_dir, self.settings.model_name, version, self.settings.length_buckets)
            except VersionFilesError as err:
                raise FailedPrecondition(
                    f"version {version} cannot be served: {err}; still serving {current_version or 'nothing'}") from None
            load_ms = self._ensure_loaded(current_version, version)
            self._smoke_test(candidate, current_version)
            self.models.set(candidate)
            switch_ms = (time.perf_counter() - started) * 1e3
            self.previous_version = current_version
            logger.info("activated version %s (previous %s): load %.0f ms, switch %.0f ms, categories %s",
                        version, current_version or "-", load_ms, switch_ms, ",".join(candidate.labels))
            return Activation(version, current_version, candidate.labels, load_ms, switch_ms)

    def rollback(self) -> Activation:
        with self.lock:  # re-entrant: activate() takes it again
            if not self.previous_version:
                raise FailedPrecondition("no previous version to roll back to")
            return self.activate(self.previous_version)

    def reload_after_restart(self) -> None:
        """A restarted Triton loads only the newest version: loads the serving one (else the
        pinned one) and the previous one (for rollback) again. Raises ModerationError."""
        with self.lock:
            current = self.models.peek()
            keep = {v for v in (current.version if current else self.settings.model_version, self.previous_version) if v}
            if not keep or keep == set(self.classifier.ready_versions()):
                return
            self.classifier.load_versions(sorted(keep, key=int))
            logger.info("reloaded version(s) %s after a Triton restart", ",".join(sorted(keep, key=int)))

    def _ensure_loaded(self, current: str, version: str) -> float:
        """Loads `version` next to `current`; a third version (the old previous) is unloaded once
        no request uses it any more."""
        if self._ready_everywhere(version):
            return 0.0
        dropped = self.previous_version
        if dropped and dropped not in (current, version):
            self.models.wait_idle(dropped, self.settings.triton_timeout_s)
        started = time.perf_counter()
        keep = sorted({v for v in (current, version) if v}, key=int)
        try:
            self.classifier.load_versions(keep)
        except ModerationError as err:
            self._keep_serving(current)
            reason = self.classifier.version_states().get(version, ("", str(err)))[1] or str(err)
            raise FailedPrecondition(f"version {version} failed to load; still serving {current or 'nothing'}: {reason}") from None
        if not self._ready_everywhere(version):
            self._keep_serving(current)
            raise FailedPrecondition(f"version {version} did not become ready; still serving {current or 'nothing'}")
        return (time.perf_counter() - started) * 1e3

    def _ready_everywhere(self, version: str) -> bool:
        """READY on every model server that answers (several with gateway.triton_pool), not just one."""
        try:
            return self.classifier.version_states().get(version, ("",))[0] == "READY"
        except ModerationError:
            return False

    def _smoke_test(self, candidate, current: str) -> None:
        ids, mask = candidate.encoder.encode([SMOKE_TEXT])
        try:
            scores = self.classifier.infer(ids, mask, version=candidate.version, timeout_s=SMOKE_TIMEOUT_S)
        except ModerationError as err:
            self._keep_serving(current)
            raise FailedPrecondition(f"version {candidate.version} failed a smoke inference: {err}") from None
        if scores.shape != (1, len(candidate.labels)):
            self._keep_serving(current)
            raise FailedPrecondition(
                f"version {candidate.version} returns {scores.shape[-1]} scores but has {len(candidate.labels)} labels"
            )
        self._verdict_test(candidate, current)

    def _verdict_test(self, candidate, current: str) -> None:
        texts = self.smoke_texts.labelled()
        ids, mask = candidate.encoder.encode([text for _, text, _ in texts])
        try:
            scores = self.classifier.infer(ids, mask, version=candidate.version, timeout_s=SMOKE_TIMEOUT_S)
        except ModerationError as err:
            self._keep_serving(current)
            raise FailedPrecondition(f"version {candidate.version} failed the smoke texts' inference: {err}") from None
        wrong = wrong_verdicts(self.smoke_texts, scores, candidate.labels, self.policy())
        if wrong:
            self._keep_serving(current)
            raise FailedPrecondition(
                f"version {candidate.version} failed the behavioural smoke test ({self.smoke_texts.source}): "
                f"{'; '.join(wrong)}; still serving {current or 'nothing'}")

    def _keep_serving(self, current: str) -> None:
        """After a failed activation: only the serving version (and the previous one, for
        rollback) stay loaded."""
        keep = sorted({v for v in (current, self.previous_version) if v}, key=int)
        if not keep:
            return
        try:
            self.classifier.load_versions(keep)
        except ModerationError:
            logger.exception("could not restore versions %s after a failed activation", keep)


def _shipped_policy():
    from gateway.policy import load_policy

    return load_policy("")


def _labels_on_disk(version_dir: Path) -> tuple[str, ...]:
    from contract import tensors

    try:
        return tuple(tensors.read_labels((version_dir / tensors.LABELS_FILENAME).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return ()
