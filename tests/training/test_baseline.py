"""The bag-of-words baseline learns one source's toxic vs non_toxic and scores like a model."""

from __future__ import annotations

import pytest

from tests.training.test_game_chat_source import HEADER
from training.baseline import BagOfWordsScorer, BaselineError
from training.categories import load_categories

CLEAN = ["gg wp", "push mid now", "nice ult", "buy wards please", "report the afk", "good luck have fun"]
TOXIC = ["you are trash noob", "uninstall you idiot", "trash team idiot", "you idiot noob"]


def _write(path, rows):
    lines = [f"{i},1,1,0,0,{text},{label},O,O" for i, (text, label) in enumerate(rows)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")


def test_baseline_scores_toxic_chat_above_clean_chat(tmp_path):
    rows = [(text, "other") for text in CLEAN] * 3 + [(text, "explicit_toxic") for text in TOXIC] * 3
    _write(tmp_path / "conda_train.csv", rows)
    scorer = BagOfWordsScorer("conda", tmp_path, load_categories())
    scores = scorer.score(["idiot trash", "gg wp push mid"])
    assert scores.shape == (2, len(scorer.labels)) and scorer.labels[0] == "non_toxic"
    assert scores.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert scores[0, 0] < 0.5 < scores[1, 0]  # non_toxic score: low for the insult, high for the call


def test_baseline_needs_both_classes(tmp_path):
    _write(tmp_path / "conda_train.csv", [(text, "other") for text in CLEAN])
    with pytest.raises(BaselineError, match="no toxic and non-toxic"):
        BagOfWordsScorer("conda", tmp_path, load_categories())
