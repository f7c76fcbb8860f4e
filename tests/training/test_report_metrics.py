"""The evaluation report on the fixed predictions, checked against values computed by hand
(see fixed_predictions.py for the table the numbers below come from)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.training.fixed_predictions import ALLOWED, NAMES, PROBS, SOURCES
from training.evaluate import build_report, expected_calibration_error


@pytest.fixture(scope="module")
def report():
    return build_report(PROBS, ALLOWED, NAMES, SOURCES, scorer_info={"name": "fixed"})


def test_multiclass_uses_exact_rows_only(report):
    # exact rows 1-6: true (nt, nt, prof, prof, ins, ins), predicted (nt, prof, prof, ins, ins, prof)
    multi = report["multiclass"]
    assert multi["rows"] == 6
    assert multi["accuracy"] == pytest.approx(3 / 6)
    per = multi["per_category"]
    # non_toxic: predicted once (row 1, right) -> P 1, R 1/2, F1 2/3
    assert (per["non_toxic"]["precision"], per["non_toxic"]["recall"]) == pytest.approx((1.0, 0.5))
    assert per["non_toxic"]["f1"] == pytest.approx(2 / 3)
    # profanity: predicted on rows 2, 3, 6 (row 3 right) -> P 1/3, R 1/2, F1 2PR/(P+R) = 0.4
    assert (per["profanity"]["precision"], per["profanity"]["recall"]) == pytest.approx((1 / 3, 0.5))
    assert per["profanity"]["f1"] == pytest.approx(0.4)
    # insult: predicted on rows 4, 5 (row 5 right) -> P 1/2, R 1/2, F1 1/2
    assert per["insult"]["f1"] == pytest.approx(0.5)
    assert [per[name]["support"] for name in NAMES] == [2, 2, 2]
    assert multi["macro_f1"] == pytest.approx((2 / 3 + 0.4 + 0.5) / 3)
    assert multi["weighted_f1"] == pytest.approx((2 / 3 + 0.4 + 0.5) / 3)  # equal supports


def test_binary_uses_every_row_with_known_toxicity(report):
    # rows 1-7 (row 8 may or may not be toxic); truth (0, 0, 1, 1, 1, 1, 1);
    # predicted toxic = top is not non_toxic: (0, 1, 1, 1, 1, 1, 1) -> TP 5, FP 1 (row 2), FN 0
    binary = report["binary"]
    assert binary["rows"] == 7
    assert binary["precision"] == pytest.approx(5 / 6)
    assert binary["recall"] == pytest.approx(1.0)
    assert binary["f1"] == pytest.approx(10 / 11)
    # non_toxic as the positive class: row 1 only -> P 1, R 1/2, F1 2/3; macro = (2/3 + 10/11) / 2
    assert binary["macro_f1"] == pytest.approx((2 / 3 + 10 / 11) / 2)
    # toxic scores: negatives 0.2, 0.9; positives 0.8, 0.9, 0.9, 0.8, 0.8. Pairs won (ties 1/2):
    # all 5 against 0.2, against 0.9 two ties -> (5 + 2 * 0.5) / 10
    assert binary["auc"] == pytest.approx(0.6)


def test_per_source_metrics(report):
    a, b = report["per_source"]["A"], report["per_source"]["B"]
    # A: exact rows 1, 3, 5 all right; binary rows 1, 3, 5 (row 8 unknown) all right
    assert (a["multiclass"]["rows"], a["multiclass"]["macro_f1"], a["multiclass"]["accuracy"]) == (3, 1.0, 1.0)
    assert (a["binary"]["rows"], a["binary"]["f1"], a["binary"]["auc"]) == (3, 1.0, 1.0)
    # B: exact rows 2, 4, 6 all wrong; binary rows 2, 4, 6, 7: truth (0, 1, 1, 1), all predicted toxic
    assert (b["multiclass"]["rows"], b["multiclass"]["macro_f1"]) == (3, 0.0)
    assert (b["binary"]["precision"], b["binary"]["recall"]) == pytest.approx((3 / 4, 1.0))
    assert b["binary"]["f1"] == pytest.approx(6 / 7)
    # negative 0.9 against positives 0.9 (tie), 0.8, 0.8 -> 0.5 / 3
    assert b["binary"]["auc"] == pytest.approx(1 / 6)


def test_expected_calibration_error(report):
    # bins of the toxic score: {0.2: truth 0}, {0.8 x3: truth 1, 1, 1}, {0.9 x3: truth 0, 1, 1}
    # (|0 - 0.2| * 1 + |1 - 0.8| * 3 + |2/3 - 0.9| * 3) / 7 = 1.5 / 7
    assert report["calibration"]["ece"] == pytest.approx(1.5 / 7)
    assert math.isnan(expected_calibration_error(PROBS[7:], ALLOWED[7:]))  # row 8: toxicity unknown


def test_source_without_usable_rows_gets_an_empty_section():
    """A source whose labels are all partial has no exact rows; sklearn refuses empty input."""
    report = build_report(PROBS, ALLOWED, NAMES, ["A"] * 6 + ["partial_only"] * 2)
    partial = report["per_source"]["partial_only"]
    assert partial["multiclass"]["rows"] == 0 and math.isnan(partial["multiclass"]["macro_f1"])
    assert partial["binary"]["rows"] == 1  # row 7 is toxic, row 8 unknown
    json.loads(json.dumps(report))  # NaN round-trips through Python's json


def test_report_keeps_the_layout_of_training_metrics(report):
    from training.metrics import evaluate_predictions

    reference = evaluate_predictions(PROBS, ALLOWED, NAMES, SOURCES)
    for key in ("multiclass", "binary", "category_auc", "per_source"):
        assert json.dumps(report[key], sort_keys=True) == json.dumps(reference[key], sort_keys=True)
    assert np.isclose(report["binary"]["auc"], 0.6)
