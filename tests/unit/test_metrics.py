"""Metrics on a small fixed prediction set, expected values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import binary_labels, category_aucs, evaluate_predictions, exact_labels

NAMES = ["non_toxic", "profanity", "insult_harassment"]

# row: (allowed mask, probs) -> exact label, multiclass prediction, binary truth
MASKS = np.array([
    [1, 0, 0],  # exact non_toxic, predicted non_toxic
    [1, 0, 0],  # exact non_toxic, predicted profanity
    [0, 1, 0],  # exact profanity, predicted profanity
    [0, 0, 1],  # exact insult, predicted insult
    [0, 0, 1],  # exact insult, predicted non_toxic
    [0, 1, 1],  # partial (some toxic kind): not multiclass, binary toxic, predicted non_toxic
    [1, 1, 0],  # non_toxic or profanity: toxicity unknown, in neither metric
], dtype=np.float32)
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.3, 0.5],
    [0.6, 0.1, 0.3],
    [0.9, 0.05, 0.05],
    [0.1, 0.1, 0.8],
], dtype=np.float32)


def test_exact_and_binary_labels():
    assert exact_labels(MASKS).tolist() == [0, 0, 1, 2, 2, -1, -1]
    assert binary_labels(MASKS).tolist() == [0, 0, 1, 1, 1, 1, -1]


def test_multiclass_uses_only_exact_rows():
    report = evaluate_predictions(PROBS, MASKS, NAMES)["multiclass"]
    # y_true [0,0,1,2,2], y_pred [0,1,1,2,0]
    assert report["rows"] == 5
    assert report["accuracy"] == pytest.approx(3 / 5)
    per = report["per_category"]
    assert per["non_toxic"] == pytest.approx({"precision": 1 / 2, "recall": 1 / 2, "f1": 1 / 2, "support": 2})
    assert per["profanity"] == pytest.approx({"precision": 1 / 2, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per["insult_harassment"] == pytest.approx({"precision": 1.0, "recall": 1 / 2, "f1": 2 / 3, "support": 2})
    assert report["macro_f1"] == pytest.approx((1 / 2 + 2 / 3 + 2 / 3) / 3)
    assert report["weighted_f1"] == pytest.approx((2 * 1 / 2 + 1 * 2 / 3 + 2 * 2 / 3) / 5)


def test_binary_counts_partial_toxic_rows():
    report = evaluate_predictions(PROBS, MASKS, NAMES)["binary"]
    # y_true [0,0,1,1,1,1], predicted toxic (top != non_toxic) [0,1,1,1,0,0]: TP 2, FP 1, FN 2
    assert report["rows"] == 6
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 4)
    assert report["f1"] == pytest.approx(4 / 7)
    assert report["macro_f1"] == pytest.approx((4 / 7 + 2 / 5) / 2)  # clean class: TP 1, FP 2, FN 1
    # toxic score 1 - p(non_toxic): clean {.3, .7}, toxic {.9, .8, .4, .1}: 5 of 8 pairs ordered
    assert report["auc"] == pytest.approx(5 / 8)


def test_categories_without_exact_rows_do_not_count_in_macro_f1():
    masks = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32)
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    report = evaluate_predictions(probs, masks, NAMES)["multiclass"]
    # non_toxic f1 1, profanity f1 0; insult (no support) is left out, not averaged in as 0
    assert report["macro_f1"] == pytest.approx(0.5)
    assert report["per_category"]["insult_harassment"]["support"] == 0


def test_category_auc_ranks_exact_rows_against_rows_without_the_category():
    aucs = category_aucs(PROBS, MASKS, NAMES)
    # profanity: exact row 2 (.8) against rows 0, 1, 3, 4 (.2, .6, .3, .1); rows 5 and 6 allow it: skipped
    assert aucs["profanity"] == pytest.approx(1.0)
    # insult: exact rows 3, 4 (.5, .3) against rows 0, 1, 2, 6 (.1, .1, .1, .8): 6 of 8 pairs ordered
    assert aucs["insult_harassment"] == pytest.approx(6 / 8)
    assert list(aucs) == NAMES[1:]
    assert math.isnan(category_aucs(PROBS[:2], MASKS[:2], NAMES)["profanity"])


def test_auc_is_nan_with_one_class():
    masks = np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32)
    report = evaluate_predictions(PROBS[:2], masks, NAMES)["binary"]
    assert math.isnan(report["auc"])
    assert report["recall"] == pytest.approx(1 / 2)


def test_per_source_reports():
    sources = ["a", "a", "a", "b", "b", "b", "b"]
    report = evaluate_predictions(PROBS, MASKS, NAMES, sources=sources)
    assert sorted(report["per_source"]) == ["a", "b"]
    assert report["per_source"]["a"]["multiclass"]["rows"] == 3
    assert report["per_source"]["a"]["multiclass"]["accuracy"] == pytest.approx(2 / 3)
    assert report["per_source"]["b"]["binary"]["rows"] == 3  # rows 4-6; row 7 is unknown
    assert report["per_source"]["b"]["binary"]["recall"] == pytest.approx(1 / 3)
