"""`moderation-gateway`: the gRPC server (service, health, reflection) in front of Triton."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from gateway.pb import moderation_pb2, moderation_pb2_grpc
from gateway.policy import load_policy
from gateway.readiness import SERVICE_NAME, ReadinessMonitor
from gateway.service import ModelHolder, ModerationService
from gateway.settings import Settings, load_settings

logger = logging.getLogger(__name__)


class Gateway:
    """The running pieces of one gateway: gRPC server, servicer and readiness monitor."""

    def __init__(self, server: grpc.Server, service: ModerationService, monitor: ReadinessMonitor, classifier):
        self.server = server
        self.service = service
        self.monitor = monitor
        self.classifier = classifier

    def start(self) -> None:
        self.server.start()
        self.monitor.start()

    def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING first (load balancers stop sending), then let in-flight calls finish."""
        self.monitor.stop()
        self.server.stop(grace_s).wait()
        if hasattr(self.classifier, "close"):
            self.classifier.close()

    def wait_for_termination(self) -> None:
        self.server.wait_for_termination()


def create_server(settings: Settings, classifier=None) -> tuple[Gateway, int]:
    """Builds the gateway bound to settings.listen_address; returns it and the bound port."""
    if classifier is None:
        from gateway.triton_classifier import TritonClassifier

        classifier = TritonClassifier(settings.triton_url, settings.model_name)
    policy = load_policy(settings.policy_path)
    models = ModelHolder()
    service = ModerationService(settings, classifier, models, policy)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=settings.max_in_flight,
    )
    moderation_pb2_grpc.add_ModerationServicer_to_server(service, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name,
         health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(settings.listen_address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {settings.listen_address}")
    monitor = ReadinessMonitor(settings, classifier, models, health_servicer)
    return Gateway(server, service, monitor, classifier), port


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_until_signalled(gateway: Gateway, grace_s: float) -> None:
    stopping = threading.Event()

    def on_signal(signum, frame):
        logger.info("signal %d: shutting down (grace %.0f s)", signum, grace_s)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    gateway.stop(grace_s)


def main(argv=None) -> None:
    settings = load_settings(argv)
    configure_logging(settings.log_level)
    gateway, port = create_server(settings)
    gateway.start()
    logger.info("moderation gateway listening on %s (port %d), Triton at %s",
                settings.listen_address, port, settings.triton_url)
    run_until_signalled(gateway, settings.grace_s)


if __name__ == "__main__":
    main()
