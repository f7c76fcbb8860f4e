"""Many Tritons behind one gateway: `--triton-url` as one address, a `dns:///` name, or a list.

- `host:port`: one Triton, one connection (as before).
- `dns:///name:port`: gRPC resolves the name and spreads calls over every address it returns
  (`round_robin`), re-resolving as replicas come and go: the form for a Kubernetes headless
  Service, where a plain Service would pin each gateway to one pod (kube-proxy balances
  connections, not calls).
- `h1:p1,h2:p2`: one client per address, and the gateway takes them in turn.

Classifying is idempotent, so a call that fails with UNAVAILABLE on one replica (gone, or the
version not loaded there) is retried once on another within the caller's remaining time; a
replica that failed is tried last for a few seconds. The gateway is healthy while at least one
replica has the model ready. Loading versions (admin activation, the version file) goes to every
replica that answers. tritonclient's `channel_args` replaces all of its own channel options, so
the full set (message sizes, keepalive) is passed here.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gateway.errors import BackendUnavailable, ModerationError

logger = logging.getLogger(__name__)

DNS_SCHEME = "dns:///"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a 64-row request of 512 tokens is 0.5 MB; room for larger configs
KEEPALIVE_TIME_MS = 60_000  # ping a connection with calls in flight this often, to notice a dead node
KEEPALIVE_TIMEOUT_MS = 20_000  # no ping answer in this long: the connection is dead
REPLICA_DOWN_S = 5.0  # a replica that failed is tried last for this long
MIN_RETRY_S = 0.005  # less time than this left: no retry


def parse_triton_url(url: str) -> tuple[str, ...]:
    """The targets in a `--triton-url`: one per list entry, each host:port or dns:///host:port.

    Raises:
      ValueError: an entry is not host:port, or one is given twice.
    """
    targets = tuple(part.strip() for part in url.split(",") if part.strip())
    if not targets:
        raise ValueError("triton_url is empty")
    for target in targets:
        address = target.removeprefix(DNS_SCHEME)
        host, sep, port = address.rpartition(":")
        if not host or not sep or not port.isdigit() or "/" in address:
            raise ValueError(f"triton_url entries must be host:port or {DNS_SCHEME}host:port, got {target!r}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"triton_url names a Triton twice: {url!r}")
    return targets


def channel_args(target: str) -> list[tuple[str, object]]:
    """The gRPC channel options for one target (all of them: they replace tritonclient's defaults)."""
    from gateway.triton_classifier import RECONNECT_CHANNEL_ARGS

    args = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        # Triton's server accepts pings only while calls are under way (its default), so none when idle
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 2),
        *RECONNECT_CHANNEL_ARGS,  # a restarted Triton is found again within seconds
    ]
    if target.startswith(DNS_SCHEME):
        args.append(("grpc.lb_policy_name", "round_robin"))
    return args


def create_triton_classifier(url: str, model_name: str, **client_options):
    """The Classifier for `--triton-url`: a TritonClassifier for one plain address, else a TritonPool.

    client_options go to every TritonClassifier."""
    from gateway.triton_classifier import TritonClassifier

    targets = parse_triton_url(url)
    replicas = [TritonClassifier(t, model_name, channel_args=channel_args(t), **client_options) for t in targets]
    if len(targets) == 1 and not targets[0].startswith(DNS_SCHEME):
        return replicas[0]
    return TritonPool(replicas)


class TritonPool:
    """A gateway.classifier.Classifier over several Triton clients (each one address or one dns name)."""

    def __init__(self, replicas: list, down_s: float = REPLICA_DOWN_S):
        if not replicas:
            raise ValueError("a pool needs at least one replica")
        self.replicas = list(replicas)
        self.down_s = down_s
        self._turn = itertools.count()
        self._down_until = [0.0] * len(self.replicas)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return ",".join(r.url for r in self.replicas)

    def _order(self) -> list[int]:
        """Replica indexes for the next call: round robin, replicas that failed lately last."""
        start = next(self._turn) % len(self.replicas)
        order = [(start + k) % len(self.replicas) for k in range(len(self.replicas))]
        now = time.monotonic()
        return sorted(order, key=lambda i: self._down_until[i] > now)  # stable: keeps the turn order

    def _mark_down(self, index: int) -> None:
        with self._lock:
            self._down_until[index] = time.monotonic() + self.down_s

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, version: str, timeout_s: float) -> np.ndarray:
        started = time.monotonic()
        order = self._order()
        first = order[0]
        try:
            return self.replicas[first].infer(input_ids, attention_mask, version=version, timeout_s=timeout_s)
        except BackendUnavailable as err:  # not Overloaded: a full queue is no reason to add load elsewhere
            self._mark_down(first)
            left_s = timeout_s - (time.monotonic() - started)
            if left_s < MIN_RETRY_S:
                raise
            second = order[1] if len(order) > 1 else first  # one dns name: its channel moves to the next address
            logger.warning("model call on %s failed (%s); retrying on %s", self.replicas[first].url, err,
                           self.replicas[second].url)
            return self.replicas[second].infer(input_ids, attention_mask, version=version, timeout_s=left_s)

    def ready_versions(self) -> list[str]:
        """Versions ready on at least one replica, lowest first."""
        ready = {v for replica in self.replicas for v in replica.ready_versions()}
        return sorted(ready, key=lambda v: int(v) if v.isdigit() else -1)

    def is_ready(self, version: str = "") -> bool:
        """True while at least one replica can serve `version`: the gateway stays SERVING."""
        return any(replica.is_ready(version) for replica in self.replicas)

    def version_states(self) -> dict[str, tuple[str, str]]:
        """Every reachable replica's view merged: READY only where every one of them has it ready,
        so an activation loads a version on any replica that lacks it."""
        views, last_error = [], None
        for replica in self.replicas:
            try:
                views.append((replica.url, replica.version_states()))
            except ModerationError as err:
                last_error = err
        if not views and last_error is not None:
            raise last_error
        merged: dict[str, tuple[str, str]] = {}
        for version in {v for _, states in views for v in states}:
            missing = [(url, states.get(version, ("UNAVAILABLE", "not loaded"))) for url, states in views
                       if states.get(version, ("",))[0] != "READY"]
            if not missing:
                merged[version] = ("READY", "")
            else:
                url, (state, reason) = missing[0]
                merged[version] = (state, f"{url}: {reason}")
        return merged

    def load_versions(self, versions: list[str]) -> None:
        """Loads exactly these versions on every replica that answers, all at once (a load takes
        seconds per replica); one that cannot be reached is skipped (it loads its repository's
        versions when it starts), any other failure raises."""
        def load(replica) -> Exception | None:
            try:
                replica.load_versions(versions)
            except ModerationError as err:
                return err
            return None

        with ThreadPoolExecutor(max_workers=len(self.replicas), thread_name_prefix="triton-load") as pool:
            outcomes = list(zip(self.replicas, pool.map(load, self.replicas)))
        failed = [err for _, err in outcomes if err is not None and not isinstance(err, BackendUnavailable)]
        if failed:
            raise failed[0]
        unreachable = [replica.url for replica, err in outcomes if isinstance(err, BackendUnavailable)]
        for url in unreachable:
            logger.warning("loading versions %s: %s unreachable; skipped", versions, url)
        if len(unreachable) == len(self.replicas):
            raise BackendUnavailable(f"no Triton replica reachable ({', '.join(unreachable)})")

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()
