"""TLS for the gateway's ports, its Triton client and the CLIs that call it.

Server side: `grpc.dynamic_ssl_server_credentials` with a fetcher that gRPC calls on every new
handshake; it re-reads the certificate, key and CA files when one of their modification times
changed (or after SIGHUP), so a rotated certificate (cert-manager, a mounted Secret) is served to
new connections without a restart. Open connections keep the certificate they started with.

Client-certificate modes: `none` and `require`. grpcio's Python API can either not ask for a
client certificate or ask and require it (checked with grpcio 1.85: with
`require_client_authentication=False` a certificate the client offers is never requested, so no
identity reaches the server); `optional` is therefore refused at start rather than silently
dropping identities. The admin port always requires a client certificate when TLS is on.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import threading
from pathlib import Path

import grpc

from gateway.errors import GatewayStartError

logger = logging.getLogger(__name__)

CLIENT_AUTH_MODES = ("none", "optional", "require")


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise GatewayStartError(f"cannot read {path}: {err.strerror}") from None


class CertificateFiles:
    """The server's certificate, key and (optional) client CA, re-read when their files change."""

    def __init__(self, cert_path: str, key_path: str, ca_path: str = ""):
        self.paths = tuple(p for p in (cert_path, key_path, ca_path) if p)
        self.cert_path, self.key_path, self.ca_path = cert_path, key_path, ca_path
        self._lock = threading.Lock()
        self._stamps = self._mtimes()
        self._forced = False
        self.reloads = 0  # how many times a changed set of files was handed to gRPC
        self.initial = self._configuration()

    def _mtimes(self) -> tuple[int, ...]:
        try:
            return tuple(os.stat(p).st_mtime_ns for p in self.paths)
        except OSError:  # a file mid-replacement: try again on the next handshake
            return ()

    def _configuration(self):
        cert, key = _read(self.cert_path), _read(self.key_path)
        ca = _read(self.ca_path) if self.ca_path else None
        try:  # a key that does not match its certificate (files mid-rotation) would fail every handshake
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert_path, self.key_path)
        except (ssl.SSLError, OSError) as err:
            raise GatewayStartError(f"{self.cert_path} and {self.key_path} are not a certificate and its key: "
                                    f"{err}") from None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def request_reload(self) -> None:
        """SIGHUP: re-read the files on the next handshake even if no modification time moved."""
        self._forced = True

    def fetch(self):
        """gRPC's certificate-configuration fetcher: None keeps the current configuration."""
        with self._lock:
            stamps = self._mtimes()
            if not stamps or (stamps == self._stamps and not self._forced):
                return None
            try:
                configuration = self._configuration()
            except GatewayStartError as err:  # half-written files: keep serving the old certificate
                logger.warning("TLS files changed but cannot be read yet (%s); the old certificate stays", err)
                return None
            self._stamps, self._forced = stamps, False
            self.reloads += 1
            logger.info("TLS certificate reloaded from %s", self.cert_path)
            return configuration


def server_credentials(files: CertificateFiles, require_client_cert: bool) -> grpc.ServerCredentials:
    return grpc.dynamic_ssl_server_credentials(files.initial, files.fetch,
                                               require_client_authentication=require_client_cert)


class ServerTls:
    """TLS for the public and admin ports from the settings; `enabled` is False without a certificate."""

    def __init__(self, settings):
        self.enabled = bool(settings.tls_cert)
        self.client_auth = settings.tls_client_auth
        self.files = CertificateFiles(settings.tls_cert, settings.tls_key, settings.tls_ca) if self.enabled else None

    def credentials(self, *, admin: bool = False) -> grpc.ServerCredentials | None:
        """The port's credentials (admin: client certificate always required); None: plaintext."""
        if not self.enabled:
            return None
        return server_credentials(self.files, admin or self.client_auth == "require")

    def reload(self) -> None:
        if self.files is not None:
            self.files.request_reload()


def check_tls_settings(tls_cert: str, tls_key: str, tls_ca: str, client_auth: str, admin_enabled: bool) -> None:
    """Raises ValueError for combinations that cannot work (used by Settings.__post_init__)."""
    if client_auth not in CLIENT_AUTH_MODES:
        raise ValueError(f"tls_client_auth must be one of {', '.join(CLIENT_AUTH_MODES)}, got {client_auth!r}")
    if client_auth == "optional":
        raise ValueError("tls_client_auth=optional is not supported: grpcio's Python server cannot ask for a "
                         "client certificate without requiring it; use require, or none with API keys")
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("tls_cert and tls_key go together")
    if not tls_cert and (tls_ca or client_auth != "none"):
        raise ValueError("tls_ca and tls_client_auth need tls_cert and tls_key (TLS on)")
    if tls_cert and (client_auth == "require" or admin_enabled) and not tls_ca:
        raise ValueError("with TLS on, tls_ca is needed to verify client certificates "
                         "(the admin port always requires one; set admin_listen_address empty to turn it off)")


def check_triton_tls_settings(ca: str, cert: str, key: str) -> None:
    if bool(cert) != bool(key):
        raise ValueError("triton_tls_cert and triton_tls_key go together")
    if cert and not ca:
        raise ValueError("triton_tls_cert needs triton_tls_ca (TLS to Triton is on only with a CA)")


def triton_client_options(settings) -> dict:
    """Keyword arguments for tritonclient.grpc.InferenceServerClient: TLS when triton_tls_ca is set."""
    if not settings.triton_tls_ca:
        return {}
    return {"ssl": True, "root_certificates": settings.triton_tls_ca,
            "private_key": settings.triton_tls_key or None, "certificate_chain": settings.triton_tls_cert or None}


# --- clients ---------------------------------------------------------------------------------------
API_KEY_ENV = "MODERATION_API_KEY"


def add_client_arguments(parser: argparse.ArgumentParser, api_key: bool = True) -> None:
    """--tls-ca/--tls-cert/--tls-key (and --api-key-file) for a CLI that connects to the gateway."""
    group = parser.add_argument_group("connection security")
    group.add_argument("--tls-ca", default="", help="CA file to verify the gateway with (turns TLS on)")
    group.add_argument("--tls-cert", default="", help="client certificate file (mTLS)")
    group.add_argument("--tls-key", default="", help="client key file (mTLS)")
    group.add_argument("--tls-server-name", default="", help="name to expect in the gateway's certificate, "
                       "when it differs from the address's host")
    if api_key:
        group.add_argument("--api-key-file", default="", help=f"file holding the API key (else env {API_KEY_ENV})")


def open_channel(address: str, args: argparse.Namespace, options: list | None = None) -> grpc.Channel:
    """A secure channel when --tls-ca is given, else a plaintext one."""
    options = list(options or [])
    if not args.tls_ca:
        if args.tls_cert or args.tls_key:
            raise SystemExit("--tls-cert/--tls-key need --tls-ca")
        return grpc.insecure_channel(address, options=options)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    try:
        return secure_channel_from_files(address, args.tls_ca, args.tls_cert, args.tls_key, options)
    except OSError as err:
        raise SystemExit(f"cannot read {err.filename}: {err.strerror}") from None


def secure_channel_from_files(address: str, ca: str, cert: str = "", key: str = "",
                              options: list | None = None) -> grpc.Channel:
    """A TLS channel verified with the CA file; with cert and key, it presents a client certificate."""
    credentials = grpc.ssl_channel_credentials(Path(ca).read_bytes(), Path(key).read_bytes() if key else None,
                                               Path(cert).read_bytes() if cert else None)
    return grpc.secure_channel(address, credentials, options=options or [])


def api_key_metadata(args: argparse.Namespace, env=os.environ) -> list[tuple[str, str]]:
    """[("authorization", "Bearer <key>")] from --api-key-file or MODERATION_API_KEY; [] without a key."""
    if getattr(args, "api_key_file", ""):
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise SystemExit(f"cannot read {args.api_key_file}: {err.strerror}") from None
    else:
        key = env.get(API_KEY_ENV, "").strip()
    return [("authorization", f"Bearer {key}")] if key else []
