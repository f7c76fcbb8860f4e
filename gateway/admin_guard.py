"""The admin port's guards: the bearer token, a per-address limit on failed attempts, and which
files ReloadPolicy may read.

A peer (by IP address; the port changes per connection) that fails `max_failures` times within
`window_s` gets RESOURCE_EXHAUSTED, with the seconds to wait in the `retry-after-s` trailing
metadata, on every admin call until its window ends, even with the right token, so the token
cannot be guessed at line rate. Failures are logged once per peer and window (the first one),
plus one line when a peer is locked out and a count when its window closes.
"""

from __future__ import annotations

import hmac
import logging
import math
import os
import stat
import threading
import time
from pathlib import Path

import grpc

from gateway.errors import InvalidInput
from gateway.secrets_files import SECRET_ENV_NAMES, SecretFileError, drop_secret_environment, read_secret_file

logger = logging.getLogger(__name__)

MAX_TRACKED_PEERS = 10_000  # past this, expired entries are dropped (a scan cannot grow memory)
RETRY_AFTER_KEY = "retry-after-s"


def load_admin_token(token_file: str, allow_group_readable: bool = False) -> str:
    """The token from its file ("" when no file is configured: every admin call is refused).
    Raises SecretFileError for an unsafe or short file. The old environment variable is
    ignored, loudly, and removed so no child process inherits it."""
    for name in drop_secret_environment():
        logger.warning("%s is set and IGNORED: secrets come from files only (--admin-token-file); "
                       "it was removed from this process's environment", name)
    if not token_file:
        return ""
    return read_secret_file(token_file, "admin token", allow_group_readable)


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.5:53412' -> 'ipv4:10.0.0.5'; 'ipv6:[::1]:5' -> 'ipv6:[::1]'; others unchanged."""
    if peer.startswith(("ipv4:", "ipv6:")) and peer.count(":") >= 2:
        return peer.rsplit(":", 1)[0]
    return peer


class AuthFailureLimiter:
    def __init__(self, max_failures: int, window_s: float, clock=time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._peers: dict[str, list] = {}  # peer -> [window start, failures]
        self._lock = threading.Lock()

    def blocked_for(self, peer: str) -> float:
        """Seconds until `peer` may try again; 0 when it may now."""
        with self._lock:
            entry = self._current(peer, self.clock())
            if entry is None or entry[1] < self.max_failures:
                return 0.0
            return max(0.0, entry[0] + self.window_s - self.clock())

    def record_failure(self, peer: str, method: str, reason: str) -> None:
        now = self.clock()
        with self._lock:
            entry = self._current(peer, now)
            if entry is None:
                if len(self._peers) >= MAX_TRACKED_PEERS:
                    self._drop_expired(now)
                entry = self._peers[peer] = [now, 0]
            entry[1] += 1
            failures = entry[1]
        if failures == 1:
            logger.warning("admin call %s from %s refused: %s (further failures from this address are "
                           "counted, not logged, for %.0f s)", method, peer, reason, self.window_s)
        elif failures == self.max_failures:
            logger.warning("admin: %d failed calls from %s within %.0f s; its admin calls get "
                           "RESOURCE_EXHAUSTED until the window ends", failures, peer, self.window_s)

    def _current(self, peer: str, now: float) -> list | None:
        entry = self._peers.get(peer)
        if entry is not None and now - entry[0] >= self.window_s:
            if entry[1] > 1:
                logger.warning("admin: %d failed calls from %s in the last window", entry[1], peer)
            del self._peers[peer]
            return None
        return entry

    def _drop_expired(self, now: float) -> None:
        for peer in [p for p, e in self._peers.items() if now - e[0] >= self.window_s]:
            del self._peers[peer]


class AdminAuthInterceptor(grpc.ServerInterceptor):
    """`authorization: Bearer <token>`, compared in constant time, behind the failure limiter."""

    def __init__(self, token: str, limiter: AuthFailureLimiter):
        self._expected = f"Bearer {token}".encode() if token else None
        self._limiter = limiter

    def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = str(metadata.get("authorization", "")).encode()
        allowed = self._expected is not None and hmac.compare_digest(given, self._expected)
        handler = continuation(handler_call_details) if allowed else None
        if allowed and (handler is None or handler.unary_unary is None):
            return handler  # unknown method (gRPC answers UNIMPLEMENTED); admin calls are all unary
        method = handler_call_details.method
        reason = "missing or wrong admin token" if self._expected is not None else \
            "admin token not configured on the gateway (--admin-token-file)"
        limiter = self._limiter

        def guarded(request, context):
            peer = peer_host(context.peer() or "unknown")
            wait = limiter.blocked_for(peer)
            if wait > 0:
                context.set_trailing_metadata(((RETRY_AFTER_KEY, str(math.ceil(wait))),))
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"too many failed admin calls from this address; retry in {math.ceil(wait)} s")
            if not allowed:
                limiter.record_failure(peer, method, reason)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)
            return handler.unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer if handler else None,
            response_serializer=handler.response_serializer if handler else None)


def allowed_policy_file(path: str, policy_path: str, policy_dir: str, max_bytes: int) -> str:
    """The file ReloadPolicy may read for `path` ("" = the configured policy_path; "" result =
    the shipped default). Raises InvalidInput for a file outside the policy directory, not a
    regular file, or over the size cap."""
    if not path:
        if policy_path:
            _check_file(Path(policy_path), max_bytes)
        return policy_path
    directory = policy_dir or (str(Path(policy_path).parent) if policy_path else "")
    if not directory:
        raise InvalidInput("ReloadPolicy with a path needs --policy-dir (or --policy-path) on the gateway; "
                           "the policy stays as it is")
    root = Path(os.path.realpath(directory))
    candidate = Path(path) if Path(path).is_absolute() else root / path
    resolved = Path(os.path.realpath(candidate))  # symlinks (Kubernetes ConfigMaps) followed, then checked
    if resolved != root and root not in resolved.parents:
        raise InvalidInput(f"policy file {path} is outside the policy directory {root}; the policy stays as it is")
    _check_file(resolved, max_bytes)
    return str(resolved)


def _check_file(path: Path, max_bytes: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidInput(f"policy file not found: {path}; the policy stays as it is") from None
    except OSError as err:
        raise InvalidInput(f"policy file {path}: {err.strerror or err}; the policy stays as it is") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"policy file {path} is not a regular file; the policy stays as it is")
    if info.st_size > max_bytes:
        raise InvalidInput(f"policy file {path} has {info.st_size} bytes, over the {max_bytes}-byte cap "
                           "(--policy-max-bytes); the policy stays as it is")


__all__ = ["SECRET_ENV_NAMES", "AdminAuthInterceptor", "AuthFailureLimiter", "SecretFileError",
           "allowed_policy_file", "load_admin_token", "peer_host"]
