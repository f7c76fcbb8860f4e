"""`python -m training.obfuscate`: seeded and deterministic, every disguise does what it says,
columns and CONDA's [SEPA] joins are kept, and the game normalisation undoes most of it."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

import pytest

from contract.game_text import normalize_game
from training.data import Example
from training.obfuscate import DISGUISES, main, obfuscate_split, obfuscate_text, obfuscated_copies

CLEAN = "good game everyone see you tomorrow on the north lane"


def test_same_seed_same_copy_other_seed_other_copy():
    first = obfuscate_text(CLEAN, random.Random("13|x|0"), 0.5)
    assert first == obfuscate_text(CLEAN, random.Random("13|x|0"), 0.5)
    assert first != CLEAN
    others = {obfuscate_text(CLEAN, random.Random(f"{seed}|x|0"), 0.5) for seed in range(5)}
    assert len(others) > 1


def test_rate_zero_changes_nothing_and_rate_one_every_word():
    assert obfuscate_text(CLEAN, random.Random(1), 0.0) == CLEAN
    counts = Counter()
    obfuscate_text(CLEAN, random.Random(1), 1.0, counts)
    assert sum(counts.values()) == len(CLEAN.split())


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_each_disguise_changes_the_word_and_normalisation_undoes_it(name):
    for seed in range(20):
        disguised = DISGUISES[name]("trash", random.Random(seed))
        assert disguised != "trash"
        if name == "repeat":  # a stretched letter is cut to one or two: trrrrash -> trrash, traaash -> trash
            assert normalize_game(disguised) in {"trash", "ttrash", "trrash", "trassh"}
        else:
            assert normalize_game(disguised).lower() == "trash", (name, seed)


def test_split_copy_keeps_columns_and_sepa_and_is_deterministic(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"id": "1", "text": "nice play [SEPA] see you next game", "label": "other"},
            {"id": "2", "text": "gg wp", "label": "other"},
            {"id": "3", "text": "GG  wp", "label": "other"}]  # the same text for evaluation: copied once
    with open(data / "conda_val.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "label"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    summary = obfuscate_split(data, tmp_path / "a", seed=7, word_rate=1.0)
    obfuscate_split(data, tmp_path / "b", seed=7, word_rate=1.0)
    first = (tmp_path / "a" / "conda_val.csv").read_bytes()
    assert first == (tmp_path / "b" / "conda_val.csv").read_bytes()
    copied = list(csv.DictReader(open(tmp_path / "a" / "conda_val.csv", encoding="utf-8", newline="")))
    assert [row["id"] for row in copied] == ["1", "2"] and [row["label"] for row in copied] == ["other"] * 2
    assert " [SEPA] " in copied[0]["text"] and copied[0]["text"] != rows[0]["text"]
    assert summary["files"]["conda_val.csv"]["rows"] == 2
    assert json.loads((tmp_path / "a" / "obfuscation.json").read_text())["seed"] == 7


def test_the_copy_has_the_rows_evaluation_keeps_across_files_and_joins(tmp_path):
    from training.categories import load_categories
    from training.data import load_split

    data = tmp_path / "data"
    data.mkdir()
    (data / "davidson_val.csv").write_text('text,label\n"nice play\nsee you",neither\n', encoding="utf-8")
    (data / "conda_val.csv").write_text(
        "text,label\nnice play [SEPA] see you,other\ngg wp,other\nGG wp,other\n", encoding="utf-8")
    summary = obfuscate_split(data, tmp_path / "out", seed=3, word_rate=1.0)
    # evaluation reads davidson before conda, so the conda join of the same lines is not a row
    assert summary["files"]["conda_val.csv"]["rows"] == 1 and summary["files"]["davidson_val.csv"]["rows"] == 1
    categories = load_categories()
    clean, disguised = load_split(data, categories, "val"), load_split(tmp_path / "out", categories, "val")
    assert [(e.source, e.allowed) for e in clean] == [(e.source, e.allowed) for e in disguised]


def test_cli_prints_counts_not_texts(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "davidson_val.csv").write_text("text,label\nunusualword here,neither\n", encoding="utf-8")
    main(["--data-dir", str(data), "--out-dir", str(tmp_path / "out"), "--word-rate", "1"])
    out = capsys.readouterr().out
    assert '"rows": 1' in out and "unusualword" not in out


def test_normalization_speed_prints_timings_not_texts(tmp_path, capsys):
    from training.normalization_speed import main as speed_main

    (tmp_path / "conda_val.csv").write_text("id,text,label\n1,unusualword y0u [SEPA] k y s,other\n", encoding="utf-8")
    speed_main(["--data-dir", str(tmp_path), "--repeats", "1"])
    result = json.loads(capsys.readouterr().out)
    assert set(result["us_per_message"]) == {"none", "chat", "game", "game+offsets"}
    assert result["messages"] == 1 and result["changed_by_game"] == 1


NON_TOXIC, INSULT = 0, 2


def ex(text, *allowed, source="own"):
    return Example(text, tuple(allowed), source)


def test_obfuscated_copies_are_seeded_disguises_with_the_original_labels():
    rows = [ex(f"you are a worthless idiot {i}", INSULT) for i in range(30)] + \
        [ex(f"great rotation to the river {i}", NON_TOXIC, source="conda") for i in range(30, 60)]
    copies = obfuscated_copies(rows, 0.5, seed=4)
    assert len(copies) == 30 and copies == obfuscated_copies(rows, 0.5, seed=4)
    assert copies != obfuscated_copies(rows, 0.5, seed=5)
    assert obfuscated_copies(rows, 0.0, seed=4) == []
    disguised = 0
    for copy in copies:  # digits are never disguised, so the number names the original row
        original = rows[int(copy.text.split()[-1])]
        assert (copy.allowed, copy.source) == (original.allowed, original.source)
        disguised += copy.text != original.text
    assert disguised >= 25  # each word is disguised with probability 0.5: few copies stay as they were
    assert {e.allowed for e in copies} == {(INSULT,), (NON_TOXIC,)}  # clean rows are disguised too
