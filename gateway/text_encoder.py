"""Chat text -> token ids and attention mask (int64 [batch, seq]) for the classifier.

The gateway tokenises, so Triton only ever sees tensors. Without buckets a request is padded to
its own longest text (the CPU python backend pads mixed requests itself, with ragged batching).
With buckets the length is rounded up to the next bucket so that Triton's dynamic batcher can
group requests of equal shape: what GPU libtorch serving needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


class TextEncoder:
    def __init__(self, tokenizer_dir: str | Path, max_length: int, buckets: tuple[int, ...] = (),
                 normalize: Callable[[str], str] | None = None):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if not self.tokenizer.is_fast:
            raise ValueError(f"{tokenizer_dir}: a fast (Rust) tokenizer is required")
        self.max_length = max_length
        self.buckets = tuple(b for b in buckets if b < max_length) + (max_length,) if buckets else ()
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.normalize = normalize  # the version's text normalisation (contract.normalization)
        # The first call configures truncation inside the Rust tokenizer; done here, once, so
        # concurrent first requests cannot collide on it ("Already borrowed").
        self.encode(["warm up"])

    def padded_length(self, longest: int) -> int:
        for bucket in self.buckets:
            if longest <= bucket:
                return bucket
        return longest

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self.normalize is not None:
            texts = [self.normalize(text) for text in texts]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        width = self.padded_length(max(len(ids) for ids in encoded))
        input_ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, ids in enumerate(encoded):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return input_ids, attention_mask
