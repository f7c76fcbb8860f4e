"""`moderation-serve`: Triton (child process) + the gateway in one command (`./run.sh serve`).

Takes every `moderation-triton` flag and every `moderation-gateway` flag; the gateway is pointed
at the Triton it started. Triton is restarted when it dies (gateway/supervisor.py) and dies with
the launcher, even on SIGKILL. Ctrl-C stops the gateway (draining calls), then Triton.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from gateway.errors import GatewayStartError, ModerationError
from gateway.secrets_files import SecretFileError
from gateway.server import configure_logging, create_server, run_until_signalled
from gateway.settings import Settings, load_settings
from gateway.supervisor import TritonSupervisor
from gateway.triton_cli import add_triton_arguments, triton_from_args
from gateway.triton_process import TritonStartError

logger = logging.getLogger("gateway.serve")

SERVING_TIMEOUT_S = 60.0  # from a ready Triton to health SERVING (tokenizer and labels load)


def main(argv=None) -> None:
    triton_parser = argparse.ArgumentParser(add_help=False)
    add_triton_arguments(triton_parser)
    triton_args, gateway_argv = triton_parser.parse_known_args(argv)
    settings = load_settings(gateway_argv, prog="moderation-serve")
    configure_logging(settings.log_level, settings.log_format)
    if settings.triton_tls_ca:  # the Triton started here listens on loopback, without TLS
        raise SystemExit("--triton-tls-* are for a remote Triton (moderation-gateway); moderation-serve starts its own")
    try:  # the control key: a fresh one per start unless --triton-control-key-file names one
        triton = triton_from_args(triton_args, settings.secret_files_group_readable)
    except SecretFileError as err:
        raise SystemExit(f"moderation-serve: {err}") from None
    settings = settings.replace(triton_url=triton.grpc_url, model_repository=triton_args.model_repository)
    try:
        triton.start()
        triton.wait_until_ready(triton_args.triton_start_timeout_s)
        load_pinned_version(settings, triton.control_key)
    except TritonStartError as err:
        triton.stop()
        raise SystemExit(f"Triton failed to start:\n{err}") from None
    except BaseException:
        triton.stop()
        raise
    supervisor = None
    try:
        try:
            gateway, port = create_server(settings, triton_control_key=triton.control_key)
            gateway.start()
        except GatewayStartError as err:
            raise SystemExit(f"gateway failed to start: {err}") from None
        supervisor = TritonSupervisor(
            triton, max_restarts=triton_args.triton_max_restarts, initial_backoff_s=triton_args.triton_restart_backoff_s,
            start_timeout_s=triton_args.triton_start_timeout_s, after_ready=gateway.admin.manager.reload_after_restart,
            on_give_up=_stop_main_thread, restart_lock=gateway.admin.manager.lock)
        supervisor.start()
        if not gateway.monitor.wait_serving(SERVING_TIMEOUT_S):
            gateway.stop(0)
            raise SystemExit(f"gateway not SERVING {SERVING_TIMEOUT_S:.0f} s after Triton was ready: "
                             f"{_not_serving_reason(gateway, settings)}")
        logger.info("ready: gateway on %s (metrics port %s; Triton gRPC %s pid %s, metrics %s). Try: moderation-client 'gg wp'",
                    settings.listen_address, gateway.metrics_port or "off", triton.grpc_url, triton.pid, triton.metrics_url)
        run_until_signalled(gateway, settings.grace_s)
        if supervisor.gave_up:
            raise SystemExit(f"stopping: {supervisor.gave_up}")
    finally:
        if supervisor is not None:
            supervisor.stop()
        else:
            triton.stop()


def _stop_main_thread(reason: str) -> None:
    """The graceful-stop path, as if signalled (the main thread then exits non-zero with reason)."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


def load_pinned_version(settings: Settings, control_key: str = "") -> None:
    """A pinned --model-version is loaded in Triton now, or start-up fails with the reason.

    Raises:
      TritonStartError: the version is not on disk, or Triton cannot load it.
    """
    version = settings.model_version
    if not version:
        return
    from gateway.model_version import numbered_versions
    from gateway.triton_classifier import TritonClassifier

    model_dir = Path(settings.model_repository) / settings.model_name
    on_disk = numbered_versions(model_dir)
    if version not in on_disk:
        raise TritonStartError(f"--model-version {version}: no such version in {model_dir} "
                               f"(on disk: {', '.join(on_disk) or 'none'})")
    classifier = TritonClassifier(settings.triton_url, settings.model_name, control_key)
    try:
        if classifier.is_ready(version):
            return
        logger.info("loading pinned version %s in Triton", version)
        try:
            classifier.load_versions([version])
        except ModerationError as err:
            reason = _triton_reason(classifier, version) or str(err)
            raise TritonStartError(f"--model-version {version}: Triton could not load it: {reason}") from None
        if not classifier.is_ready(version):
            raise TritonStartError(f"--model-version {version}: not ready after loading: "
                                   f"{_triton_reason(classifier, version) or 'no reason given'}")
    finally:
        classifier.close()


def _triton_reason(classifier, version: str) -> str:
    try:
        state, reason = classifier.version_states().get(version, ("", ""))
    except ModerationError:
        return ""
    return f"{state} {reason}".strip()


def _not_serving_reason(gateway, settings: Settings) -> str:
    try:
        states = gateway.classifier.version_states()
    except ModerationError as err:
        return f"Triton unreachable: {err}"
    listed = "; ".join(f"version {v}: {state} {reason}".strip() for v, (state, reason) in sorted(states.items())) or "none"
    return f"model {settings.model_name} versions in Triton: {listed}"


if __name__ == "__main__":
    main()
