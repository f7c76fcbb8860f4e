"""Keeps the gateway's view of Triton current: which version serves, and the health status.

A background thread polls Triton. When the model is ready it loads that version's tokenizer and
labels (once per version) and reports SERVING; when Triton or the model goes away it reports
NOT_SERVING (requests then fail with UNAVAILABLE from the Triton call, without waiting).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from grpc_health.v1 import health, health_pb2

from gateway.classifier import Classifier
from gateway.model_version import VersionFilesError, load_serving_model
from gateway.service import ModelHolder
from gateway.settings import Settings

logger = logging.getLogger(__name__)

SERVICE_NAME = "moderation.v1.Moderation"


class ReadinessMonitor:
    def __init__(self, settings: Settings, classifier: Classifier, models: ModelHolder, health_servicer: health.HealthServicer,
                 activation_lock=None):
        self.activation_lock = activation_lock  # held by lifecycle.VersionManager while switching
        self.settings = settings
        self.classifier = classifier
        self.models = models
        self.health = health_servicer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)
        self._serving: bool | None = None
        self.serving = threading.Event()  # set while health is SERVING

    def start(self) -> None:
        self.check_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._set_serving(False)
        self.health.enter_graceful_shutdown()  # later set() calls are ignored: no flip back
        if self._thread.is_alive():
            self._thread.join()

    def wait_serving(self, timeout_s: float) -> bool:
        """Whether health is (or becomes, within timeout_s) SERVING."""
        return self.serving.wait(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.health_poll_s):
            try:
                self.check_once()
            except Exception:  # the monitor must outlive any single bad poll
                logger.exception("readiness check failed")

    def fallback_version(self) -> str | None:
        """The version to serve when none is (pinned, else the highest Triton has ready)."""
        if self.settings.model_version:
            return self.settings.model_version if self.classifier.is_ready(self.settings.model_version) else None
        ready = self.classifier.ready_versions()
        return ready[-1] if ready else None

    def check_once(self) -> bool:
        """One poll. The serving version changes only when it is no longer ready; otherwise
        version switches are the admin's (lifecycle.VersionManager)."""
        current = self.models.peek()
        if current is not None and self.classifier.is_ready(current.version):
            self._set_serving(True)
            return True
        if self.activation_lock is None:
            return self._fall_back(current)
        if not self.activation_lock.acquire(blocking=False):  # an activation or a Triton restart decides the version
            self._set_serving(False)  # but the serving one is not ready now
            return False
        try:
            return self._fall_back(current)
        finally:
            self.activation_lock.release()

    def _fall_back(self, current) -> bool:
        version = self.fallback_version()
        if version is None:
            self._set_serving(False)
            return False
        if current is not None and current.version == version:  # back after an outage
            self._set_serving(True)
            return True
        try:
            model = load_serving_model(Path(self.settings.model_repository) / self.settings.model_name,
                                       self.settings.model_name, version, self.settings.length_buckets)
        except VersionFilesError as err:
            logger.error("cannot serve version %s: %s", version, err)
            self._set_serving(False)
            return False
        self.models.set(model)
        logger.info("serving %s version %s, categories %s", model.name, version, ",".join(model.labels))
        self._set_serving(True)
        return True

    def _set_serving(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        if serving:
            self.serving.set()
        else:
            self.serving.clear()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)
        logger.info("health: %s", "SERVING" if serving else "NOT_SERVING (model server or model not ready)")
