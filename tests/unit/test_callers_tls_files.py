"""The certificate fetcher gRPC calls on each handshake, and the CLI connection flags, without a server."""

from __future__ import annotations

import argparse
import os

import grpc
import pytest

from gateway.errors import GatewayStartError
from gateway.settings import Settings
from gateway.tls import CertificateFiles, add_client_arguments, api_key_metadata, open_channel, triton_client_options
from tests.certs import CertificateAuthority


@pytest.fixture
def pki(tmp_path):
    ca = CertificateAuthority()
    return ca, ca.issue("localhost", tmp_path / "server"), ca.issue("localhost", tmp_path / "next")


def test_unchanged_files_keep_the_configuration_and_a_rotation_is_handed_over_once(pki):
    ca, server, rotated = pki
    files = CertificateFiles(str(server.cert_path), str(server.key_path))
    assert files.fetch() is None
    os.replace(rotated.key_path, server.key_path)  # half-way: the new key beside the old certificate
    assert files.fetch() is None and files.reloads == 0
    os.replace(rotated.cert_path, server.cert_path)
    assert isinstance(files.fetch(), grpc.ServerCertificateConfiguration) and files.reloads == 1
    assert files.fetch() is None


def test_sighup_re_reads_files_whose_times_did_not_move(pki):
    _, server, _ = pki
    files = CertificateFiles(str(server.cert_path), str(server.key_path))
    files.request_reload()
    assert files.fetch() is not None and files.fetch() is None


def test_missing_or_mismatched_files_stop_the_start(pki, tmp_path):
    _, server, rotated = pki
    with pytest.raises(GatewayStartError, match="cannot read"):
        CertificateFiles(str(server.cert_path), str(tmp_path / "missing.pem"))
    with pytest.raises(GatewayStartError, match="not a certificate and its key"):
        CertificateFiles(str(server.cert_path), str(rotated.key_path))


def _client_args(argv):
    parser = argparse.ArgumentParser()
    add_client_arguments(parser)
    return parser.parse_args(argv)


def test_client_flags(pki, tmp_path):
    ca, server, _ = pki
    ca_path = ca.write(tmp_path / "ca.pem")
    assert isinstance(open_channel("127.0.0.1:1", _client_args([])), grpc.Channel)
    assert isinstance(open_channel("127.0.0.1:1", _client_args(["--tls-ca", str(ca_path)])), grpc.Channel)
    with pytest.raises(SystemExit, match="need --tls-ca"):
        open_channel("127.0.0.1:1", _client_args(["--tls-cert", str(server.cert_path), "--tls-key", "k"]))
    with pytest.raises(SystemExit, match="cannot read"):
        open_channel("127.0.0.1:1", _client_args(["--tls-ca", str(tmp_path / "nope.pem")]))
    key_file = tmp_path / "api.key"
    key_file.write_text("mk_secret\n")
    assert api_key_metadata(_client_args(["--api-key-file", str(key_file)])) == [("authorization", "Bearer mk_secret")]
    assert api_key_metadata(_client_args([]), env={"MODERATION_API_KEY": "mk_env"}) == [("authorization", "Bearer mk_env")]
    assert api_key_metadata(_client_args([]), env={}) == []


def test_triton_tls_is_off_by_default_and_on_with_a_ca():
    assert triton_client_options(Settings()) == {}
    options = triton_client_options(Settings(triton_tls_ca="ca.pem", triton_tls_cert="c.pem", triton_tls_key="k.pem"))
    assert options == {"ssl": True, "root_certificates": "ca.pem", "private_key": "k.pem", "certificate_chain": "c.pem"}
