"""The gateway's own Prometheus series, served on `--metrics-listen-address` (`/metrics`).

Every series is named `moderation_*`; the names are shared with the Grafana dashboard in deploy/
and must not change without it. Each gateway owns a CollectorRegistry of its own (not
prometheus-client's global one), so several gateways in one process, as in the tests, keep
separate counts. The error boundary (gateway.boundary) counts calls, codes, latency and verdicts;
the speech step observes the `asr` stage; the model holder reports the serving version.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import start_http_server

from gateway.errors import GatewayStartError

logger = logging.getLogger(__name__)

# Seconds; chat calls take milliseconds, voice clips seconds, long streams minutes.
REQUEST_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGES = ("tokenize", "model", "asr")  # the `stage` label's values


class GatewayMetrics:
    """The series one gateway exports, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("moderation_requests", "Calls ended, by RPC method and gRPC status code.",
                                ["method", "code"], registry=r)
        self.request_duration = Histogram("moderation_request_duration_seconds",
                                          "Time from a call's start to its status, by RPC method.",
                                          ["method"], buckets=REQUEST_BUCKETS_S, registry=r)
        self.stage_duration = Histogram("moderation_stage_duration_seconds",
                                        "Time spent in one stage of a call: tokenize, model (Triton), asr (Whisper).",
                                        ["stage"], buckets=STAGE_BUCKETS_S, registry=r)
        self.in_flight = Gauge("moderation_in_flight_requests", "Calls under way, streams included.", registry=r)
        self.speech_queue_depth = Gauge("moderation_speech_queue_depth",
                                        "Voice clips waiting for a Whisper worker.", registry=r)
        self.verdicts = Counter("moderation_verdicts", "Verdicts returned, by top category and policy action.",
                                ["category", "action"], registry=r)
        self.model = Info("moderation_model", "The model version this gateway serves.", registry=r)

    def observe_request(self, method: str, code: str, duration_s: float) -> None:
        self.requests.labels(method=method, code=code).inc()
        self.request_duration.labels(method=method).observe(duration_s)

    def observe_stage(self, stage: str, duration_s: float) -> None:
        self.stage_duration.labels(stage=stage).observe(duration_s)

    def count_verdicts(self, response) -> None:
        """Counts the verdicts a response carries: a Verdict, a batch's, a clip's or a stream event's
        (the whole transcript's verdict, not its segments', so a clip counts once)."""
        for verdict in _verdicts_in(response):
            self.verdicts.labels(category=verdict.top_category or "-", action=verdict.action or "-").inc()

    def set_model(self, name: str, version: str) -> None:
        self.model.info({"model": name, "version": version})

    def watch_speech_queue(self, queue) -> None:
        """Reads the queue's waiting clips at every scrape (asr.SpeechQueue.waiting)."""
        self.speech_queue_depth.set_function(lambda: queue.waiting)

    def render(self) -> bytes:
        """The exposition text, as /metrics serves it."""
        return generate_latest(self.registry)


def _verdicts_in(response) -> list:
    descriptor = getattr(response, "DESCRIPTOR", None)
    if descriptor is None:
        return []
    fields = descriptor.fields_by_name
    if "verdicts" in fields:  # ClassifyTextBatchResponse
        return list(response.verdicts)
    if "verdict" in fields:  # VoiceVerdict, VoiceEvent
        return [response.verdict] if response.HasField("verdict") else []
    if "action" in fields and "top_category" in fields:  # Verdict
        return [response]
    return []


def split_address(address: str) -> tuple[str, int]:
    """'127.0.0.1:9464' -> ('127.0.0.1', 9464); '[::]:9464' -> ('::', 9464); ':9464' -> all interfaces."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsServer:
    """The /metrics HTTP endpoint in a daemon thread (prometheus-client's own server)."""

    def __init__(self, metrics: GatewayMetrics, address: str):
        self.metrics = metrics
        self.address = address
        self.port = 0
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Binds and serves; returns the bound port (address port 0 picks a free one).

        Raises:
          GatewayStartError: the address cannot be bound (a second gateway on the same port, say).
        """
        host, port = split_address(self.address)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.metrics.registry)
        except OSError as err:
            raise GatewayStartError(f"cannot serve metrics on {self.address} ({err.strerror or err}); pass "
                                    "--metrics-listen-address with a free address, or empty to turn metrics off"
                                    ) from None
        self.port = self._server.server_port
        logger.info("metrics on http://%s:%d/metrics", host, self.port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
