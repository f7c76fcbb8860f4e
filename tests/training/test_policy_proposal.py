"""The whole-policy proposal: the overall threshold for the served flag, source weighting, severity
bands, and a file the gateway loads."""

from __future__ import annotations

import numpy as np
import pytest

from training.policy_proposal import DEFAULT_TEMPLATE, format_whole_policy, propose_overall, served_flags
from training.thresholds import propose_thresholds

NAMES = ("non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat")
CLEAN, TOXIC = [1, 0, 0, 0, 0], [0, 1, 1, 0, 0]  # label masks: non_toxic; toxic of unknown kind


def rows(*specs):
    """(toxic_score split evenly over two toxic categories, label mask, source) per row."""
    probs = np.array([[1 - t, t / 2, t / 2, 0.0, 0.0] for t, _, _ in specs])
    return probs, np.array([m for _, m, _ in specs], dtype=np.float32), [s for _, _, s in specs]


def overall(probs, masks, sources, **options):
    options = {"target_precision": 0.9, "block_precision": 0.97, "game_chat_weight": 2.0, **options}
    return propose_overall(probs, masks, NAMES, sources, [], **options)


def test_served_flag_is_the_overall_score_or_any_category():
    probs = np.array([[0.4, 0.3, 0.3, 0, 0], [0.9, 0.1, 0.0, 0, 0], [0.7, 0.0, 0.3, 0, 0]])
    assert served_flags(probs, 0.5, {}).tolist() == [True, False, False]
    assert served_flags(probs, 0.5, {2: 0.25}).tolist() == [True, False, True]


def test_overall_threshold_catches_split_scores_the_argmax_misses():
    # every toxic row has its score split: non_toxic stays the top category
    probs, masks, sources = rows(*[(0.6, TOXIC, "conda")] * 3, *[(0.1, CLEAN, "conda")] * 3)
    result = overall(probs, masks, sources)
    assert 0.1 < result.toxic_threshold <= 0.6
    assert result.objective == pytest.approx(1.0)
    assert result.best_single_objective == pytest.approx(1.0)
    conda = result.per_source["conda"]
    assert (conda["served"]["precision"], conda["served"]["recall"]) == (1.0, 1.0)
    assert (conda["argmax"]["precision"], conda["argmax"]["recall"]) == (None, 0.0)


def test_game_chat_weight_decides_between_sources_that_disagree():
    # conda separates at (0.3, 0.5], the other source at (0.55, 0.8]
    probs, masks, sources = rows((0.5, TOXIC, "conda"), (0.5, TOXIC, "conda"), (0.3, CLEAN, "conda"),
                                 (0.3, CLEAN, "conda"), (0.8, TOXIC, "olid"), (0.8, TOXIC, "olid"),
                                 (0.55, CLEAN, "olid"), (0.55, CLEAN, "olid"))
    assert 0.3 < overall(probs, masks, sources, game_chat_weight=2.0).toxic_threshold <= 0.5
    assert 0.55 < overall(probs, masks, sources, game_chat_weight=0.5).toxic_threshold <= 0.8
    assert overall(probs, masks, sources).source_weights == {"conda": 2.0, "olid": 1.0}


def test_severity_bands_increase_and_unreachable_ones_are_left_out(caplog):
    scores = [0.95, 0.85, 0.8, 0.7, 0.65, 0.1, 0.2, 0.75]
    labels = [TOXIC] * 5 + [CLEAN] * 3  # the clean 0.75 row keeps precision under 1 below 0.8
    probs, masks, sources = rows(*[(s, m, "conda") for s, m in zip(scores, labels)])
    bands = overall(probs, masks, sources, target_precision=0.8, block_precision=1.0).bands
    assert list(bands) == ["low", "medium", "high"]
    assert bands["low"] < bands["medium"] < bands["high"]
    assert bands["high"] == 0.8  # the smallest score with precision 1
    probs[0] = [0.0, 0.5, 0.5, 0.0, 0.0]
    masks[0] = CLEAN  # the top-scored row is clean: precision 1 is never reached
    no_high = overall(probs, masks, sources, target_precision=0.8, block_precision=1.0).bands
    assert list(no_high) == ["low", "medium"]
    assert "severity high: no toxic_score" in caplog.text


def test_medium_falls_halfway_when_the_target_is_reached_at_low():
    probs, masks, sources = rows(*[(0.9, TOXIC, "conda")] * 3, *[(0.1, CLEAN, "conda")] * 3)
    bands = overall(probs, masks, sources, target_precision=0.5, block_precision=1.0).bands
    assert bands["high"] == 0.9  # every toxic row: precision 1
    assert bands["medium"] == round((bands["low"] + 0.9) / 2, 3)  # precision 0.5 is reached at low already


def test_a_source_with_one_class_only_does_not_steer_the_threshold():
    probs, masks, sources = rows((0.6, TOXIC, "conda"), (0.2, CLEAN, "conda"),
                                 *[(0.15, TOXIC, "hate")] * 5)  # an all-toxic source would pull it down
    result = overall(probs, masks, sources)
    assert 0.2 < result.toxic_threshold <= 0.6
    assert result.per_source["hate"]["served"]["recall"] == 0.0


@pytest.mark.parametrize("template", [DEFAULT_TEMPLATE, None])
def test_the_written_policy_loads_in_the_gateway(tmp_path, template):
    from gateway.policy import load_policy

    probs, masks, sources = rows(*[(0.6, TOXIC, "conda")] * 3, *[(0.1, CLEAN, "conda")] * 3,
                                 (0.9, TOXIC, "jigsaw"), (0.2, CLEAN, "jigsaw"))
    proposals = propose_thresholds(probs, masks, NAMES, 0.9)
    result = overall(probs, masks, sources)
    path = tmp_path / "policy.toml"
    path.write_text(format_whole_policy(result, proposals, default_threshold=0.5, template=template,
                                        comment="test"), encoding="utf-8")
    policy = load_policy(path)
    policy.check_categories(list(NAMES))
    assert policy.toxic_threshold == result.toxic_threshold
    assert policy.thresholds == {p.category: p.threshold for p in proposals}
    assert policy.bands == result.bands
    assert policy.actions == {"none": "allow", "low": "review", "medium": "review", "high": "block"}
    assert bool(policy.blocklist) == bool(policy.allowlist) == (template is not None)
