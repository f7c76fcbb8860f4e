"""Evidence by word occlusion: which words of a text drove its top toxic category.

For the explained window, each word (or group of adjacent words, past `max_words`) is removed
from the row's tokens and the row is scored again, all in the same model call as the unchanged
row. A word's weight is how much the top toxic category's score drops without it. Working on
tokens keeps the explained row identical to the scored one; words are cut from the text as sent
and found among the tokens through a character map, because the version's normalisation may
change the text's length (issue 14, part 9).

Two cues that each suffice ("idiot ... uninstall the game") hide each other: removing either
leaves the score up. When no span reaches the minimum weight, a second call leaves out the
strongest span together with each other one, and the pair that lowers the score most is the
evidence, both spans carrying the pair's drop.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field

import numpy as np

from gateway.text_encoder import TextEncoder, Tokens
from gateway.windows import Window

_WORD = re.compile(r"\S+")
_EDGE_PUNCTUATION = ".,!?;:'\"()[]{}*"  # cut from a word's ends so a span covers the word alone


@dataclass(frozen=True)
class Span:
    start: int  # [start, end): characters of the text as sent
    end: int
    category: str
    weight: float  # drop of the category's score without the span


@dataclass(frozen=True)
class Occlusion:
    """The rows explaining one window: the unchanged row, then one row per span left out."""

    text: int
    spans: list[tuple[int, int]]
    rows: list[list[int]]  # rows[0] is the window's own row
    ids: list[int] = field(default_factory=list)  # the window's tokens, without special tokens
    dropped: list[frozenset[int]] = field(default_factory=list)  # per span, its token positions in ids


@dataclass(frozen=True)
class PairOcclusion:
    """Rows leaving out the strongest span together with each other span, after the unchanged row."""

    text: int
    anchor: tuple[int, int]
    partners: list[tuple[int, int]]
    rows: list[list[int]]


def word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each whitespace-separated word, without its leading or trailing punctuation.

    A word of punctuation only is left out: removing "!!!" says little about a verdict.
    """
    spans = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        core = word.strip(_EDGE_PUNCTUATION)
        if core:
            start = match.start() + word.index(core)
            spans.append((start, start + len(core)))
    return spans


def position_map(original: str, normalized: str) -> list[int]:
    """For each character position of `original` (and its end), the matching one in `normalized`."""
    if original == normalized:
        return list(range(len(original) + 1))
    mapping = [0] * (len(original) + 1)
    matcher = difflib.SequenceMatcher(None, original, normalized, autojunk=False)
    for _, i1, i2, j1, j2 in matcher.get_opcodes():
        for i in range(i1, i2):  # changed stretches are mapped proportionally
            mapping[i] = j1 + (i - i1) * (j2 - j1) // (i2 - i1)
    mapping[len(original)] = len(normalized)
    return mapping


def plan_occlusion(text: str, tokens: Tokens, window: Window, encoder: TextEncoder, max_words: int) -> Occlusion:
    """Rows that leave out each word of `text` found in `window` (adjacent words grouped past max_words)."""
    mapping = position_map(text, tokens.normalized)
    offsets = tokens.offsets[window.start : window.end]
    found = []  # (original span, token positions within the window)
    for start, end in word_spans(text):
        lo, hi = mapping[start], mapping[end]
        positions = {k for k, (a, b) in enumerate(offsets) if a < hi and b > lo and b > a}
        if positions:
            found.append(((start, end), positions))
    size = max(1, math.ceil(len(found) / max_words))
    ids = tokens.ids[window.start : window.end]
    spans, rows, dropped = [], [window.row], []
    for first in range(0, len(found), size):
        group = found[first : first + size]
        dropped.append(frozenset().union(*(positions for _, positions in group)))
        spans.append((group[0][0][0], group[-1][0][1]))
        rows.append(_without(ids, dropped[-1], encoder))
    return Occlusion(window.text, spans, rows, list(ids), dropped)


def _without(ids: list[int], dropped: frozenset[int], encoder: TextEncoder) -> list[int]:
    return encoder.with_special_tokens([t for k, t in enumerate(ids) if k not in dropped])


def _top_toxic(row: np.ndarray, non_toxic: int) -> int:
    return max((k for k in range(len(row)) if k != non_toxic), key=lambda k: (row[k], -k))


def plan_pairs(scores: np.ndarray, occlusion: Occlusion, non_toxic: int, encoder: TextEncoder,
               min_weight: float) -> PairOcclusion | None:
    """The pair rows for an occlusion whose single spans all fell short, or None where pairs cannot help.

    Pairs cannot help with fewer than two spans, or when the top toxic score is itself below
    min_weight (no removal can lower it by more).
    """
    top = _top_toxic(scores[0], non_toxic)
    if len(occlusion.spans) < 2 or scores[0, top] < min_weight:
        return None
    weights = scores[0, top] - scores[1:, top]
    anchor = min(range(len(weights)), key=lambda k: (-weights[k], k))
    partners = [k for k in range(len(weights)) if k != anchor]
    rows = [occlusion.rows[0]] + [_without(occlusion.ids, occlusion.dropped[anchor] | occlusion.dropped[k], encoder)
                                  for k in partners]
    return PairOcclusion(occlusion.text, occlusion.spans[anchor], [occlusion.spans[k] for k in partners], rows)


def rank_pair(scores: np.ndarray, pairs: PairOcclusion, labels: tuple[str, ...], non_toxic: int,
              min_weight: float, max_spans: int) -> list[Span]:
    """The anchor and its partner of the pair that lowers the top toxic category most, if by min_weight.

    Args:
        scores: [1 + partners, categories] for pairs.rows, in that order.
    """
    top = _top_toxic(scores[0], non_toxic)
    weights = scores[0, top] - scores[1:, top]
    best = min(range(len(weights)), key=lambda k: (-weights[k], pairs.partners[k]))
    if weights[best] < min_weight:
        return []
    both = sorted([pairs.anchor, pairs.partners[best]])
    return [Span(*span, labels[top], float(weights[best])) for span in both][:max_spans]


def rank_spans(scores: np.ndarray, occlusion: Occlusion, labels: tuple[str, ...], non_toxic: int,
               min_weight: float, max_spans: int) -> list[Span]:
    """The spans whose removal lowers the top toxic category by at least min_weight, strongest first.

    Args:
        scores: [1 + spans, categories] for occlusion.rows, in that order.
    """
    top = _top_toxic(scores[0], non_toxic)
    weights = scores[0, top] - scores[1:, top]
    order = sorted(range(len(weights)), key=lambda k: (-weights[k], occlusion.spans[k]))
    return [Span(*occlusion.spans[k], labels[top], float(weights[k]))
            for k in order if weights[k] >= min_weight][:max_spans]
