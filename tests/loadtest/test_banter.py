"""tests/data/game_banter.csv and its blind hold-out are well formed and share no line, and
loadtest.banter counts what it should."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from loadtest.banter import BANTER_CSV, HOLDOUT_CSV, ORDINARY_CSV, BanterLine, Reading, load_banter, summarize

MIN_LINES = {"harmless": 200, "toxic": 100}  # issue 14, part 10


@pytest.mark.parametrize("path", [BANTER_CSV, HOLDOUT_CSV], ids=["banter", "holdout"])
def test_the_csv_has_its_columns_labels_and_counts(path):
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["text", "label", "kind"]
    counts = Counter(row["label"] for row in rows)
    assert set(counts) == set(MIN_LINES)
    assert all(counts[label] >= least for label, least in MIN_LINES.items()), counts
    assert all(row["text"].strip() == row["text"] and row["text"] for row in rows)
    assert all(row["kind"].isidentifier() and row["kind"].islower() for row in rows)


@pytest.mark.parametrize("path", [BANTER_CSV, HOLDOUT_CSV], ids=["banter", "holdout"])
def test_no_line_is_there_twice_and_no_kind_is_in_both_labels(path):
    lines = load_banter(path)
    texts = Counter(line.text.casefold() for line in lines)
    assert [text for text, n in texts.items() if n > 1] == []
    kinds = {label: {line.kind for line in lines if line.label == label} for label in MIN_LINES}
    assert kinds["harmless"].isdisjoint(kinds["toxic"])


def test_the_ordinary_chat_set_is_harmless_lines_only_and_shares_none_with_the_banter_sets():
    lines = load_banter(ORDINARY_CSV)
    assert len(lines) >= 200 and {line.label for line in lines} == {"harmless"}
    assert all(line.text.strip() == line.text and line.text for line in lines)
    assert all(line.kind.isidentifier() and line.kind.islower() for line in lines)
    texts = Counter(line.text.casefold() for line in lines)
    assert [text for text, n in texts.items() if n > 1] == []
    banter = {line.text.casefold() for line in load_banter(BANTER_CSV) + load_banter(HOLDOUT_CSV)}
    assert [text for text in texts if text in banter] == []


def test_a_set_without_toxic_lines_meets_targets_on_its_flagged_rate_alone():
    lines = [BanterLine(f"see you tomorrow {i}", "harmless", "farewell") for i in range(20)]
    clean, flagged = Reading(False, "allow", "non_toxic"), Reading(True, "review", "threat")
    assert summarize(lines, [clean] * 19 + [flagged])["by_toxic_flag"]["meets_targets"]  # 5%
    assert not summarize(lines, [clean] * 18 + [flagged] * 2)["by_toxic_flag"]["meets_targets"]  # 10%


def test_the_holdout_shares_no_line_with_the_first_set():
    first = {line.text.casefold() for line in load_banter(BANTER_CSV)}
    assert [line.text for line in load_banter(HOLDOUT_CSV) if line.text.casefold() in first] == []


def test_summary_rates_per_kind_and_the_lines_it_got_wrong():
    lines = [BanterLine("kill him", "harmless", "kill_talk"), BanterLine("headshot!", "harmless", "weapon"),
             BanterLine("kys", "toxic", "self_harm"), BanterLine("you idiot", "toxic", "insult")]
    readings = [Reading(True, "review", "threat"), Reading(False, "allow", "non_toxic"),
                Reading(True, "block", "threat"), Reading(False, "allow", "non_toxic")]

    report = summarize(lines, readings)

    flag = report["by_toxic_flag"]
    assert flag["harmless_flagged"] == {"all": 0.5, "kill_talk": 1.0, "weapon": 0.0}
    assert flag["toxic_recall"] == {"all": 0.5, "insult": 0.0, "self_harm": 1.0}
    assert not flag["meets_targets"]
    assert report["by_action"]["toxic_recall"]["all"] == 0.5
    assert [w["text"] for w in report["wrong"]["harmless_flagged"]] == ["kill him"]
    assert [w["text"] for w in report["wrong"]["toxic_missed"]] == ["you idiot"]


def test_no_actions_means_no_action_reading():
    lines = [BanterLine("gg", "harmless", "praise")]
    assert summarize(lines, [Reading(False, "", "non_toxic")])["by_action"] is None
