"""Who is calling, and how much each caller may use: API keys and certificate identities.

A keys file (TOML) lists callers, one `[[caller]]` table each:

    [[caller]]
    name = "game-eu"
    key_hash = "sha256:9f86d08..."     # of the key; the key itself is printed once by moderation-keys
    tls_identity = "game-eu.example"   # optional: a client certificate's CN or SAN that is this caller
    rate_per_s = 50.0                  # token bucket: calls per second ...
    burst = 100                        # ... and how many may come at once after a quiet spell
    concurrency = 16                   # calls in flight at once
    scope = "decision"                 # "decision": toxic/severity/action only; "scores": everything

Keys are 256 random bits, so a single sha256 is enough to store them: nobody can search that
space, and a slow password hash (scrypt) would only add milliseconds to every call. Each
caller's limits are its own; one caller over its rate or share is refused with
RESOURCE_EXHAUSTED and `retry-after-ms` without touching the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

KEY_PREFIX = "mk_"  # recognisable in a leaked-secret scan
SCOPES = ("decision", "scores")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
FIELDS = {"name", "key_hash", "tls_identity", "rate_per_s", "burst", "concurrency", "scope"}
RELOAD_CHECK_S = 1.0  # how often a call may look at the keys file's modification time
CONCURRENCY_RETRY_MS = 100  # a share frees when one of the caller's own calls ends: no better estimate


class KeysFileError(ValueError):
    """The keys file is missing, not TOML, or has a bad entry."""


class CallerRejected(Exception):
    """The caller may not make this call now; carries the status code name and the retry delay."""

    def __init__(self, code: str, message: str, retry_after_ms: int = 0):
        super().__init__(message)
        self.code, self.retry_after_ms = code, retry_after_ms


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def short_id(text: str) -> str:
    """A log-safe caller id: the first 12 hex digits of a sha256."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CallerEntry:
    name: str
    key_hash: str = ""
    tls_identity: str = ""
    rate_per_s: float = 100.0
    burst: int = 200
    concurrency: int = 16
    scope: str = "decision"  # the safe default: no scores unless asked for

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise KeysFileError(f"caller name {self.name!r}: letters, digits and _.@- only, at most 64")
        if not self.key_hash and not self.tls_identity:
            raise KeysFileError(f"caller {self.name}: needs key_hash or tls_identity")
        if self.key_hash and not HASH_PATTERN.match(self.key_hash):
            raise KeysFileError(f"caller {self.name}: key_hash must be 'sha256:' and 64 hex digits")
        if self.rate_per_s <= 0 or self.burst < 1 or self.concurrency < 1:
            raise KeysFileError(f"caller {self.name}: rate_per_s must be > 0, burst and concurrency >= 1")
        if self.scope not in SCOPES:
            raise KeysFileError(f"caller {self.name}: scope must be one of {', '.join(SCOPES)}")

    @property
    def caller_id(self) -> str:
        """What logs carry: a hash prefix, never the key (the key's hash, else the certificate name's)."""
        return self.key_hash[7:19] if self.key_hash else short_id(self.tls_identity)


def parse_keys(text: str, source: str = "keys file") -> list[CallerEntry]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise KeysFileError(f"{source}: not valid TOML: {err}") from None
    unknown_top = set(document) - {"caller"}
    if unknown_top:
        raise KeysFileError(f"{source}: unknown table(s) {', '.join(sorted(unknown_top))}; expected [[caller]]")
    entries = []
    for index, table in enumerate(document.get("caller", [])):
        unknown = set(table) - FIELDS
        if unknown:
            raise KeysFileError(f"{source}: caller #{index + 1}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            entries.append(CallerEntry(**table))
        except TypeError as err:
            raise KeysFileError(f"{source}: caller #{index + 1}: {err}") from None
    for attribute in ("name", "key_hash", "tls_identity"):
        values = [getattr(e, attribute) for e in entries if getattr(e, attribute)]
        if len(values) != len(set(values)):
            raise KeysFileError(f"{source}: two callers share a {attribute}")
    return entries


def load_keys_file(path: str) -> list[CallerEntry]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise KeysFileError(f"cannot read keys file {path}: {err.strerror}") from None
    return parse_keys(text, path)


class TokenBucket:
    """rate_per_s tokens a second up to burst; a call takes one."""

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic):
        self.rate_per_s, self.burst, self._clock = rate_per_s, burst, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate_per_s


@dataclass(eq=False)  # one object per caller: hashed by identity
class Caller:
    """One caller's entry and its live counters."""

    entry: CallerEntry
    bucket: TokenBucket
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, entry: CallerEntry, clock=time.monotonic) -> Caller:
        return cls(entry, TokenBucket(entry.rate_per_s, entry.burst, clock))

    def admit(self) -> None:
        """Takes a token and a concurrency slot, or raises CallerRejected; release() gives the slot back."""
        wait_s = self.bucket.take()
        if wait_s > 0:
            raise CallerRejected("RESOURCE_EXHAUSTED",
                                 f"caller {self.entry.name} is over its rate of {self.entry.rate_per_s:g}/s, retry later",
                                 max(1, round(wait_s * 1000)))
        with self.lock:
            if self.in_flight >= self.entry.concurrency:
                raise CallerRejected("RESOURCE_EXHAUSTED", f"caller {self.entry.name} has "
                                     f"{self.entry.concurrency} calls in flight (its share), retry later",
                                     CONCURRENCY_RETRY_MS)
            self.in_flight += 1

    def release(self) -> None:
        with self.lock:
            self.in_flight -= 1


class CallerRegistry:
    """The callers of a keys file, looked up by key hash or certificate identity; re-read on change."""

    def __init__(self, path: str, clock=time.monotonic):
        self.path, self._clock = path, clock
        self._lock = threading.Lock()
        self._by_hash: dict[str, Caller] = {}
        self._by_identity: dict[str, Caller] = {}
        self._stamp = self._mtime()
        self._checked_at = clock()
        self._install(load_keys_file(path))

    def _mtime(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return -1

    def _install(self, entries: list[CallerEntry]) -> None:
        """Swaps in new entries; a caller whose entry did not change keeps its bucket and count."""
        old = {c.entry.name: c for c in {*self._by_hash.values(), *self._by_identity.values()}}
        callers = [old[e.name] if e.name in old and old[e.name].entry == e else Caller.of(e, self._clock)
                   for e in entries]
        self._by_hash = {c.entry.key_hash: c for c in callers if c.entry.key_hash}
        self._by_identity = {c.entry.tls_identity: c for c in callers if c.entry.tls_identity}
        self.names = [c.entry.name for c in callers]

    def reload(self) -> bool:
        """Re-reads the file; a bad file is logged and the callers in force stay. True if installed."""
        with self._lock:
            self._stamp = self._mtime()
            try:
                entries = load_keys_file(self.path)
            except KeysFileError as err:
                logger.error("keys file not reloaded, the old callers stay: %s", err)
                return False
            self._install(entries)
        logger.info("keys file reloaded: %d callers", len(entries))
        return True

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < RELOAD_CHECK_S:
            return
        self._checked_at = now
        if self._mtime() != self._stamp:
            self.reload()

    def identify(self, api_key: str, tls_names: list[str]) -> Caller:
        """The caller for an API key (if one was sent) or else a certificate name; raises CallerRejected."""
        self._reload_if_changed()
        if api_key:
            caller = self._by_hash.get(hash_key(api_key))
            if caller is None:
                raise CallerRejected("UNAUTHENTICATED", "unknown API key")
            return caller
        for name in tls_names:
            caller = self._by_identity.get(name)
            if caller is not None:
                return caller
        if tls_names:
            raise CallerRejected("PERMISSION_DENIED", "client certificate is not a known caller")
        raise CallerRejected("UNAUTHENTICATED", "an API key (authorization: Bearer <key> or x-api-key) "
                             "or a client certificate is needed")
