"""Chat text -> token ids and attention mask (int64 [batch, seq]) for the classifier.

The gateway tokenises, so Triton only ever sees tensors. Without buckets a request is padded to
its own longest text (the CPU python backend pads mixed requests itself, with ragged batching).
With buckets the length is rounded up to the next bucket so that Triton's dynamic batcher can
group requests of equal shape: what GPU libtorch serving needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Tokens:
    """One text's tokens without special tokens, before any window is cut."""

    normalized: str  # the text the model sees (after the version's normalisation)
    ids: list[int]
    offsets: list[tuple[int, int]]  # per token, [start, end) characters in `normalized`


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
        self._prefix, self._suffix = _special_tokens(self.tokenizer)
        # The first call configures truncation (none) inside the Rust tokenizer; done here, once,
        # and never changed after, so concurrent requests cannot collide on it ("Already borrowed").
        self.tokenize(["warm up"])

    def padded_length(self, longest: int) -> int:
        for bucket in self.buckets:
            if longest <= bucket:
                return bucket
        return longest

    @property
    def window_tokens(self) -> int:
        """Text tokens one row can hold: max_length less the special tokens ([CLS], [SEP])."""
        return self.max_length - len(self._prefix) - len(self._suffix)

    def tokenize(self, texts: list[str]) -> list[Tokens]:
        """Every token of each text (no truncation), with character offsets, for windows."""
        normalized = [self.normalize(text) for text in texts] if self.normalize is not None else list(texts)
        encoded = self.tokenizer(normalized, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [Tokens(text, ids, [tuple(o) for o in offsets])
                for text, ids, offsets in zip(normalized, encoded["input_ids"], encoded["offset_mapping"])]

    def with_special_tokens(self, ids: list[int]) -> list[int]:
        return [*self._prefix, *ids, *self._suffix]

    def pad(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of token ids -> ids and attention mask [rows, longest (or its bucket)]."""
        width = self.padded_length(max(len(ids) for ids in rows))
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, ids in enumerate(rows):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return input_ids, attention_mask

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text as one row, cut at max_length (the smoke test; requests use windows)."""
        return self.pad([self.with_special_tokens(t.ids[: self.window_tokens]) for t in self.tokenize(texts)])


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after one text's own tokens ([CLS] and [SEP] in BERT)."""
    full = tokenizer("a b")["input_ids"]
    bare = tokenizer("a b", add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot find where the tokenizer puts a text's tokens among its special tokens")
