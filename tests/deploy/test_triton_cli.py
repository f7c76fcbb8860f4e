"""The `moderation-triton` flags the chart's CPU mode passes become tritonserver flags."""

from __future__ import annotations

import argparse

from gateway.triton_cli import add_triton_arguments, triton_from_args


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_triton_arguments(parser)
    return triton_from_args(parser.parse_args(list(argv)))


def test_exit_timeout_and_connection_age_reach_tritonserver():
    triton = parse("--triton-exit-timeout-s", "45", "--triton-max-connection-age-s", "300")
    assert "--exit-timeout-secs=45" in triton.extra_args
    assert "--grpc-max-connection-age=300000" in triton.extra_args
    assert "--grpc-max-connection-age-grace=30000" in triton.extra_args


def test_defaults_keep_tritons_own_behaviour():
    assert parse().extra_args == ("--exit-timeout-secs=30",)  # Triton's own default; connections never aged
