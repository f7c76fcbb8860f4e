"""moderation-compare-runs: the table over run directories, and its refusals."""

from __future__ import annotations

import json

import pytest

from training.compare_runs import main


def write_run(path, imbalance: str, macro_f1: float, jigsaw_auc: float):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"imbalance": imbalance, "epochs": 1.0, "output_dir": str(path)}))
    per_category = {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 3} for c in ("non_toxic", "threat")}
    binary = {"rows": 10, "precision": 0.9, "recall": 0.8, "f1": 0.85, "macro_f1": 0.8, "auc": 0.9}
    metrics = {"multiclass": {"rows": 6, "macro_f1": macro_f1, "per_category": per_category}, "binary": binary,
               "per_source": {"jigsaw": {"binary": binary | {"auc": jigsaw_auc}}}, "train_seconds": 120.0}
    (path / "metrics.json").write_text(json.dumps(metrics))


def test_table_shows_only_differing_options_and_the_headline_metrics(tmp_path, capsys):
    write_run(tmp_path / "a", "oversample", 0.5, 0.93)
    write_run(tmp_path / "b", "class_weight", 0.625, 0.951)
    out = tmp_path / "table.md"
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | imbalance | train min | macro-F1 | F1 non_toxic | F1 threat |")
    assert "epochs" not in lines[0] and "output_dir" not in lines[0]  # equal in both runs
    assert lines[2].split(" | ")[:4] == ["| a", "oversample", "2.0", "0.500"]
    assert lines[3].split(" | ")[:4] == ["| b", "class_weight", "2.0", "0.625"]
    assert lines[3].endswith("| n/a | 0.951 |")  # no tweeteval_offensive source in these runs
    assert out.read_text().splitlines() == lines


def test_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "running").mkdir()
    with pytest.raises(SystemExit, match="no metrics.json"):
        main([str(tmp_path / "running")])
