"""moderation-compare-stages: the cascade's score vector and decisions on a hand-computed
example, the stage datasets, and the command end to end on a tiny random checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import ALL_TEXTS
from training.data import Example
from training.metrics import binary_metrics, multiclass_metrics
from training.stages import (
    cascade_decisions,
    cascade_scores,
    decision_view,
    main,
    report_markdown,
    stage1_rows,
    stage2_rows,
)

NAMES = ("non_toxic", "insult", "threat")
# row  p_toxic  stage 2 (insult, threat)  label      scores [1-p, p*q]     cascade decision
#  1   0.2      0.7 0.3                   non_toxic  0.8  0.14 0.06        non_toxic (p < .5)
#  2   0.6      0.4 0.6                   threat     0.4  0.24 0.36        threat (non_toxic is on top!)
#  3   0.9      0.2 0.8                   insult     0.1  0.18 0.72        threat
#  4   0.7      0.9 0.1                   non_toxic  0.3  0.63 0.07        insult
P_TOXIC = np.array([0.2, 0.6, 0.9, 0.7])
STAGE2 = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8], [0.9, 0.1]])
ALLOWED = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float32)


def test_cascade_scores_are_p_toxic_times_stage2():
    expected = [[0.8, 0.14, 0.06], [0.4, 0.24, 0.36], [0.1, 0.18, 0.72], [0.3, 0.63, 0.07]]
    np.testing.assert_allclose(cascade_scores(P_TOXIC, STAGE2), expected, atol=1e-6)
    np.testing.assert_allclose(cascade_scores(P_TOXIC, STAGE2).sum(axis=1), 1.0, atol=1e-6)


def test_cascade_decisions_follow_stage1_then_stage2():
    assert cascade_decisions(P_TOXIC, STAGE2).tolist() == [0, 2, 2, 1]
    assert cascade_decisions(np.array([0.5]), np.array([[0.1, 0.9]])).tolist() == [2]  # at the threshold: toxic
    assert cascade_decisions(P_TOXIC, STAGE2, threshold=0.8).tolist() == [0, 0, 2, 0]


def test_metrics_on_the_decision_view_measure_the_cascade():
    scores = cascade_scores(P_TOXIC, STAGE2)
    view = decision_view(scores, cascade_decisions(P_TOXIC, STAGE2))
    np.testing.assert_allclose(view[:, 0], scores[:, 0])  # toxic score = 1 - column 0 = p_toxic
    assert view.argmax(axis=1).tolist() == [0, 2, 2, 1]
    binary = binary_metrics(view, ALLOWED)
    # truth toxic [0, 1, 1, 0], predicted toxic [0, 1, 1, 1]: TP 2, FP 1, FN 0
    assert binary["precision"] == pytest.approx(2 / 3) and binary["recall"] == 1.0
    assert binary["f1"] == pytest.approx(0.8)
    # AUC on p_toxic: positives .6 .9 vs negatives .2 .7 -> 3 of 4 pairs ordered
    assert binary["auc"] == pytest.approx(0.75)
    multi = multiclass_metrics(view, ALLOWED, NAMES)
    # true [0, 2, 1, 0], predicted [0, 2, 2, 1]: F1 non_toxic 2/3, insult 0, threat 2/3
    assert multi["macro_f1"] == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)
    # the raw vector's argmax would call row 2 non_toxic: recall 1/2, not the cascade's
    assert binary_metrics(scores, ALLOWED)["recall"] == 0.5


def test_the_report_says_when_oversampling_added_rows_and_what_it_timed_on():
    report = json.loads((Path(__file__).resolve().parents[2] / "training/reports/stages-full-gpu/report.json").read_text())
    text = report_markdown(report)
    assert "- Training rows: 47189 (46601 loaded, rare categories repeated)" in text
    assert "batch 32, on cuda:0; median" in text and "threads" not in text.split("Inference cost:")[1]


def test_stage_datasets():
    rows = [Example("a", (0,), "s"), Example("b", (1, 2), "s"), Example("c", (0, 1), "s"), Example("d", (4,), "s")]
    assert [(r.text, r.allowed) for r in stage1_rows(rows)] == [("a", (0,)), ("b", (1,)), ("d", (1,))]
    assert [(r.text, r.allowed) for r in stage2_rows(rows)] == [("b", (0, 1)), ("d", (3,))]


def test_compare_stages_end_to_end(tiny_checkpoint, tiny_train_val_dir, tmp_path, capsys):
    main(["--data-dir", str(tiny_train_val_dir), "--base-model", str(tiny_checkpoint), "--output-dir", str(tmp_path),
          "--max-steps", "2", "--batch-size", "4", "--max-length", "16", "--threads", "1",
          "--timing-messages", "8", "--timing-batch-size", "4", "--min-rows-per-category", "0"])
    report = json.loads((tmp_path / "report.json").read_text())
    # 16 training rows (the copy of a validation text dropped), all of known toxicity; toxic:
    # 3 tweeteval offensive + 2 davidson (offensive, hate_speech) + 4 jigsaw
    assert report["data"]["stage_rows"] == {"single_stage": 16, "stage1": 16, "stage2": 9}
    assert report["device"] == "cpu" and "1 threads; median" in (tmp_path / "report.md").read_text()
    assert "- Training rows: 16 of 16 " in (tmp_path / "report.md").read_text()
    two, single = report["approaches"]["two_stage"], report["approaches"]["single_stage"]
    assert two["metrics"]["binary"]["rows"] == single["metrics"]["binary"]["rows"] == 16
    assert two["train"]["stage1"]["categories"] == ["non_toxic", "toxic"]
    assert len(two["train"]["stage2"]["categories"]) == 4
    for timing in (two["inference"], two["inference_stage2_on_every_message"], single["inference"]):
        assert timing["messages"] == 8 and timing["ms_per_message"] > 0
    scores = np.load(tmp_path / "scores.npz")
    np.testing.assert_allclose(scores["two_stage"].sum(axis=1), 1.0, atol=1e-5)
    printed = capsys.readouterr().out
    assert "| two_stage |" in printed and "| single_stage |" in printed and "ms/message" in printed
    written = printed + (tmp_path / "report.json").read_text() + (tmp_path / "report.md").read_text()
    assert not any(text.splitlines()[0] in written for text in ALL_TEXTS)
