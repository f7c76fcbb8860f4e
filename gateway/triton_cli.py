"""`moderation-triton`: runs the real tritonserver on the model repository until interrupted."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from contract import tensors
from gateway.secrets_files import SecretFileError, read_secret_file
from gateway.triton_process import TritonProcess, TritonStartError


def add_triton_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--triton-host", default="127.0.0.1", help="address Triton binds")
    parser.add_argument("--triton-grpc-port", type=int, default=8001)
    parser.add_argument("--triton-http-port", type=int, default=8000)
    parser.add_argument("--triton-http", action="store_true",
                        help="also serve Triton's HTTP API (off by default: the gateway speaks gRPC)")
    parser.add_argument("--triton-metrics-port", type=int, default=8002)
    parser.add_argument("--triton-metrics-address", default="",
                        help="address Triton's /metrics binds (default: --triton-host)")
    parser.add_argument("--triton-control-key-file", default="",
                        help="owner-only file with the key Triton's model control needs (shared with a remote "
                             "gateway); default: a fresh random key per start, known only to moderation-serve")
    parser.add_argument("--triton-config", default="", help="alternative config name, e.g. gpu (configs/gpu.pbtxt)")
    parser.add_argument("--triton-log", default="", help="Triton's log file (default under ~/.cache)")
    parser.add_argument("--triton-start-timeout-s", type=float, default=180.0)
    # how long a stopping Triton lets in-flight requests finish (a Kubernetes pod's grace period covers it)
    parser.add_argument("--triton-exit-timeout-s", type=int, default=30)
    # clients' connections are closed after this age so round-robin gateways find new replicas (0: never)
    parser.add_argument("--triton-max-connection-age-s", type=int, default=0)
    parser.add_argument("--triton-max-restarts", type=_non_negative_int, default=5,
                        help="moderation-serve: restarts of a dead Triton in a row (up < 60 s between) "
                             "before the launcher exits non-zero")
    parser.add_argument("--triton-restart-backoff-s", type=_positive_float, default=1.0,
                        help="moderation-serve: pause before the first restart; doubles per failure, up to 30 s")


CONNECTION_AGE_GRACE_MS = 30_000  # calls on an aged connection finish first (model calls take seconds at most)


def connection_age_args(age_s: int) -> tuple[str, ...]:
    """tritonserver flags that close a gRPC connection after `age_s`; none for 0."""
    if age_s <= 0:
        return ()
    return (f"--grpc-max-connection-age={age_s * 1000}", f"--grpc-max-connection-age-grace={CONNECTION_AGE_GRACE_MS}")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def triton_from_args(args: argparse.Namespace, allow_group_readable: bool = False) -> TritonProcess:
    """Raises SecretFileError for an unsafe or short control key file."""
    key = {}
    if args.triton_control_key_file:
        key["control_key"] = read_secret_file(args.triton_control_key_file, "Triton control key", allow_group_readable)
    return TritonProcess(
        model_repository=Path(args.model_repository),
        models=(tensors.MODEL_NAME,),
        host=args.triton_host,
        grpc_port=args.triton_grpc_port,
        http_port=args.triton_http_port,
        metrics_port=args.triton_metrics_port,
        config_name=args.triton_config,
        log_path=Path(args.triton_log) if args.triton_log else None,
        http_enabled=args.triton_http,
        metrics_host=args.triton_metrics_address,
        **key,
        extra_args=(f"--exit-timeout-secs={args.triton_exit_timeout_s}",
                    *connection_age_args(args.triton_max_connection_age_s)),
    )


def wait_for_signal() -> None:
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moderation-triton", description=__doc__)
    add_triton_arguments(parser)
    parser.add_argument("--secret-files-group-readable", action="store_true",
                        help="accept a group-readable control key file (Kubernetes secret volumes with fsGroup)")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        triton = triton_from_args(args, args.secret_files_group_readable)
    except SecretFileError as err:
        raise SystemExit(f"moderation-triton: {err}") from None
    if not args.triton_control_key_file:
        logging.warning("no --triton-control-key-file: model control (load/unload, configs) is locked behind a "
                        "random key nobody else knows, so a separate gateway cannot activate versions")
    triton.start()
    try:
        triton.wait_until_ready(args.triton_start_timeout_s)
        logging.info("Triton serving %s: grpc %s, metrics %s, log %s",
                     args.model_repository, triton.grpc_url, triton.metrics_url, triton.log_path)
        wait_for_signal()
    except TritonStartError as err:
        raise SystemExit(f"Triton failed to start:\n{err}") from None
    finally:
        triton.stop()


if __name__ == "__main__":
    main()
