"""The CONDA ceiling probe: its threshold table on known scores, and one run end to end on tiny
made-up chat with a random checkpoint (whose scores mean nothing; the plumbing is what is tested)."""

from __future__ import annotations

import numpy as np
import pytest

from training.conda_probes import (
    ceiling_probe,
    confident_disagreements,
    errors_at_half,
    main,
    set_right,
    threshold_table,
)

HEADER = "id,match_id,conversation_id,chat_time,player_slot,text,label,token_labels,token_spans\n"


def test_threshold_table_scores_known_rows_and_skips_unknown_truth():
    truth = np.array([0, 0, 0, 1, 1, 1, -1])
    separable = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9, 0.0])
    header, rule, row = threshold_table(truth, {"s": separable})
    assert header.startswith("| scores |") and rule.startswith("|---")
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # at 0.5 one toxic row (0.4) is missed: F1 0.800 on toxic and 0.857 on clean
    assert cells[:2] == ["s", "0.829"]
    # 0.36 to 0.40 separate the rows; the largest of them is reported
    assert cells[2] == "1.000 (0.40)"
    assert cells[3] == "1.000"


def test_confident_disagreements_need_every_scorer_sure_against_the_label():
    truth = np.array([0, 0, 1, 1, 1, -1])
    first = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.9])
    second = np.array([0.85, 0.5, 0.15, 0.3, 0.1, 0.9])
    # row 0: both sure it is toxic, labelled clean; row 2: both sure it is clean, labelled toxic;
    # rows 1 and 3: one scorer unsure; row 4: the scorers disagree; row 5: no label
    assert confident_disagreements(truth, first, second).tolist() == [True, False, True, False, False, False]
    assert confident_disagreements(truth, first).tolist() == [True, True, True, True, False, False]


def test_setting_disputed_labels_right_removes_exactly_those_errors():
    truth = np.array([0, 1, 1, 0, -1])
    first = np.array([0.9, 0.1, 0.8, 0.6, 0.95])
    second = np.array([0.95, 0.05, 0.7, 0.3, 0.9])
    mean = (first + second) / 2
    disputed = confident_disagreements(truth, first, second)
    assert disputed.tolist() == [True, True, False, False, False]
    assert errors_at_half(truth, mean).tolist() == [True, True, False, False, False]
    right = set_right(truth, disputed)
    assert right.tolist() == [1, 0, 1, 0, -1]
    assert not errors_at_half(right, mean).any()
    assert threshold_table(right, {"mean": mean})[2].split("|")[2].strip() == "1.000"
    # an unlabelled row stays unlabelled even if it were marked disputed
    assert set_right(truth, np.ones(5, dtype=bool)).tolist() == [1, 0, 0, 1, -1]


def _write_conda(data_dir):
    lines = [("need mid", "other"), ("omw top", "other"), ("gg wp", "other"), ("push bot now", "action"),
             ("you are trash", "explicit_toxic"), ("ez mid noob", "implicit_toxic"),
             ("trash team trash", "explicit_toxic"), ("care wards", "other")]
    for split, suffix in (("train", ""), ("val", " again")):
        rows = "".join(f'{i},7,3,{i},2,{text}{suffix},{label},O,"x (O)"\n' for i, (text, label) in enumerate(lines))
        (data_dir / f"conda_{split}.csv").write_text(HEADER + rows, encoding="utf-8")


def test_ceiling_runs_end_to_end_and_needs_a_model(tmp_path, tiny_checkpoint, capsys):
    _write_conda(tmp_path)
    ceiling_probe(tmp_path, str(tiny_checkpoint), threads=1)
    out = capsys.readouterr().out
    assert "conda_val: 8 rows of known toxicity" in out
    names = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert names[:4] == ["scores", "model", "bag of words", "mean of the two"]
    assert "both scorers are sure and agree against the label" in out
    assert out.count("| model |") == 2
    with pytest.raises(SystemExit, match="give --model"):
        main(["ceiling", "--data-dir", str(tmp_path)])
