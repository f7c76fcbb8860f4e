"""Admission of public calls: in-flight limits, overall and per peer, and a watchdog for deadlines.

gRPC's `maximum_concurrent_rpcs` counts every call, health checks included, and cannot tell one
client from another: a single client holding idle streams took every slot (issue 15). Calls are
therefore admitted here, from the moment their HEADERS arrive (gateway.wire): at most
`max_in_flight` in all, fewer on one connection and from one address, so one client cannot lock
the others out. Health checks are not counted (gateway.wire counts only those whose request
message is late, apart).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from contextlib import contextmanager

from gateway.errors import Overloaded

logger = logging.getLogger(__name__)

PEER_LOG_EVERY_S = 10.0  # at most one line per peer and kind this often: a flood must not flood the log
COMPACT_AFTER = 1024  # watchdog entries; past this, finished ones are dropped when they outnumber live ones


def peer_host(peer: str) -> str:
    """The address part of grpc's context.peer(): 'ipv4:10.0.0.7:5123' -> '10.0.0.7',
    'ipv6:[::1]:5123' -> '::1'; other forms (unix sockets) are kept whole."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        return rest.rpartition("]")[0].lstrip("[") or rest
    return peer


class PeerLogLimit:
    """Says whether a line about a peer may be logged now (at most once per PEER_LOG_EVERY_S)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}

    def ready(self, peer: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(peer, -PEER_LOG_EVERY_S) < PEER_LOG_EVERY_S:
                return False
            if len(self._last) > 10_000:  # many addresses: forget them, at worst a few more lines
                self._last.clear()
            self._last[peer] = now
            return True


class Admission:
    """Counts calls in flight: overall, per connection and per peer address; refuses past any limit."""

    def __init__(self, max_in_flight: int, max_per_connection: int, max_per_peer: int,
                 counted: str = "calls in flight"):
        self.counted = counted  # what the refusals say is over the limit
        self.max_in_flight = max_in_flight
        self.max_per_peer = max(1, min(max_per_peer, max_in_flight))
        self.max_per_connection = max(1, min(max_per_connection, self.max_per_peer))
        self._lock = threading.Lock()
        self._total = 0
        self._held: dict[str, int] = {}  # by connection (grpc's peer string) and by host alike
        self._log_limit = PeerLogLimit()

    @property
    def in_flight(self) -> int:
        return self._total

    @contextmanager
    def admitted(self, peer: str):
        """Holds one place for a call from `peer` (grpc's context.peer()) until the block ends.

        Raises:
          Overloaded: max_in_flight calls are in flight, max_per_connection on this connection
            or max_per_peer from this address.
        """
        held = self.hold(peer)
        try:
            yield
        finally:
            self.release(held)

    def hold(self, peer: str) -> tuple[str, str]:
        """Takes one place for `peer` (raises Overloaded past a limit); release() gives it back."""
        keys = (peer, "host " + peer_host(peer))
        self._take(keys)
        return keys

    def release(self, keys: tuple[str, str]) -> None:
        with self._lock:
            self._total -= 1
            for key in keys:
                left = self._held[key] - 1
                if left:
                    self._held[key] = left
                else:
                    del self._held[key]

    def _take(self, keys: tuple[str, str]) -> None:
        connection, host = keys
        with self._lock:
            if self._total >= self.max_in_flight:
                reason = f"overloaded: {self.max_in_flight} {self.counted}, retry later"
            elif self._held.get(connection, 0) >= self.max_per_connection:
                reason = f"overloaded: {self.max_per_connection} {self.counted} on this connection, retry later"
            elif self._held.get(host, 0) >= self.max_per_peer:
                reason = f"overloaded: {self.max_per_peer} {self.counted} from your address, retry later"
            else:
                self._total += 1
                for key in keys:
                    self._held[key] = self._held.get(key, 0) + 1
                return
            counts = (self._held.get(connection, 0), self._held.get(host, 0), self._total)
        if self._log_limit.ready(host):
            logger.warning("admission: refusing calls from peer=%s (%d in flight on its connection, %d from its "
                           "address, %d in all; logged at most every %.0f s per address)", connection, *counts,
                           PEER_LOG_EVERY_S)
        raise Overloaded(reason)


class Watchdog:
    """Cancels calls that outlive a deadline the server sets (one thread for every call).

    A sync gRPC handler waiting for a request message cannot time out by itself; cancelling the
    call from here wakes it (the wait raises grpc.RpcError) and frees its thread and place.
    """

    def __init__(self):
        self._heap: list[tuple[float, int, list]] = []
        self._live = 0
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="call-watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def deadline(self, timeout_s: float, on_expiry):
        """Calls on_expiry() if the block is still running after timeout_s."""
        entry = [on_expiry]  # emptied when the block ends, so a late expiry does nothing
        with self._cond:
            if len(self._heap) > COMPACT_AFTER and len(self._heap) > 2 * self._live:
                self._heap = [item for item in self._heap if item[2]]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, next(self._order), entry))
            self._live += 1
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                if entry:
                    entry.clear()
                    self._live -= 1

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._stopped:
                    return
                _, _, entry = heapq.heappop(self._heap)
                expire = entry.pop() if entry else None
                self._live -= expire is not None
            if expire is not None:
                try:
                    expire()
                except Exception:  # the watchdog must outlive any one call
                    logger.exception("watchdog: expiring a call failed")
