"""gateway.triton_pool: parsing --triton-url, round robin, one retry elsewhere, merged readiness (fake replicas)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import BackendUnavailable, FailedPrecondition, Overloaded
from gateway.settings import Settings
from gateway.triton_pool import DNS_SCHEME, TritonPool, channel_args, create_triton_classifier, parse_triton_url

IDS = np.ones((1, 3), np.int64)


class Replica:
    def __init__(self, url: str, versions=("1",), error: Exception | None = None):
        self.url = url
        self.versions = list(versions)
        self.error = error
        self.calls = 0
        self.loaded: list[list[str]] = []
        self.timeouts: list[float] = []

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        self.calls += 1
        self.timeouts.append(timeout_s)
        if self.error is not None:
            raise self.error
        return np.zeros((len(input_ids), 2), np.float32)

    def ready_versions(self):
        return [] if self.error else list(self.versions)

    def is_ready(self, version=""):
        return not self.error and (version or self.versions[-1]) in self.versions

    def version_states(self):
        if self.error:
            raise BackendUnavailable("model server unavailable")
        return {v: ("READY", "") for v in self.versions}

    def load_versions(self, versions):
        if self.error:
            raise self.error
        self.loaded.append(list(versions))
        self.versions = list(versions)

    def close(self):
        pass


def infer(pool, timeout_s=2.0):
    return pool.infer(IDS, IDS, version="1", timeout_s=timeout_s)


@pytest.mark.parametrize("url,targets", [
    ("triton:8001", ("triton:8001",)),
    ("dns:///triton-headless.ns.svc:8001", ("dns:///triton-headless.ns.svc:8001",)),
    ("a:1, b:2", ("a:1", "b:2")),
])
def test_parse_triton_url(url, targets):
    assert parse_triton_url(url) == targets
    assert Settings(triton_url=url).triton_url == url


@pytest.mark.parametrize("url", ["", "triton", "a:1,a:1", "dns://x:1", "http://a:1", "a:1,b"])
def test_bad_triton_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_triton_url(url)
    with pytest.raises(ValueError):
        Settings(triton_url=url)


def test_channel_args_carry_the_full_set_and_round_robin_for_dns():
    plain, dns = dict(channel_args("a:1")), dict(channel_args(DNS_SCHEME + "a:1"))
    for args in (plain, dns):  # tritonclient drops its own defaults when channel_args is given
        assert {"grpc.max_send_message_length", "grpc.max_receive_message_length", "grpc.keepalive_time_ms",
                "grpc.keepalive_timeout_ms"} <= set(args)
    assert dns["grpc.lb_policy_name"] == "round_robin" and "grpc.lb_policy_name" not in plain


def test_one_address_is_a_plain_client_and_a_list_is_a_pool():
    from gateway.triton_classifier import TritonClassifier

    single = create_triton_classifier("127.0.0.1:1", "toxicity")
    pool = create_triton_classifier("127.0.0.1:1,127.0.0.1:2", "toxicity")
    dns = create_triton_classifier("dns:///localhost:1", "toxicity")
    try:
        assert isinstance(single, TritonClassifier)
        assert isinstance(pool, TritonPool) and [r.url for r in pool.replicas] == ["127.0.0.1:1", "127.0.0.1:2"]
        assert isinstance(dns, TritonPool) and len(dns.replicas) == 1
    finally:
        for classifier in (single, pool, dns):
            classifier.close()


def test_calls_take_the_replicas_in_turn():
    replicas = [Replica("a:1"), Replica("b:1"), Replica("c:1")]
    pool = TritonPool(replicas)
    for _ in range(6):
        infer(pool)
    assert [r.calls for r in replicas] == [2, 2, 2]


def test_an_unavailable_replica_is_retried_once_elsewhere_then_tried_last():
    dead, alive = Replica("a:1", error=BackendUnavailable("model server unavailable")), Replica("b:1")
    pool = TritonPool([dead, alive])
    for _ in range(6):
        assert infer(pool).shape == (1, 2)
    assert dead.calls == 1 and alive.calls == 6  # after its failure the dead one comes last
    assert all(t <= 2.0 for t in alive.timeouts)


def test_the_retry_gets_only_the_time_left_and_fails_when_both_fail():
    error = BackendUnavailable("model server unavailable")
    pool = TritonPool([Replica("a:1", error=error), Replica("b:1", error=error)])
    with pytest.raises(BackendUnavailable):
        infer(pool)
    assert sum(r.calls for r in pool.replicas) == 2  # one retry, not more


def test_a_full_queue_is_not_retried():
    full, other = Replica("a:1", error=Overloaded("overloaded")), Replica("b:1")
    pool = TritonPool([full, other])
    with pytest.raises(Overloaded):
        infer(pool)
    assert other.calls == 0


def test_one_dns_name_retries_on_its_own_channel():
    flaky = Replica("dns:///t:1", error=BackendUnavailable("model server unavailable"))
    pool = TritonPool([flaky])
    with pytest.raises(BackendUnavailable):
        infer(pool)
    assert flaky.calls == 2


def test_ready_while_any_replica_is_ready_but_states_need_every_reachable_one():
    old, new, dead = Replica("a:1", ["3"]), Replica("b:1", ["3", "4"]), Replica("c:1", error=BackendUnavailable("x"))
    pool = TritonPool([old, new, dead])
    assert pool.is_ready("4") and pool.is_ready("3") and not pool.is_ready("5")
    assert pool.ready_versions() == ["3", "4"]
    states = pool.version_states()
    assert states["3"] == ("READY", "")
    assert states["4"][0] != "READY" and states["4"][1].startswith("a:1")  # so activation loads it on a:1


def test_loading_goes_to_every_reachable_replica():
    first, second, dead = Replica("a:1", ["3"]), Replica("b:1", ["3"]), Replica("c:1", error=BackendUnavailable("x"))
    TritonPool([first, second, dead]).load_versions(["3", "4"])
    assert first.loaded == second.loaded == [["3", "4"]]
    with pytest.raises(BackendUnavailable):
        TritonPool([dead]).load_versions(["4"])
    broken = Replica("d:1", ["3"], error=FailedPrecondition("bad model"))
    with pytest.raises(FailedPrecondition):
        TritonPool([first, broken]).load_versions(["3"])
