"""TLS on the real gateway (in front of the real Triton), with certificates made at run time.

Checks: a TLS call is answered (health too), plaintext and a wrong CA are refused, a required
client certificate is required (always on the admin port), a rotated certificate is served to new
connections, the CLIs connect with their --tls-* flags, and the gateway talks TLS to a Triton that
requires it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.pb import admin_pb2, admin_pb2_grpc, moderation_pb2, moderation_pb2_grpc
from tests.certs import CertificateAuthority
from tests.integration.conftest import MODEL_REPOSITORY, start_gateway

pytestmark = pytest.mark.integration

CALL_TIMEOUT_S = 30  # generous: the box is shared
ADMIN_TOKEN = "t" * 40


class Pki:
    def __init__(self, root: Path):
        self.root = root
        self.ca = CertificateAuthority("gateway test CA")
        self.ca_path = self.ca.write(root / "ca.pem")
        self.other_ca = CertificateAuthority("someone else's CA")
        self.other_ca_path = self.other_ca.write(root / "other-ca.pem")
        self.server = self.ca.issue("localhost", root / "server")
        self.client = self.ca.issue("game-eu", root / "client", client=True, dns_names=("game-eu.example",), ips=())
        self.stranger = self.other_ca.issue("game-eu", root / "stranger", client=True, ips=())
        self.token_path = root / "admin.token"
        self.token_path.write_text(ADMIN_TOKEN)
        self.token_path.chmod(0o600)

    def credentials(self, ca=None, client=None) -> grpc.ChannelCredentials:
        ca = ca or self.ca
        return grpc.ssl_channel_credentials(ca.pem, client.key_pem if client else None,
                                            client.cert_pem if client else None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls_settings(pki: Pki, **overrides) -> dict:
    return {"tls_cert": str(pki.server.cert_path), "tls_key": str(pki.server.key_path), "tls_ca": str(pki.ca_path),
            **overrides}


@pytest.fixture(scope="module")
def tls_gateway(triton, pki):
    running = start_gateway(triton, admin_listen_address="127.0.0.1:0", admin_token_file=str(pki.token_path),
                            **tls_settings(pki))
    yield running
    running.close()


def classify(address: str, credentials: grpc.ChannelCredentials | None, text: str = "gg well played"):
    options = [("grpc.use_local_subchannel_pool", 1)]  # no connection shared with an earlier channel
    channel = (grpc.secure_channel(address, credentials, options) if credentials
               else grpc.insecure_channel(address, options))
    with channel:
        return moderation_pb2_grpc.ModerationStub(channel).ClassifyText(
            moderation_pb2.ClassifyTextRequest(text=text), timeout=CALL_TIMEOUT_S)


def refused(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        classify(address, credentials)
    return err.value.code()


def test_a_tls_call_and_a_health_check_are_answered(tls_gateway, pki):
    assert classify(tls_gateway.address, pki.credentials()).model_version
    with grpc.secure_channel(tls_gateway.address, pki.credentials()) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_and_a_wrong_ca_are_refused(tls_gateway, pki):
    assert refused(tls_gateway.address, None) == grpc.StatusCode.UNAVAILABLE
    assert refused(tls_gateway.address, pki.credentials(ca=pki.other_ca)) == grpc.StatusCode.UNAVAILABLE


def test_the_admin_port_requires_a_client_certificate_as_well_as_the_token(tls_gateway, pki):
    address = f"127.0.0.1:{tls_gateway.gateway.admin_port}"

    def list_versions(credentials):
        with grpc.secure_channel(address, credentials) as channel:
            return admin_pb2_grpc.ModelAdminStub(channel).ListModelVersions(
                admin_pb2.ListModelVersionsRequest(), timeout=CALL_TIMEOUT_S,
                metadata=[("authorization", f"Bearer {ADMIN_TOKEN}")])

    with pytest.raises(grpc.RpcError) as err:
        list_versions(pki.credentials())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.RpcError) as err:
        list_versions(pki.credentials(client=pki.stranger))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert list_versions(pki.credentials(client=pki.client)).active_version


def test_a_required_client_certificate_is_required(triton, pki):
    running = start_gateway(triton, **tls_settings(pki, tls_client_auth="require"))
    try:
        assert refused(running.address, pki.credentials()) == grpc.StatusCode.UNAVAILABLE
        assert refused(running.address, pki.credentials(client=pki.stranger)) == grpc.StatusCode.UNAVAILABLE
        assert classify(running.address, pki.credentials(client=pki.client)).model_version
    finally:
        running.close()


def _wait_until_accepted(address: str, credentials, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            classify(address, credentials)
            return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_rotated_certificate_is_served_to_new_connections(triton, pki, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    cert, key = served / "cert.pem", served / "key.pem"
    cert.write_bytes(pki.server.cert_pem)
    key.write_bytes(pki.server.key_pem)
    running = start_gateway(triton, tls_cert=str(cert), tls_key=str(key))
    try:
        assert classify(running.address, pki.credentials()).model_version
        new_ca = CertificateAuthority("rotated CA")
        rotated = new_ca.issue("localhost", tmp_path / "rotated")
        os.replace(rotated.key_path, key)
        os.replace(rotated.cert_path, cert)
        _wait_until_accepted(running.address, pki.credentials(ca=new_ca))
        assert refused(running.address, pki.credentials()) == grpc.StatusCode.UNAVAILABLE
        assert running.gateway.access.tls.files.reloads == 1
        running.gateway.access.reload()  # SIGHUP: the same files again, read on the next handshake
        assert classify(running.address, pki.credentials(ca=new_ca)).model_version
        assert running.gateway.access.tls.files.reloads == 2
    finally:
        running.close()


def test_the_clis_connect_with_their_tls_flags(tls_gateway, pki, capsys):
    from gateway.admin_cli import main as admin_main
    from gateway.client import main as client_main

    client_main(["--address", tls_gateway.address, "--tls-ca", str(pki.ca_path), "--info"])
    assert "toxicity version" in capsys.readouterr().out
    admin_main(["--address", f"127.0.0.1:{tls_gateway.gateway.admin_port}", "--token-file", str(pki.token_path),
                "--tls-ca", str(pki.ca_path), "--tls-cert", str(pki.client.cert_path),
                "--tls-key", str(pki.client.key_path), "list"])
    assert "active" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        client_main(["--address", tls_gateway.address, "gg"])  # plaintext to a TLS port
    assert "UNAVAILABLE" in capsys.readouterr().err


def _wait_for_tls_triton(triton, options: dict, timeout_s: float = 240.0) -> None:
    from gateway.triton_classifier import TritonClassifier

    classifier = TritonClassifier(triton.grpc_url, **options)
    deadline = time.monotonic() + timeout_s
    try:
        while not classifier.is_ready():
            if not triton.running or time.monotonic() > deadline:
                raise AssertionError(f"TLS Triton not ready:\n{triton.log_tail()}")
            time.sleep(1.0)
    finally:
        classifier.close()


def test_the_gateway_talks_tls_to_a_triton_that_requires_it(pki, tmp_path):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    from gateway.triton_process import TritonProcess

    triton_server = pki.ca.issue("localhost", pki.root / "triton")
    to_triton = pki.ca.issue("gateway", pki.root / "to-triton", client=True, ips=())
    triton = TritonProcess(MODEL_REPOSITORY, log_path=tmp_path / "triton.log", extra_args=(
        "--grpc-use-ssl-mutual=true", f"--grpc-server-cert={triton_server.cert_path}",
        f"--grpc-server-key={triton_server.key_path}", f"--grpc-root-cert={pki.ca_path}"))
    options = {"triton_tls_ca": str(pki.ca_path), "triton_tls_cert": str(to_triton.cert_path),
               "triton_tls_key": str(to_triton.key_path)}
    triton.start()
    try:
        _wait_for_tls_triton(triton, {"ssl": True, "root_certificates": str(pki.ca_path),
                                      "private_key": str(to_triton.key_path),
                                      "certificate_chain": str(to_triton.cert_path)})
        running = start_gateway(triton, **options)
        try:
            assert classify(running.address, None).model_version  # loopback client; TLS between gateway and Triton
        finally:
            running.close()
        from gateway.triton_classifier import TritonClassifier

        plain = TritonClassifier(triton.grpc_url)
        try:
            assert not plain.is_ready()  # the same Triton refuses a plaintext client
        finally:
            plain.close()
    finally:
        triton.stop()
