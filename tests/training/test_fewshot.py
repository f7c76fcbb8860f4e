"""moderation-fewshot: drawing the simulated own samples, and the command end to end on a tiny
random checkpoint (its scores mean nothing; the plumbing and the row bookkeeping do)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.training.conftest import ALL_TEXTS
from training.data import Example
from training.fewshot import draw_own_rows, main, proportional_quotas

NON_TOXIC, PROFANITY, INSULT, HATE, THREAT = range(5)
# exact rows: 40 non_toxic, 20 hate, 10 insult, 2 threat; plus 30 partial {profanity, insult}
COUNTS = {NON_TOXIC: 40, HATE: 20, INSULT: 10, THREAT: 2}
ROWS = [Example(f"{category}-{i}", (category,), "own") for category, k in COUNTS.items() for i in range(k)]
ROWS += [Example(f"partial-{i}", (PROFANITY, INSULT), "davidson") for i in range(30)]


def test_draws_n_exact_rows_stratified_by_category():
    own, rest = draw_own_rows(ROWS, 20, seed=13)
    assert len(own) == 20
    assert all(row.exact is not None for row in own)
    # shares of 20 over 72 exact rows: 11.1, 5.6, 2.8, 0.6 -> floors 11, 5, 2, 0; threat gets its
    # minimum of one; the last row goes to the largest remainder left (insult, .78)
    assert Counter(row.exact for row in own) == {NON_TOXIC: 11, HATE: 5, INSULT: 3, THREAT: 1}


def test_drawn_rows_are_kept_out_of_the_evaluation_rows():
    own, rest = draw_own_rows(ROWS, 20, seed=13)
    assert len(own) + len(rest) == len(ROWS)
    assert not {row.text for row in own} & {row.text for row in rest}
    assert sum(row.exact is None for row in rest) == 30  # partial rows are never drawn
    assert [row for row in ROWS if row in rest] == rest  # input order kept


def test_the_draw_is_fixed_by_the_seed():
    assert draw_own_rows(ROWS, 20, seed=13) == draw_own_rows(ROWS, 20, seed=13)
    assert draw_own_rows(ROWS, 20, seed=13)[0] != draw_own_rows(ROWS, 20, seed=14)[0]


def test_quotas_edge_cases():
    assert proportional_quotas({0: 1786, 3: 678, 2: 183, 1: 62, 4: 10}, 100) == {0: 65, 3: 25, 2: 7, 1: 2, 4: 1}
    assert proportional_quotas({0: 1000, 1: 1, 2: 1}, 3) == {0: 1, 1: 1, 2: 1}  # minimum one each
    assert proportional_quotas({0: 100, 1: 5, 2: 5}, 2) == {0: 2, 1: 0, 2: 0}  # n < categories
    assert proportional_quotas({0: 3, 1: 3}, 6) == {0: 3, 1: 3}
    with pytest.raises(ValueError, match="cannot draw 7 exact-label rows"):
        proportional_quotas({0: 3, 1: 3}, 7)


def test_fewshot_command_end_to_end(tiny_checkpoint, tiny_train_val_dir, tmp_path, capsys):
    main(["--data-dir", str(tiny_train_val_dir), "--base-model", str(tiny_checkpoint), "--output-dir", str(tmp_path),
          "--own-rows", "4", "--max-steps", "2", "--batch-size", "4", "--max-length", "16", "--threads", "1",
          "--min-rows-per-category", "0"])
    report = json.loads((tmp_path / "report.json").read_text())
    data = report["data"]
    # 16 validation rows, 11 of them exact (conftest); 4 drawn as own samples, 12 left to evaluate
    assert data["own_rows"] == 4 and sum(data["own_per_category"].values()) == 4
    assert data["eval_rows"] == 12
    assert data["public_rows"] == 16  # the training copy of a validation text is dropped
    for name in ("own_only", "own_plus_public"):
        approach = report["approaches"][name]
        assert approach["train"]["steps"] == 2
        assert approach["metrics"]["binary"]["rows"] == 12  # the same rows for both
    assert report["approaches"]["own_only"]["train"]["rows"] == 4
    assert report["approaches"]["own_plus_public"]["train"]["rows"] == 4 + 16
    printed = capsys.readouterr().out
    assert "| own_only |" in printed and "| own_plus_public |" in printed
    written = printed + (tmp_path / "report.json").read_text() + (tmp_path / "report.md").read_text()
    assert not any(text.splitlines()[0] in written for text in ALL_TEXTS)
