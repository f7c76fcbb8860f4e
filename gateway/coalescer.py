"""Merges concurrent small model calls into one Triton request.

Every Triton request costs a gRPC round trip from the gateway and, in the python backend, its
own input and output tensors, whatever its size. Chat traffic is thousands of one-message calls,
so this fixed cost decides throughput. Triton's dynamic batcher merges requests for the model,
but each request still pays the round trip and the per-request backend work.

Here the first caller to arrive opens a batch and waits up to `max_wait_s` for other callers of
the same model version (or until `max_rows` rows are in). Then it sends all their rows as one
request and hands each caller its own rows of the scores. Rows keep their own attention masks,
and the CPU backend sorts rows by length, so there merging adds no padding work (with length
buckets for GPU serving, rows are padded to the longest part's bucket). A failure of the merged
call reaches every caller in it with the same status when it is about the server (queue full,
unavailable, deadline); any other failure, such as a batch larger than the model's
max_batch_size after a config change, is retried one caller at a time and merging for that
version pauses for a while. A caller whose deadline passes stops waiting; the others go on.
Why it is on by default, and its defaults: docs/decisions/0012-request-coalescing.md.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from gateway.classifier import Classifier
from gateway.errors import BackendTimeout, BackendUnavailable, Overloaded

logger = logging.getLogger(__name__)

MERGE_PAUSE_S = 30.0  # after a merged call failed for a reason other than the server's state
_SERVER_ERRORS = (Overloaded, BackendUnavailable, BackendTimeout)


class _Batch:
    def __init__(self, version: str):
        self.version = version
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.rows = 0
        self.timeout_s = 0.0
        self.full = threading.Event()  # wakes the leader before max_wait_s
        self.done = threading.Event()
        self.results: list = []  # per part: its scores, or the exception it gets


class CoalescingClassifier:
    """A Classifier that merges small `infer` calls for `inner`; the other methods are inner's.

    Args:
      inner: The classifier that calls Triton.
      max_rows: Rows per merged request; calls with at least this many rows go straight through.
      max_wait_s: How long the first caller waits for others (0 turns merging off).
    """

    def __init__(self, inner: Classifier, max_rows: int = 16, max_wait_s: float = 0.001):
        if max_rows < 1 or max_wait_s < 0:
            raise ValueError(f"max_rows must be >= 1 and max_wait_s >= 0, got {max_rows}, {max_wait_s}")
        self.inner = inner
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._open: dict[str, _Batch] = {}
        self._paused_until: dict[str, float] = {}  # version -> monotonic time merging resumes

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, version: str, timeout_s: float) -> np.ndarray:
        rows = len(input_ids)
        if (rows >= self.max_rows or self.max_wait_s == 0
                or self._paused_until.get(version, 0.0) > time.monotonic()):
            return self.inner.infer(input_ids, attention_mask, version=version, timeout_s=timeout_s)
        with self._lock:
            batch = self._open.get(version)
            leader = batch is None or batch.rows + rows > self.max_rows
            if leader:
                if batch is not None:
                    batch.full.set()  # it cannot grow any more: its leader need not wait
                batch = self._open[version] = _Batch(version)
            part = len(batch.parts)
            batch.parts.append((input_ids, attention_mask))
            batch.rows += rows
            batch.timeout_s = max(batch.timeout_s, timeout_s)
            if batch.rows >= self.max_rows:
                batch.full.set()
        if leader:
            self._lead(batch)
        elif not batch.done.wait(timeout_s):
            raise BackendTimeout("deadline exceeded waiting for the model")
        result = batch.results[part]
        if isinstance(result, BaseException):
            raise result
        return result

    def ready_versions(self) -> list[str]:
        return self.inner.ready_versions()

    def is_ready(self, version: str = "") -> bool:
        return self.inner.is_ready(version)

    def version_states(self) -> dict[str, tuple[str, str]]:
        return self.inner.version_states()

    def load_versions(self, versions: list[str]) -> None:
        self.inner.load_versions(versions)

    def close(self) -> None:
        self.inner.close()

    def _lead(self, batch: _Batch) -> None:
        batch.full.wait(self.max_wait_s)
        with self._lock:  # closed: later callers open a new batch
            if self._open.get(batch.version) is batch:
                del self._open[batch.version]
            parts = list(batch.parts)
        try:
            batch.results = self._run(parts, batch.version, batch.timeout_s)
        except BaseException as err:  # never leave followers waiting
            batch.results = [err] * len(parts)
        finally:
            batch.done.set()

    def _run(self, parts, version: str, timeout_s: float) -> list:
        """Scores (or the exception) for each part: one merged call, or one call per part."""
        if len(parts) == 1:
            return [self._call(*parts[0], version, timeout_s)]
        try:
            scores = self.inner.infer(*_stack(parts), version=version, timeout_s=timeout_s)
        except _SERVER_ERRORS as err:  # the server's state: every caller gets the same answer
            return [err] * len(parts)
        except Exception as err:
            logger.warning("merged call of %d requests for version %s failed (%s); retrying them one by one "
                           "and not merging for %.0f s", len(parts), version, err, MERGE_PAUSE_S)
            self._paused_until[version] = time.monotonic() + MERGE_PAUSE_S
            return [self._call(ids, mask, version, timeout_s) for ids, mask in parts]
        results, start = [], 0
        for ids, _ in parts:
            results.append(scores[start : start + len(ids)])
            start += len(ids)
        return results

    def _call(self, input_ids, attention_mask, version: str, timeout_s: float):
        try:
            return self.inner.infer(input_ids, attention_mask, version=version, timeout_s=timeout_s)
        except Exception as err:
            return err


def _stack(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of several requests in one [rows, longest] pair; padding is masked out (id 0)."""
    width = max(ids.shape[1] for ids, _ in parts)
    rows = sum(len(ids) for ids, _ in parts)
    input_ids = np.zeros((rows, width), dtype=parts[0][0].dtype)
    attention_mask = np.zeros((rows, width), dtype=parts[0][1].dtype)
    start = 0
    for ids, mask in parts:
        input_ids[start : start + len(ids), : ids.shape[1]] = ids
        attention_mask[start : start + len(ids), : mask.shape[1]] = mask
        start += len(ids)
    return input_ids, attention_mask
