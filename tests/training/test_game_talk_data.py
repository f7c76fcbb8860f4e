"""training/game_talk_train.csv, game talk written for training (not in the shipped recipe:
decision 0021): loadable, labelled with the shipped categories, and far from every line of the sets
that measure it (the banter sets, the ordinary-chat set and the activation smoke texts)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from gateway.smoke import load_smoke_texts
from loadtest.banter import BANTER_CSV, HOLDOUT_CSV, ORDINARY_CSV, load_banter
from training.categories import load_categories
from training.data import dedup_key, load_extra_file

GAME_TALK_CSV = Path(__file__).resolve().parents[2] / "training" / "game_talk_train.csv"
CATEGORIES = load_categories()
MAX_OVERLAP = 0.5  # token Jaccard; from it up, a training line is a paraphrase of a test line


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", dedup_key(text)))


def test_every_row_loads_as_one_exact_category():
    with open(GAME_TALK_CSV, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["text", "label", "kind"]
    examples = load_extra_file(GAME_TALK_CSV, CATEGORIES)
    assert len(examples) == len(rows) and all(example.exact is not None for example in examples)
    counts = Counter(CATEGORIES.names[example.exact] for example in examples)
    assert set(counts) == set(CATEGORIES.names), counts  # every category has lines
    assert counts["non_toxic"] >= 300 and sum(counts.values()) - counts["non_toxic"] >= 250
    keys = Counter(dedup_key(row["text"]) for row in rows)
    assert [key for key, n in keys.items() if n > 1] == []


def test_no_training_line_paraphrases_a_banter_line():
    measured = [words(line.text) for path in (BANTER_CSV, HOLDOUT_CSV, ORDINARY_CSV) for line in load_banter(path)]
    measured += [words(text) for _, text, _ in load_smoke_texts().labelled()]
    close = []
    for example in load_extra_file(GAME_TALK_CSV, CATEGORIES):
        mine = words(example.text)
        if any(other and len(mine & other) / len(mine | other) >= MAX_OVERLAP for other in measured):
            close.append(example.text)
    assert close == []
