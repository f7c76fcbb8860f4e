"""Long texts as token windows: spans, overlap, offsets, the worst window, short texts unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.text_encoder import TextEncoder
from gateway.text_scoring import ScoringOptions, score_texts
from gateway.windows import Window, split_windows, window_spans, worst_windows

MAX_LENGTH = 16  # 14 text tokens per window with [CLS] and [SEP]
LABELS = ("non_toxic", "insult_harassment")


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return TextEncoder(minilm_dir, MAX_LENGTH)


def harmless(n: int) -> str:
    return " ".join(["nice"] * n)  # one token per word


def keyed_infer(token_id: int, calls: list):
    """A model whose insult score is 0.9 for rows holding token_id, else 0.1; records each call."""
    def infer(ids, mask):
        calls.append((ids.copy(), mask.copy()))
        hit = np.array([(row[m == 1] == token_id).any() for row, m in zip(ids, mask)])
        insult = np.where(hit, 0.9, 0.1).astype(np.float32)
        return np.stack([1 - insult, insult], axis=1)
    return infer


@pytest.mark.parametrize("n, size, overlap, expected", [
    (0, 10, 2, [(0, 0)]),
    (10, 10, 2, [(0, 10)]),
    (11, 10, 2, [(0, 10), (1, 11)]),
    (25, 10, 3, [(0, 10), (7, 17), (14, 24), (15, 25)]),
    (30, 10, 0, [(0, 10), (10, 20), (20, 30)]),
])
def test_window_spans(n, size, overlap, expected):
    assert window_spans(n, size, overlap) == expected


@pytest.mark.parametrize("n", [15, 37, 100, 501])
def test_windows_are_full_cover_the_text_and_overlap(n):
    spans = window_spans(n, 14, 4)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(end - start == 14 for start, end in spans)
    assert all(b_start <= a_end - 4 for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_an_overlap_that_leaves_no_step_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        window_spans(40, 10, 10)


def test_worst_window_is_the_most_toxic_per_text_and_ties_go_first():
    windows = [Window(0, 0, 1, []), Window(1, 0, 1, []), Window(1, 1, 2, []), Window(1, 2, 3, []), Window(2, 0, 1, [])]
    non_toxic = np.array([0.9, 0.8, 0.2, 0.2, 0.5])
    scores = np.stack([non_toxic, 1 - non_toxic], axis=1)
    assert worst_windows(scores, windows, 3) == [0, 2, 4]


def test_short_texts_are_sent_exactly_as_before(encoder):
    texts = ["gg wp", "nice shot, well played", harmless(14)]  # the last fills one window exactly
    calls = []
    scored = score_texts(texts, encoder, LABELS, keyed_infer(-1, calls), ScoringOptions(explain_max_words=8))
    # what the gateway sent before windows: the tokenizer's own truncation, padded to the longest
    expected_ids, expected_mask = encoder.pad(encoder.tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"])
    assert len(calls) == 1 and scored.rows == 3 and scored.windows == [1, 1, 1]
    np.testing.assert_array_equal(calls[0][0], expected_ids)
    np.testing.assert_array_equal(calls[0][1], expected_mask)
    assert scored.evidence == [[], [], []]


def test_window_rows_keep_the_tokens_and_their_offsets(encoder):
    text = " ".join(f"w{i}" for i in range(40))
    tokens = encoder.tokenize([text])
    windows = split_windows(tokens, encoder, overlap_tokens=4)
    assert len(windows) > 1
    cls, sep = windows[0].row[0], windows[0].row[-1]
    for window in windows:
        assert len(window.row) <= MAX_LENGTH
        assert window.row == [cls, *tokens[0].ids[window.start : window.end], sep]
    first, last = tokens[0].offsets[windows[-1].start], tokens[0].offsets[windows[-1].end - 1]
    assert text[first[0] : last[1]] in text and text.endswith(text[first[0] : last[1]])


def test_a_toxic_tail_after_harmless_text_decides_the_verdict(encoder):
    idiot = encoder.tokenizer.convert_tokens_to_ids("idiot")
    text = harmless(60) + " you idiot"
    calls = []
    scored = score_texts([text, harmless(60)], encoder, LABELS, keyed_infer(idiot, calls), ScoringOptions(explain_max_words=8))
    assert scored.scores[0, 1] == pytest.approx(0.9) and scored.scores[1, 1] == pytest.approx(0.1)
    assert scored.windows[0] > 1 and len(calls) == 1  # every window in the same call


def test_calls_never_exceed_max_rows(encoder):
    calls = []
    options = ScoringOptions(max_rows_per_call=4, explain_max_words=3)
    scored = score_texts([harmless(100)] * 3, encoder, LABELS, keyed_infer(-1, calls), options)
    assert all(len(ids) <= 4 for ids, _ in calls)
    assert sum(len(ids) for ids, _ in calls) == scored.rows == sum(scored.windows)
