"""Evidence by word occlusion: which words of a text drove its top toxic category.

For the explained window, each word (or group of adjacent words, past `max_words`) is removed
from the row's tokens and the row is scored again, all in the same model call as the unchanged
row. A word's weight is how much the top toxic category's score drops without it. Working on
tokens keeps the explained row identical to the scored one; words are cut from the text as sent
and found among the tokens through a character map, because the version's normalisation may
change the text's length (issue 14, part 9).

Two cues that each suffice ("idiot ... uninstall the game") hide each other: removing either
leaves the score up. When the model tops a window as toxic and no span reaches the minimum
weight, one more call leaves spans out in pairs (all pairs where they fit in one call, else those
whose single drops add up most). The pair that lowers the score most is the evidence if each of
its spans lowers the score by the minimum weight once the other is gone; both spans carry the
pair's drop, which is not to be added up.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

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
    weight: float  # drop of the category's score without the span (a pair's spans: without both)


@dataclass(frozen=True)
class Occlusion:
    """The rows explaining one window: the unchanged row, then one row per span left out."""

    text: int
    spans: list[tuple[int, int]]
    rows: list[list[int]]  # rows[0] is the window's own row
    ids: list[int]  # the window's tokens, without special tokens
    dropped: list[frozenset[int]]  # per span, its token positions in ids


@dataclass(frozen=True)
class PairOcclusion:
    """Rows leaving out two spans each, after the unchanged row."""

    text: int
    pairs: list[tuple[int, int]]  # span indices into the occlusion, one pair per row after the first
    spans: list[tuple[int, int]]  # the occlusion's spans
    single_drops: np.ndarray  # each span's drop alone, from the occlusion's call
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
               max_rows: int) -> PairOcclusion | None:
    """Rows leaving out pairs of spans, at most max_rows of them, or None where pairs do not apply.

    They apply to a window the model tops as toxic (one it does not flag needs no evidence) with
    at least two spans. All pairs are tried where they fit; otherwise those whose single drops
    add up most, which holds the strongest spans' pairs.
    """
    top = _top_toxic(scores[0], non_toxic)
    n = len(occlusion.spans)
    if n < 2 or scores[0, top] <= scores[0, non_toxic]:
        return None
    drops = scores[0, top] - scores[1:, top]
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    if len(pairs) > max_rows:
        pairs = sorted(pairs, key=lambda p: (-(drops[p[0]] + drops[p[1]]), p))[:max_rows]
    rows = [occlusion.rows[0]] + [_without(occlusion.ids, occlusion.dropped[a] | occlusion.dropped[b], encoder)
                                  for a, b in pairs]
    return PairOcclusion(occlusion.text, pairs, occlusion.spans, drops, rows)


def rank_pair(scores: np.ndarray, plan: PairOcclusion, labels: tuple[str, ...], non_toxic: int,
              min_weight: float, max_spans: int) -> list[Span]:
    """The two spans of the pair that lowers the top toxic category most, if each of them lowers
    it by min_weight once the other is gone (two words that merely add up are not a pair).

    Args:
        scores: [1 + pairs, categories] for plan.rows, in that order.
    """
    top = _top_toxic(scores[0], non_toxic)
    drops = scores[0, top] - scores[1:, top]
    single = plan.single_drops
    masking = [k for k, (a, b) in enumerate(plan.pairs)
               if drops[k] - single[a] >= min_weight and drops[k] - single[b] >= min_weight]
    if not masking:
        return []
    best = min(masking, key=lambda k: (-drops[k], plan.pairs[k]))
    a, b = sorted(plan.pairs[best], key=lambda k: (-single[k], k))  # the stronger alone first
    return [Span(*plan.spans[k], labels[top], float(drops[best])) for k in (a, b)][:max_spans]


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
