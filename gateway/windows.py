"""Long texts as overlapping token windows, so nothing past the model's max length goes unscored.

A text whose tokens fit in one row is sent exactly as before (one row, [CLS] text [SEP]). A
longer one becomes rows of `window_tokens` text tokens, each starting `window_tokens -
overlap_tokens` after the previous one, the last aligned to the text's end so that it is full.
The overlap keeps a phrase cut by one window's edge whole in the next. The text's verdict takes
the scores of its worst window: the one with the highest toxic score, 1 - score(non_toxic), so
harmless padding around abuse cannot dilute it (issue 14, part 7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.text_encoder import TextEncoder, Tokens


@dataclass(frozen=True)
class Window:
    text: int  # index of the text in the request
    start: int  # [start, end): the text's tokens (Tokens.ids) this row holds
    end: int
    row: list[int]  # token ids with special tokens, as sent to the model


def window_spans(n_tokens: int, window_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """[start, end) token ranges covering n_tokens; one range when the text fits.

    Raises:
        ValueError: when the overlap leaves no step (overlap_tokens >= window_tokens).
    """
    if window_tokens < 1 or not 0 <= overlap_tokens < window_tokens:
        raise ValueError(f"need 0 <= overlap_tokens < window_tokens, got {overlap_tokens} and {window_tokens}")
    if n_tokens <= window_tokens:
        return [(0, n_tokens)]
    starts = list(range(0, n_tokens - window_tokens, window_tokens - overlap_tokens))
    starts.append(n_tokens - window_tokens)  # the last window ends at the text's end, full
    return [(start, start + window_tokens) for start in starts]


def split_windows(tokens: list[Tokens], encoder: TextEncoder, overlap_tokens: int) -> list[Window]:
    """The rows for a request's texts, text after text (each text's windows in order)."""
    size = encoder.window_tokens
    overlap = min(overlap_tokens, size // 2)  # a version with a short max_length still steps forward
    return [
        Window(index, start, end, encoder.with_special_tokens(text.ids[start:end]))
        for index, text in enumerate(tokens)
        for start, end in window_spans(len(text.ids), size, overlap)
    ]


def worst_windows(scores: np.ndarray, windows: list[Window], n_texts: int, non_toxic: int = 0) -> list[int]:
    """Per text, the index (into windows and scores) of its window with the highest toxic score.

    Ties go to the earliest window.
    """
    worst = [-1] * n_texts
    for index, window in enumerate(windows):
        best = worst[window.text]
        if best < 0 or scores[index, non_toxic] < scores[best, non_toxic]:
            worst[window.text] = index
    if min(worst, default=0) < 0:
        raise ValueError("a text has no window")
    return worst
