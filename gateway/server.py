"""`moderation-gateway`: the gRPC server (service, health, reflection) in front of Triton."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from contract.pb import admin_pb2_grpc, moderation_pb2
from gateway.admin import TOKEN_ENV, AdminService, BearerTokenInterceptor, load_admin_token
from gateway.classifier import Classifier
from gateway.errors import GatewayStartError, ModerationError
from gateway.lifecycle import VersionManager
from gateway.policy import load_policy
from gateway.readiness import SERVICE_NAME, ReadinessMonitor
from gateway.service import ModelHolder, ModerationService
from gateway.settings import Settings, load_settings
from gateway.voice import create_voice_pipeline
from gateway.wire import add_moderation_servicer

logger = logging.getLogger(__name__)


class Gateway:
    """The running pieces of one gateway: public and admin gRPC servers, servicers, monitor."""

    def __init__(self, server: grpc.Server, service: ModerationService, monitor: ReadinessMonitor, classifier: Classifier,
                 admin_server: grpc.Server | None = None, admin: AdminService | None = None, admin_port: int = 0):
        self.server = server
        self.service = service
        self.monitor = monitor
        self.classifier = classifier
        self.admin_server = admin_server
        self.admin = admin
        self.admin_port = admin_port

    def start(self) -> None:
        self.server.start()
        if self.admin_server is not None:
            self.admin_server.start()
        self.monitor.start()

    def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING first (load balancers stop sending), then let in-flight calls finish."""
        self.monitor.stop()
        stopped = [self.server.stop(grace_s)]
        if self.admin_server is not None:
            stopped.append(self.admin_server.stop(grace_s))
        for event in stopped:
            event.wait()
        if self.service.voice is not None:
            self.service.voice.close()
        self.classifier.close()

    def reload_policy(self) -> None:
        """SIGHUP: re-read the policy file; a bad file is logged and the old policy stays."""
        try:
            self.admin.reload_policy()
        except ModerationError as err:
            logger.error("%s", err)
        except Exception:  # a signal handler must never take the server down
            logger.exception("policy reload failed; the old policy stays")

    def wait_for_termination(self) -> None:
        self.server.wait_for_termination()


_DEFAULT = object()


def create_server(settings: Settings, classifier: Classifier | None = None, voice=_DEFAULT) -> tuple[Gateway, int]:
    """Builds the gateway bound to settings.listen_address; returns it and the bound port.

    classifier and voice default to the real Triton client and Whisper pipeline (tests may pass
    their own; voice=None turns voice off)."""
    if classifier is None:
        from gateway.triton_classifier import TritonClassifier

        classifier = TritonClassifier(settings.triton_url, settings.model_name)
        if settings.coalesce_wait_us > 0:
            from gateway.coalescer import CoalescingClassifier

            classifier = CoalescingClassifier(classifier, settings.coalesce_max_rows, settings.coalesce_wait_us / 1e6)
    policy = load_policy(settings.policy_path)
    models = ModelHolder(on_change=lambda model: service.check_policy(model))
    voice = create_voice_pipeline(settings) if voice is _DEFAULT else voice
    service = ModerationService(settings, classifier, models, policy, voice)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_in_flight, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=settings.max_in_flight,
        # a voice clip may be up to max_audio_bytes; gRPC's default limit is 4 MB
        options=[("grpc.max_receive_message_length", settings.max_audio_bytes + 64 * 1024)],
    )
    add_moderation_servicer(service, server)  # malformed requests: INVALID_ARGUMENT (gateway/wire.py)
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
        raise GatewayStartError(f"cannot listen on {settings.listen_address}")
    manager = VersionManager(settings, classifier, models)
    monitor = ReadinessMonitor(settings, classifier, models, health_servicer, manager.lock)
    admin = AdminService(manager, service)
    admin_server, admin_port = _create_admin_server(settings, admin)
    return Gateway(server, service, monitor, classifier, admin_server, admin, admin_port), port


def _create_admin_server(settings: Settings, admin: AdminService) -> tuple[grpc.Server | None, int]:
    if not settings.admin_listen_address:
        return None, 0
    token = load_admin_token(settings.admin_token_file)
    if not token:
        logger.warning("no admin token (--admin-token-file or %s): admin calls will be refused", TOKEN_ENV)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="admin"),
                         interceptors=[BearerTokenInterceptor(token)])
    admin_pb2_grpc.add_ModelAdminServicer_to_server(admin, server)
    port = server.add_insecure_port(settings.admin_listen_address)
    if port == 0:
        raise GatewayStartError(f"cannot listen on {settings.admin_listen_address}")
    return server, port


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every clip at INFO


def run_until_signalled(gateway: Gateway, grace_s: float) -> None:
    stopping = threading.Event()

    def on_signal(signum, frame):
        logger.info("signal %d: shutting down (grace %.0f s)", signum, grace_s)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda signum, frame: gateway.reload_policy())
    stopping.wait()
    gateway.stop(grace_s)


def main(argv=None) -> None:
    settings = load_settings(argv)
    configure_logging(settings.log_level)
    try:
        gateway, port = create_server(settings)
    except GatewayStartError as err:
        raise SystemExit(f"gateway failed to start: {err}") from None
    gateway.start()
    logger.info("moderation gateway listening on %s (port %d), admin port %s, Triton at %s",
                settings.listen_address, port, gateway.admin_port or "off", settings.triton_url)
    run_until_signalled(gateway, settings.grace_s)


if __name__ == "__main__":
    main()
