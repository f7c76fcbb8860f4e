"""Who may reach the gateway: TLS on its ports and caller identity on the public one.

One object built from the settings before any port is bound, so a gateway that would be open to
the network by accident refuses to start instead.
"""

from __future__ import annotations

import ipaddress
import logging

from gateway.callers import CallerRegistry, KeysFileError
from gateway.errors import GatewayStartError
from gateway.tls import ServerTls

logger = logging.getLogger(__name__)


def is_loopback(address: str) -> bool:
    """True for host:port addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class Access:
    """TLS credentials for both ports and the caller registry (None when no keys file is set)."""

    def __init__(self, settings):
        self.tls = ServerTls(settings)
        try:
            self.registry = CallerRegistry(settings.api_keys_file) if settings.api_keys_file else None
        except KeysFileError as err:
            raise GatewayStartError(str(err)) from None
        self._announce(settings)

    def _announce(self, settings) -> None:
        mtls = self.tls.enabled and settings.tls_client_auth == "require"
        if self.registry is not None:
            logger.info("callers: %d from %s (%s)", len(self.registry.names), settings.api_keys_file,
                        ", ".join(self.registry.names) or "none")
        elif mtls:
            logger.warning("no API keys file: any client certificate signed by %s may call, without limits",
                           settings.tls_ca)
        elif not is_loopback(settings.listen_address) and not settings.allow_anonymous:
            raise GatewayStartError(
                f"no API keys file and no required client certificates: refusing to listen on "
                f"{settings.listen_address} beyond loopback; set --api-keys-file, --tls-client-auth require, "
                "or --allow-anonymous true to run open on purpose")
        else:
            logger.warning("no API keys file: the gateway is OPEN to anyone who reaches %s (anonymous callers, "
                           "no per-caller limits, every score)", settings.listen_address)
        if not self.tls.enabled and not is_loopback(settings.listen_address):
            logger.warning("TLS is off on %s: calls travel in plaintext", settings.listen_address)

    @property
    def interceptors(self) -> list:
        if self.registry is None:
            return []
        from gateway.caller_interceptor import CallerInterceptor

        return [CallerInterceptor(self.registry)]

    def reload(self) -> None:
        """SIGHUP: re-read the keys file now and the TLS files on the next handshake."""
        self.tls.reload()
        if self.registry is not None:
            self.registry.reload()
