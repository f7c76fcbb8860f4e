"""CoalescingClassifier: concurrent calls share one inner call, each gets its own rows back.

The inner classifier here computes scores from the ids themselves (row sum and width), so a
caller given another caller's rows, or rows of the wrong width, gets visibly wrong numbers.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gateway.classifier import Classifier
from gateway.coalescer import CoalescingClassifier
from gateway.errors import BackendTimeout, Overloaded


class RowSums:
    """scores[i] = (sum of row i's unmasked ids, its unmasked length); records each call's rows."""

    def __init__(self, delay_s: float = 0.0, error: Exception | None = None):
        self.calls: list[int] = []
        self.delay_s = delay_s
        self.error = error
        self.lock = threading.Lock()

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        with self.lock:
            self.calls.append(len(input_ids))
        time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return np.stack([(input_ids * attention_mask).sum(1), attention_mask.sum(1)], axis=1).astype(np.float32)

    def ready_versions(self):
        return ["1"]

    def is_ready(self, version=""):
        return version in ("", "1")

    def version_states(self):
        return {"1": ("READY", "")}

    def load_versions(self, versions):
        self.loaded = list(versions)

    def close(self):
        self.closed = True


def encoded(values: list[int]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.array([values], dtype=np.int64)
    return ids, np.ones_like(ids)


def call_concurrently(classifier, requests, version="1", timeout_s=5.0):
    results: dict[int, object] = {}
    barrier = threading.Barrier(len(requests))

    def run(index, values):
        barrier.wait()
        try:
            results[index] = classifier.infer(*encoded(values), version=version, timeout_s=timeout_s)
        except Exception as err:
            results[index] = err

    threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[i] for i in range(len(requests))]


def test_concurrent_calls_are_merged_and_each_gets_its_own_rows():
    inner = RowSums(delay_s=0.01)
    classifier = CoalescingClassifier(inner, max_rows=16, max_wait_s=0.05)
    requests = [[i + 1] * (1 + i % 5) for i in range(12)]  # different values and lengths
    results = call_concurrently(classifier, requests)
    for values, scores in zip(requests, results):
        assert scores.tolist() == [[float(sum(values)), float(len(values))]]
    assert sum(inner.calls) == 12 and len(inner.calls) < 12


def test_a_full_batch_goes_at_once_and_the_rest_opens_another():
    inner = RowSums()
    classifier = CoalescingClassifier(inner, max_rows=4, max_wait_s=0.5)
    started = time.perf_counter()
    results = call_concurrently(classifier, [[i + 1] for i in range(8)])
    assert [r.tolist() for r in results] == [[[float(i + 1), 1.0]] for i in range(8)]
    assert all(rows <= 4 for rows in inner.calls) and sum(inner.calls) == 8
    assert time.perf_counter() - started < 0.45  # full batches did not wait out max_wait_s


def test_versions_are_never_mixed():
    inner = RowSums()
    classifier = CoalescingClassifier(inner, max_rows=16, max_wait_s=0.05)
    seen = []
    original = inner.infer

    def recording(ids, mask, *, version, timeout_s):
        seen.append((version, len(ids)))
        return original(ids, mask, version=version, timeout_s=timeout_s)

    inner.infer = recording
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, classifier.infer(*encoded([i]), version=str(1 + i % 2), timeout_s=5))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(rows for _, rows in seen) == 8
    assert {version for version, _ in seen} == {"1", "2"}
    assert all(results[i].tolist() == [[float(i), 1.0]] for i in range(8))


def test_an_error_reaches_every_caller_of_the_batch():
    classifier = CoalescingClassifier(RowSums(error=Overloaded("queue full")), max_rows=16, max_wait_s=0.05)
    results = call_concurrently(classifier, [[1], [2], [3]])
    assert all(isinstance(r, Overloaded) for r in results)


def test_a_caller_whose_deadline_passes_stops_waiting():
    classifier = CoalescingClassifier(RowSums(delay_s=0.5), max_rows=16, max_wait_s=0.05)
    leader = threading.Thread(target=classifier.infer, args=encoded([1]), kwargs=dict(version="1", timeout_s=5))
    leader.start()
    time.sleep(0.01)  # join the open batch as a follower
    started = time.perf_counter()
    with pytest.raises(BackendTimeout):
        classifier.infer(*encoded([2]), version="1", timeout_s=0.1)
    assert time.perf_counter() - started < 0.4
    leader.join()


def test_large_calls_and_zero_wait_go_straight_through_and_other_methods_pass_through():
    inner = RowSums()
    big = np.ones((16, 3), dtype=np.int64)
    assert CoalescingClassifier(inner, max_rows=16).infer(big, big, version="1", timeout_s=1).shape == (16, 2)
    assert CoalescingClassifier(inner, max_wait_s=0).infer(*encoded([5]), version="1", timeout_s=1).tolist() == [[5.0, 1.0]]
    assert inner.calls == [16, 1]
    assert CoalescingClassifier(inner).ready_versions() == ["1"]
    with pytest.raises(ValueError):
        CoalescingClassifier(inner, max_rows=0)


def test_the_other_classifier_methods_are_the_inner_ones():
    inner = RowSums()
    classifier = CoalescingClassifier(inner)
    assert isinstance(inner, Classifier) and isinstance(classifier, Classifier)
    assert classifier.is_ready("1") and not classifier.is_ready("2")
    assert classifier.version_states() == {"1": ("READY", "")}
    classifier.load_versions(["1", "2"])
    assert inner.loaded == ["1", "2"]
    classifier.close()
    assert inner.closed


class AtMostRows(RowSums):
    """Refuses calls over max_batch_size rows, as Triton does after a config change."""

    def __init__(self, max_batch_size: int):
        super().__init__()
        self.max_batch_size = max_batch_size
        self.refused: list[int] = []

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        if len(input_ids) > self.max_batch_size:
            self.refused.append(len(input_ids))
            from gateway.errors import ModerationError

            raise ModerationError(f"batch-size must be <= {self.max_batch_size}")
        return super().infer(input_ids, attention_mask, version=version, timeout_s=timeout_s)


def test_a_merged_call_the_model_refuses_is_retried_per_caller_and_merging_pauses():
    inner = AtMostRows(max_batch_size=1)
    classifier = CoalescingClassifier(inner, max_rows=16, max_wait_s=0.05)
    results = call_concurrently(classifier, [[1], [2], [3]])
    assert [r.tolist() for r in results] == [[[1.0, 1.0]], [[2.0, 1.0]], [[3.0, 1.0]]]
    assert inner.refused and max(inner.refused) > 1  # a merged call was tried and refused
    calls_after_fallback = len(inner.calls)
    results = call_concurrently(classifier, [[4], [5]])  # paused: straight through, one call each
    assert [r.tolist() for r in results] == [[[4.0, 1.0]], [[5.0, 1.0]]]
    assert inner.calls[calls_after_fallback:] == [1, 1]
