"""`moderation-serve`: Triton (child process) + the gateway in one command (`./run.sh serve`).

Takes every `moderation-triton` flag and every `moderation-gateway` flag; the gateway is pointed
at the Triton it started. Ctrl-C stops the gateway (draining calls), then Triton.
"""

from __future__ import annotations

import argparse
import logging

from gateway.errors import GatewayStartError
from gateway.secrets_files import SecretFileError
from gateway.server import configure_logging, create_server, run_until_signalled
from gateway.settings import load_settings
from gateway.triton_cli import add_triton_arguments, triton_from_args
from gateway.triton_process import TritonStartError

logger = logging.getLogger("gateway.serve")


def main(argv=None) -> None:
    triton_parser = argparse.ArgumentParser(add_help=False)
    add_triton_arguments(triton_parser)
    triton_args, gateway_argv = triton_parser.parse_known_args(argv)
    settings = load_settings(gateway_argv, prog="moderation-serve")
    configure_logging(settings.log_level)
    try:  # the control key: a fresh one per start unless --triton-control-key-file names one
        triton = triton_from_args(triton_args, settings.secret_files_group_readable)
    except SecretFileError as err:
        raise SystemExit(f"moderation-serve: {err}") from None
    settings = settings.replace(triton_url=triton.grpc_url, model_repository=triton_args.model_repository)
    triton.start()
    try:
        triton.wait_until_ready(triton_args.triton_start_timeout_s)
    except TritonStartError as err:
        triton.stop()
        raise SystemExit(f"Triton failed to start:\n{err}") from None
    try:
        try:
            gateway, port = create_server(settings, triton_control_key=triton.control_key)
        except GatewayStartError as err:
            raise SystemExit(f"gateway failed to start: {err}") from None
        gateway.start()
        logger.info("ready: gateway on %s (Triton gRPC %s, metrics %s). Try: moderation-client 'gg wp'",
                    settings.listen_address, triton.grpc_url, triton.metrics_url)
        run_until_signalled(gateway, settings.grace_s)
    finally:
        triton.stop()


if __name__ == "__main__":
    main()
