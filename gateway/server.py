"""`moderation-gateway`: the gRPC server (service, health, reflection) in front of Triton."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2

from contract.pb import moderation_pb2
from gateway.access import Access
from gateway.admin import AdminAuthInterceptor, AdminService, load_admin_token
from gateway.admin_guard import AuthFailureLimiter
from gateway.classifier import Classifier
from gateway.errors import GatewayStartError, ModerationError
from gateway.lifecycle import VersionManager
from gateway.logformat import configure_logging as _configure_logging
from gateway.metrics import GatewayMetrics, MetricsServer
from gateway.policy import load_policy
from gateway.readiness import SERVICE_NAME, ReadinessMonitor
from gateway.secrets_files import SecretFileError, read_secret_file
from gateway.service import ModelHolder, ModerationService
from gateway.settings import Settings, load_settings
from gateway.tls import ServerTls, triton_client_options
from gateway.voice import create_voice_pipeline
from gateway.watch import GatewayWatcher
from gateway.wire import NO_REUSEPORT, Front, add_admin_to_server, listen, return_large_buffers_to_the_system

logger = logging.getLogger(__name__)


class Gateway:
    """The running pieces of one gateway: public and admin gRPC servers, servicers, monitor."""

    access: Access | None = None  # TLS files and callers (set by create_server), re-read on SIGHUP

    def __init__(self, server: grpc.Server, service: ModerationService, monitor: ReadinessMonitor, classifier: Classifier,
                 admin_server: grpc.Server | None = None, admin: AdminService | None = None, admin_port: int = 0,
                 metrics: GatewayMetrics | None = None, metrics_server: MetricsServer | None = None,
                 watcher: GatewayWatcher | None = None):
        self.server = server
        self.service = service
        self.monitor = monitor
        self.classifier = classifier
        self.admin_server = admin_server
        self.admin = admin
        self.admin_port = admin_port
        self.metrics = metrics
        self.metrics_server = metrics_server
        self.metrics_port = 0  # bound by start()
        self.watcher = watcher
        self.front: Front | None = None  # admission and health threads of the public server

    def start(self) -> None:
        if self.metrics_server is not None:  # first: a taken port stops start-up before anything serves
            self.metrics_port = self.metrics_server.start()
        self.server.start()
        if self.admin_server is not None:
            self.admin_server.start()
        self.monitor.start()
        if self.watcher is not None:
            self.watcher.start()

    def stop(self, grace_s: float | None = None) -> None:
        """NOT_SERVING first (load balancers stop sending), then let in-flight calls finish."""
        if self.watcher is not None:
            self.watcher.stop()
        self.monitor.stop()
        stopped = [self.server.stop(grace_s)]
        if self.admin_server is not None:
            stopped.append(self.admin_server.stop(grace_s))
        for event in stopped:
            event.wait()
        if self.service.voice is not None:
            self.service.voice.close()
        self.classifier.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.front is not None:
            self.front.close()

    def reload_policy(self) -> None:
        """SIGHUP: re-read the policy file; a bad file is logged and the old policy stays."""
        try:
            self.admin.reload_policy()
        except ModerationError as err:
            logger.error("%s", err)
        except Exception:  # a signal handler must never take the server down
            logger.exception("policy reload failed; the old policy stays")

    def announce_when_serving(self, message: str, *args, warn_after_s: float = 60.0) -> None:
        """Logs `message` once health is SERVING (not before: callers would be refused), from a
        thread; warns once if that takes longer than warn_after_s."""
        def wait():
            if not self.monitor.serving.wait(warn_after_s):
                logger.warning("not serving yet after %.0f s: the model server or the model is not ready", warn_after_s)
                self.monitor.serving.wait()
            logger.info(message, *args)
        threading.Thread(target=wait, name="announce", daemon=True).start()

    def wait_for_termination(self) -> None:
        self.server.wait_for_termination()


_DEFAULT = object()


def create_server(settings: Settings, classifier: Classifier | None = None, voice=_DEFAULT,
                  triton_control_key: str | None = None) -> tuple[Gateway, int]:
    """Builds the gateway bound to settings.listen_address; returns it and the bound port.

    classifier and voice default to the real Triton client and Whisper pipeline (tests may pass
    their own; voice=None turns voice off). triton_control_key: Triton's model-control key when
    the caller started Triton (moderation-serve); else it is read from --triton-control-key-file."""
    admin_token = _admin_token(settings)  # first: it also clears secrets from the environment children inherit
    access = Access(settings)  # TLS and callers; refuses an open gateway beyond loopback
    if classifier is None:
        from gateway.triton_pool import create_triton_classifier

        classifier = create_triton_classifier(settings.triton_url, settings.model_name,
                                              control_key=_control_key(settings, triton_control_key),
                                              **triton_client_options(settings))
        if settings.coalesce_wait_us > 0:
            from gateway.coalescer import CoalescingClassifier

            classifier = CoalescingClassifier(classifier, settings.coalesce_max_rows, settings.coalesce_wait_us / 1e6)
    policy = load_policy(settings.policy_path)
    metrics = GatewayMetrics()
    models = ModelHolder(on_change=lambda model: (service.check_policy(model), metrics.set_model(model.name, model.version)))
    voice = create_voice_pipeline(settings) if voice is _DEFAULT else voice
    service = ModerationService(settings, classifier, models, policy, voice)
    service.metrics = metrics  # read by the error boundary (gateway.boundary)
    if getattr(voice, "queue", None) is not None:
        voice.metrics = metrics
        metrics.watch_speech_queue(voice.queue)
    front = Front(settings)  # admission per peer, read timeouts, per-method size limits (gateway/wire.py)
    return_large_buffers_to_the_system()  # a burst of large messages must not stay in RSS
    server = grpc.server(front.thread_pool(), maximum_concurrent_rpcs=front.max_rpcs, options=front.server_options(),
                         interceptors=access.interceptors)
    front.add_to_server(service, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    front.add_health(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    front.add_reflection((moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name,
                          health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    port = listen(server, settings.listen_address, "public gRPC API", access.tls.credentials())
    try:
        manager = VersionManager(settings, classifier, models, policy=lambda: service.policy)
    except ValueError as err:  # the smoke texts file
        raise GatewayStartError(str(err)) from None
    monitor = ReadinessMonitor(settings, classifier, models, health_servicer, manager.lock)
    admin = AdminService(manager, service)
    admin.metrics = metrics
    admin_server, admin_port = _create_admin_server(settings, admin, access.tls, admin_token)
    metrics_server = MetricsServer(metrics, settings.metrics_listen_address) if settings.metrics_listen_address else None
    gateway = Gateway(server, service, monitor, classifier, admin_server, admin, admin_port, metrics, metrics_server)
    gateway.access = access
    gateway.front = front
    gateway.watcher = GatewayWatcher(settings.version_file, settings.policy_path, manager.activate,
                                     lambda: getattr(models.peek(), "version", ""), gateway.reload_policy,
                                     settings.watch_interval_s)
    return gateway, port


def _admin_token(settings: Settings) -> str:
    try:
        token = load_admin_token(settings.admin_token_file, settings.secret_files_group_readable)
    except SecretFileError as err:
        raise GatewayStartError(str(err)) from None
    if settings.admin_listen_address and not token:
        logger.warning("no admin token (--admin-token-file): admin calls will be refused")
    return token


def _control_key(settings: Settings, given: str | None) -> str:
    if given is not None:
        return given
    if not settings.triton_control_key_file:
        logger.warning("no Triton control key (--triton-control-key-file): serving works, but activation "
                       "and rollback fail against a Triton that restricts model control")
        return ""
    try:
        return read_secret_file(settings.triton_control_key_file, "Triton control key",
                                settings.secret_files_group_readable)
    except SecretFileError as err:
        raise GatewayStartError(str(err)) from None


def _create_admin_server(settings: Settings, admin: AdminService, tls: ServerTls,
                         token: str) -> tuple[grpc.Server | None, int]:
    if not settings.admin_listen_address:
        return None, 0
    limiter = AuthFailureLimiter(settings.admin_max_auth_failures, settings.admin_auth_window_s)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="admin"),
                         interceptors=[AdminAuthInterceptor(token, limiter)], options=[NO_REUSEPORT])
    add_admin_to_server(admin, server)  # malformed requests: INVALID_ARGUMENT (gateway/wire.py)
    return server, listen(server, settings.admin_listen_address, "admin API", tls.credentials(admin=True))


def configure_logging(level: str, log_format: str = "text") -> None:
    _configure_logging(level, log_format)


def run_until_signalled(gateway: Gateway, grace_s: float) -> None:
    stopping = threading.Event()

    def on_signal(signum, frame):
        logger.info("signal %d: shutting down (grace %.0f s)", signum, grace_s)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, lambda signum, frame: (gateway.reload_policy(), gateway.access and gateway.access.reload()))
    stopping.wait()
    gateway.stop(grace_s)


def main(argv=None) -> None:
    settings = load_settings(argv)
    configure_logging(settings.log_level, settings.log_format)
    try:
        gateway, port = create_server(settings)
        gateway.start()
    except GatewayStartError as err:
        raise SystemExit(f"gateway failed to start: {err}") from None
    gateway.announce_when_serving("ready: moderation gateway on %s (port %d), admin port %s, metrics port %s, Triton at %s",
                                  settings.listen_address, port, gateway.admin_port or "off",
                                  gateway.metrics_port or "off", settings.triton_url)
    run_until_signalled(gateway, settings.grace_s)


if __name__ == "__main__":
    main()
