"""TextEncoder with the packaged MiniLM tokenizer: shapes, dtypes, padding, buckets, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.text_encoder import TextEncoder

MAX_LENGTH = 32


def words(n: int) -> str:
    """n single-token words: n + 2 tokens with [CLS] and [SEP]."""
    return " ".join(["a"] * n)


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    return TextEncoder(minilm_dir, MAX_LENGTH)


@pytest.fixture(scope="module")
def bucketed(minilm_dir):
    return TextEncoder(minilm_dir, MAX_LENGTH, buckets=(8, 16, 64))


def test_ids_and_mask_are_int64_batch_by_seq(encoder):
    ids, mask = encoder.encode(["gg wp", "nice shot, well played"])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    assert ids.ndim == 2 and ids.shape == mask.shape and ids.shape[0] == 2


def test_without_buckets_pads_to_the_longest_text_of_the_request(encoder):
    tok = encoder.tokenizer
    ids, mask = encoder.encode([words(1), words(5)])
    assert ids.shape == (2, 7)
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7]
    assert ids[0, :3].tolist() == [tok.cls_token_id, tok.convert_tokens_to_ids("a"), tok.sep_token_id]
    assert (ids[0, 3:] == encoder.pad_id).all()
    assert encoder.pad_id == tok.pad_token_id
    ids_alone, _ = encoder.encode([words(1)])
    assert ids_alone.shape == (1, 3)  # alone: its own length, no padding


def test_rows_match_the_tokenizer(encoder):
    texts = ["hello there", "🔥🔥 gg", "Ünïcödé text, with punctuation!"]
    ids, mask = encoder.encode(texts)
    for row, text in enumerate(texts):
        expected = encoder.tokenizer(text)["input_ids"]
        assert ids[row, : len(expected)].tolist() == expected
        assert int(mask[row].sum()) == len(expected)


def test_long_text_is_truncated_to_max_length_and_keeps_sep(encoder):
    ids, mask = encoder.encode([words(200), words(2)])
    assert ids.shape == (2, MAX_LENGTH)
    assert mask[0].sum() == MAX_LENGTH
    assert ids[0, -1] == encoder.tokenizer.sep_token_id
    assert mask[1].sum() == 4


def test_buckets_above_max_length_are_dropped_and_max_length_added(bucketed):
    assert bucketed.buckets == (8, 16, MAX_LENGTH)


@pytest.mark.parametrize(
    ("n_words", "width"),
    [(1, 8), (6, 8), (7, 16), (14, 16), (15, MAX_LENGTH), (30, MAX_LENGTH), (500, MAX_LENGTH)],
)
def test_length_is_rounded_up_to_the_next_bucket(bucketed, n_words, width):
    ids, mask = bucketed.encode([words(n_words)])
    assert ids.shape == (1, width)
    assert mask.sum() == min(n_words + 2, MAX_LENGTH)


def test_bucket_is_chosen_by_the_longest_text(bucketed):
    ids, mask = bucketed.encode([words(1), words(10)])
    assert ids.shape == (2, 16)
    assert mask.sum(axis=1).tolist() == [3, 12]


def test_padded_length(encoder, bucketed):
    assert encoder.padded_length(5) == 5
    assert bucketed.padded_length(8) == 8
    assert bucketed.padded_length(9) == 16
