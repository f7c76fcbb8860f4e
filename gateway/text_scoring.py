"""Texts -> scores (worst window each) and, on request, evidence spans: the model-call path.

Rows go to the model in as few calls as `max_rows_per_call` (Triton's max_batch_size) allows,
a text's rows kept in one call where they fit, so an explained row and its occluded copies are
scored side by side. Without explain, a text that fits one window costs one row, as before.
A long text being explained costs a second call: its worst window is known only after the first.
An explained toxic text whose words each fall short as evidence costs one more, for pairs of
words (gateway/explain.py); it is best-effort: if that call fails, the verdict has no spans.
The model call is a plain function, so the gateway (Triton) and offline scripts (TorchScript in
process) run the same code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from contract import tensors
from gateway.errors import ModerationError
from gateway.explain import Occlusion, Span, plan_occlusion, plan_pairs, rank_pair, rank_spans
from gateway.text_encoder import TextEncoder
from gateway.windows import Window, split_windows, worst_windows

logger = logging.getLogger(__name__)

Infer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # ids, mask [rows, seq] -> scores [rows, categories]


@dataclass(frozen=True)
class ScoringOptions:
    overlap_tokens: int = 32  # tokens shared by consecutive windows of a long text
    max_rows_per_call: int = 64  # the model's max_batch_size
    explain_max_words: int = 32  # words occluded one by one; past this, adjacent words in groups
    explain_min_weight: float = 0.05  # score drop a span needs to count as evidence
    explain_max_spans: int = 5

    def __post_init__(self) -> None:
        if self.explain_max_words + 1 > self.max_rows_per_call:  # the original row and its copies share a call
            raise ValueError(f"explain_max_words must be < max_rows_per_call, got {self.explain_max_words} "
                             f"and {self.max_rows_per_call}")
        if self.overlap_tokens < 0 or self.explain_max_words < 1 or self.explain_max_spans < 1:
            raise ValueError("overlap_tokens must be >= 0, explain_max_words and explain_max_spans >= 1")


@dataclass
class ScoredTexts:
    scores: np.ndarray  # [texts, categories]: each text's worst window
    evidence: list[list[Span]]  # per text; empty lists without explain
    rows: int = 0  # model rows sent
    calls: int = 0  # model calls made
    model_s: float = 0.0  # time spent inside the model calls
    windows: list[int] = field(default_factory=list)  # windows per text


def score_texts(texts: list[str], encoder: TextEncoder, labels: tuple[str, ...], infer: Infer,
                options: ScoringOptions, explain: bool = False) -> ScoredTexts:
    """Scores each text by its worst window; with explain, adds its evidence spans."""
    non_toxic = labels.index(tensors.NEGATIVE_CATEGORY)
    tokens = encoder.tokenize(texts)
    windows = split_windows(tokens, encoder, options.overlap_tokens)
    counts = [sum(1 for w in windows if w.text == i) for i in range(len(texts))]
    result = ScoredTexts(np.zeros((len(texts), len(labels)), np.float32), [[] for _ in texts], windows=counts)

    def plan(window: Window) -> Occlusion:
        return plan_occlusion(texts[window.text], tokens[window.text], window, encoder, options.explain_max_words)

    # a one-window text is explained in the same call as it is scored
    plans = [plan(w) for w in windows if explain and counts[w.text] == 1]
    groups = [[w.row for w in windows if w.text == i] for i in range(len(texts))]
    for occlusion in plans:
        groups[occlusion.text] = occlusion.rows
    group_scores = _infer_groups(groups, encoder, infer, options.max_rows_per_call, len(labels), result)
    window_scores = np.concatenate([scores[: counts[i]] for i, scores in enumerate(group_scores)])
    worst = worst_windows(window_scores, windows, len(texts), non_toxic)
    result.scores[:] = window_scores[worst]
    if not explain:
        return result
    explained = [(p, group_scores[p.text]) for p in plans]
    long_plans = [plan(windows[k]) for k in worst if counts[windows[k].text] > 1]  # known only now
    if long_plans:
        more = _infer_groups([p.rows for p in long_plans], encoder, infer, options.max_rows_per_call,
                             len(labels), result)
        explained += zip(long_plans, more)
    pair_plans = []
    for occlusion, scores in explained:
        result.evidence[occlusion.text] = rank_spans(scores, occlusion, labels, non_toxic,
                                                     options.explain_min_weight, options.explain_max_spans)
        if not result.evidence[occlusion.text]:
            pair_plans.append(plan_pairs(scores, occlusion, non_toxic, encoder, options.max_rows_per_call - 1))
    pair_plans = [p for p in pair_plans if p is not None]
    if pair_plans:  # cues that each suffice alone: one more call, leaving them out in pairs
        try:
            more = _infer_groups([p.rows for p in pair_plans], encoder, infer, options.max_rows_per_call,
                                 len(labels), result)
        except ModerationError as err:  # the scores are known: the verdict goes out without these spans
            logger.warning("explain: pair occlusion skipped for %d texts: %s", len(pair_plans), err)
            return result
        for pairing, scores in zip(pair_plans, more, strict=True):
            result.evidence[pairing.text] = rank_pair(scores, pairing, labels, non_toxic, options.explain_min_weight,
                                                    options.explain_max_spans)
    return result


def _infer_groups(groups: list[list[list[int]]], encoder: TextEncoder, infer: Infer, max_rows: int,
                  n_labels: int, result: ScoredTexts) -> list[np.ndarray]:
    """Scores per group of rows, packing whole groups into calls of at most max_rows rows."""
    rows = [row for group in groups for row in group]
    calls, current = [], []
    for group in groups:
        if current and len(current) + len(group) > max_rows:
            calls.append(current)
            current = []
        current.extend(group)
        while len(current) > max_rows:  # a group larger than one call (a very long text)
            calls.append(current[:max_rows])
            current = current[max_rows:]
    calls.append(current)
    scores = []
    for call_rows in calls:
        started = time.perf_counter()
        got = infer(*encoder.pad(call_rows))
        result.model_s += time.perf_counter() - started
        if got.shape != (len(call_rows), n_labels):
            raise ModerationError(f"model returned scores {got.shape} for {len(call_rows)} rows x {n_labels} labels")
        scores.append(got)
    result.rows += len(rows)
    result.calls += len(calls)
    flat = np.concatenate(scores)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(groups))]
