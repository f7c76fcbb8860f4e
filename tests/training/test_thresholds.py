"""Threshold proposals on the fixed predictions, computed by hand, and the policy file they make.

One-vs-rest rows per category (fixed_predictions.py):
  profanity: positives rows 3 (0.7), 4 (0.2); negatives rows 1 (0.1), 2 (0.8), 5 (0.1), 6 (0.6);
             skipped rows 7 and 8 (their label sets contain profanity and something else).
             Precision at each score as the threshold: 0.8 -> 0/1, 0.7 -> 1/2, 0.6 -> 1/3,
             0.2 -> 2/4, 0.1 -> 2/6.
  insult:    positives rows 5 (0.8), 6 (0.2); negatives rows 1, 2, 3, 8 (0.1 each), 4 (0.7);
             skipped row 7. Precision: 0.8 -> 1/1, 0.7 -> 1/2, 0.2 -> 2/3, 0.1 -> 2/7.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.fixed_predictions import ALLOWED, NAMES, PROBS
from training.thresholds import THRESHOLD_CAP, one_vs_rest, proposals_to_json, propose_thresholds, write_policy


def by_category(target: float) -> dict:
    return {p.category: p for p in propose_thresholds(PROBS, ALLOWED, NAMES, target)}


def test_one_vs_rest_rows():
    assert one_vs_rest(ALLOWED, 1).tolist() == [0, 0, 1, 1, 0, 0, -1, -1]
    assert one_vs_rest(ALLOWED, 2).tolist() == [0, 0, 0, 0, 1, 1, -1, 0]


def test_smallest_threshold_that_reaches_the_target():
    proposals = by_category(0.5)
    assert list(proposals) == ["profanity", "insult"]  # never non_toxic
    profanity = proposals["profanity"]  # 0.7 and 0.2 reach 1/2; the smaller keeps more recall
    assert (profanity.threshold, profanity.precision, profanity.recall, profanity.flagged) == (0.2, 0.5, 1.0, 4)
    assert (profanity.positives, profanity.negatives, profanity.skipped, profanity.reached) == (2, 4, 2, True)
    insult = proposals["insult"]  # 0.8, 0.7 and 0.2 reach 1/2
    assert (insult.threshold, insult.recall, insult.flagged) == (0.2, 1.0, 3)
    assert insult.precision == pytest.approx(2 / 3)
    assert (insult.positives, insult.negatives, insult.skipped) == (2, 5, 1)


def test_higher_target_trades_recall_for_precision():
    insult = by_category(0.9)["insult"]  # only 0.8 reaches 0.9
    assert (insult.threshold, insult.precision, insult.recall, insult.flagged) == (0.8, 1.0, 0.5, 1)


def test_unreachable_target_is_capped_with_a_warning(caplog):
    profanity = by_category(0.6)["profanity"]  # best precision anywhere is 1/2
    assert not profanity.reached
    assert profanity.threshold == THRESHOLD_CAP
    assert (profanity.precision, profanity.recall, profanity.flagged) == (None, 0.0, 0)
    assert profanity.best_precision == 0.5
    assert "profanity: no threshold reaches precision 0.60" in caplog.text


def test_written_threshold_is_rounded_only_when_that_flags_the_same_rows():
    names = ("non_toxic", "threat")
    allowed = np.array([[0, 1], [1, 0], [1, 0]])
    near = np.array([[0.4999996, 0.5000004], [0.4999999, 0.5000001], [0.9, 0.1]])
    exact = propose_thresholds(near, allowed, names, 1.0)[0]
    assert exact.threshold == 0.5000004  # 0.5 would also flag the negative at 0.5000001
    apart = np.array([[0.2765433, 0.7234567], [0.5, 0.5], [0.9, 0.1]])
    rounded = propose_thresholds(apart, allowed, names, 1.0)[0]
    assert rounded.threshold == 0.723456 and rounded.precision == 1.0


def test_bad_target_is_refused():
    with pytest.raises(ValueError, match="target precision"):
        propose_thresholds(PROBS, ALLOWED, NAMES, 0.0)


def test_policy_file_loads_in_the_gateway_and_round_trips(tmp_path):
    from gateway.policy import load_policy

    proposals = propose_thresholds(PROBS, ALLOWED, NAMES, 0.6)  # profanity capped, insult 0.2
    path = write_policy(tmp_path / "policy.toml", proposals, default_threshold=0.45, comment="test\nrun")
    policy = load_policy(path)
    assert policy.thresholds == {"profanity": 1.0, "insult": 0.2}
    assert policy.default_threshold == 0.45
    assert "non_toxic" not in path.read_text()
    # the gateway flags exactly the rows the proposal counted (score >= threshold)
    insult_rows = one_vs_rest(ALLOWED, 2) >= 0
    flagged = sum("insult" in policy.decide(list(row), list(NAMES)).flagged for row in PROBS[insult_rows])
    assert flagged == proposals[1].flagged == 3


def test_proposals_as_json():
    result = proposals_to_json(propose_thresholds(PROBS, ALLOWED, NAMES, 0.9), 0.9)
    assert result["target_precision"] == 0.9
    assert result["categories"]["insult"] == {
        "threshold": 0.8, "reached": True, "precision": 1.0, "recall": 0.5, "flagged": 1,
        "positives": 2, "negatives": 5, "skipped": 1, "best_precision": 1.0,
    }
