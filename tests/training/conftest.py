"""Fixtures for the training-studio tests: a tiny random BERT checkpoint, tiny CSVs, and the
real shared data for the one test that trains for real.

The CSVs are written in the formats training/data.py reads, with harmless made-up texts; the
checkpoint is random (its scores mean nothing), which is all the plumbing tests need.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from training.categories import load_categories

CATEGORIES = ("non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat")
JIGSAW_COLUMNS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

# (text, label) for the single-label sources; texts are made up and harmless on purpose.
TWEETEVAL_ROWS = [
    ("good game everyone, see you tomorrow", "not_offensive"),
    ("that map was fun\nwe should queue again", "not_offensive"),  # a newline inside a field
    ("who put the pineapple on the pizza", "not_offensive"),
    ("you absolute turnip, stop feeding", "offensive"),
    ("this lag is so darn annoying", "offensive"),
    ("our healer is a sleepy potato", "offensive"),
]
DAVIDSON_ROWS = [
    ("nice rotation on the last round", "neither"),
    ("thanks for the carry", "neither"),
    ("you play like a soggy waffle", "offensive"),
    ("people from the moon cannot aim", "hate_speech"),
]
# text + one 0/1 per JIGSAW_COLUMNS
JIGSAW_ROWS = [
    ("i really like the new patch notes", (0, 0, 0, 0, 0, 0)),
    ("the lobby music is calm today", (0, 0, 0, 0, 0, 0)),
    ("what a fudging mess this round is", (1, 0, 1, 0, 0, 0)),
    ("you are a clumsy noodle", (1, 0, 0, 0, 1, 0)),
    ("i will throw a water balloon at you", (1, 0, 0, 1, 0, 0)),
    ("this comment is mean in a vague way", (1, 0, 0, 0, 0, 0)),  # partial: some toxic kind
]
VAL_ROWS = len(TWEETEVAL_ROWS) + len(DAVIDSON_ROWS) + len(JIGSAW_ROWS)
ALL_TEXTS = [text for text, _ in TWEETEVAL_ROWS + DAVIDSON_ROWS + JIGSAW_ROWS]


def _write_csv(path: Path, header, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="session")
def categories():
    return load_categories()


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    _write_csv(data_dir / "tweeteval_offensive_val.csv", ("text", "label"), TWEETEVAL_ROWS)
    _write_csv(data_dir / "davidson_val.csv", ("text", "label"), DAVIDSON_ROWS)
    _write_csv(data_dir / "jigsaw_val.csv", ("text",) + JIGSAW_COLUMNS,
               [(text, *flags) for text, flags in JIGSAW_ROWS])
    return data_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, minilm_dir) -> Path:
    """A random 2-layer BERT (hidden 32) with the packaged MiniLM tokenizer and 5 categories."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=len(CATEGORIES),
        id2label=dict(enumerate(CATEGORIES)), label2id={name: i for i, name in enumerate(CATEGORIES)},
    )
    model = BertForSequenceClassification(config).eval()
    path = tmp_path_factory.mktemp("checkpoint")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


SHARED_DATA_DIR = Path(os.environ.get("MODERATION_DATA_DIR") or Path(__file__).resolve().parents[2].parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real training data (../shared/data, or $MODERATION_DATA_DIR); skips when it is absent."""
    if not (SHARED_DATA_DIR / "tweeteval_offensive_train.csv").is_file():
        pytest.skip(f"the shared training data is not at {SHARED_DATA_DIR} (set MODERATION_DATA_DIR)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def tiny_train_val_dir(tmp_path_factory) -> Path:
    """The tiny validation CSVs plus training CSVs of other made-up texts (and one text that is
    also a validation text, which loaders must drop from training)."""
    data_dir = tmp_path_factory.mktemp("train-val")
    for split, suffix in (("val", ""), ("train", " again")):
        tweeteval = [(text + suffix, label) for text, label in TWEETEVAL_ROWS]
        if split == "train":
            tweeteval.append(TWEETEVAL_ROWS[0])  # a duplicate of a validation text
        _write_csv(data_dir / f"tweeteval_offensive_{split}.csv", ("text", "label"), tweeteval)
        _write_csv(data_dir / f"davidson_{split}.csv", ("text", "label"),
                   [(text + suffix, label) for text, label in DAVIDSON_ROWS])
        _write_csv(data_dir / f"jigsaw_{split}.csv", ("text",) + JIGSAW_COLUMNS,
                   [(text + suffix, *flags) for text, flags in JIGSAW_ROWS])
    return data_dir
