"""What the gateway needs from the model server: the `Classifier` protocol.

gateway.triton_classifier.TritonClassifier implements it against Triton,
gateway.coalescer.CoalescingClassifier wraps any implementation, and the tests use fakes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Classifier(Protocol):
    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, version: str, timeout_s: float) -> np.ndarray:
        """Scores [batch, categories] for one encoded request; raises gateway.errors.ModerationError."""
        ...

    def ready_versions(self) -> list[str]:
        """Versions of the model that are ready, lowest first (empty if the server is unreachable)."""
        ...

    def is_ready(self, version: str = "") -> bool:
        """Whether this version (empty: any version) can serve now."""
        ...

    def version_states(self) -> dict[str, tuple[str, str]]:
        """version -> (state, reason) for every version the server knows of."""
        ...

    def load_versions(self, versions: list[str]) -> None:
        """Makes exactly these versions loaded; raises ModerationError when one fails to load."""
        ...

    def close(self) -> None:
        """Releases the connection; called once, when the gateway stops."""
        ...
