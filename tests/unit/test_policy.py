"""Policy files and score-to-verdict decisions."""

from __future__ import annotations

import pytest

from gateway.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy

CATEGORIES = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]


def write(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_loads_with_its_thresholds():
    policy = load_policy()
    assert policy.source == str(DEFAULT_POLICY_PATH)
    assert policy.default_threshold == 0.5
    assert policy.thresholds == {
        "profanity": 0.5, "insult_harassment": 0.5, "hate_identity_attack": 0.5, "threat": 0.4,
    }
    policy.check_categories(CATEGORIES)  # the shipped policy fits the shipped categories


def test_custom_policy_and_default_threshold(tmp_path):
    policy = load_policy(write(tmp_path, "default_threshold = 0.7\n[thresholds]\nthreat = 1\n"))
    assert policy.threshold("threat") == 1.0
    assert policy.threshold("profanity") == 0.7  # not named: the default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[thresholds\nthreat = 0.4\n", "not valid TOML"),
        ("[thresholds]\nnon_toxic = 0.5\n", "'non_toxic' cannot have a threshold"),
        ("[thresholds]\nthreat = 0\n", "threshold 'threat' must be a number in (0, 1]"),
        ("[thresholds]\nthreat = 1.5\n", "threshold 'threat'"),
        ("[thresholds]\nthreat = -0.1\n", "threshold 'threat'"),
        ("[thresholds]\nthreat = '0.4'\n", "threshold 'threat'"),
        ("[thresholds]\nthreat = true\n", "threshold 'threat'"),
        ("default_threshold = 2\n", "threshold 'default_threshold'"),
        ("thresholds = 0.5\n", "[thresholds] must be a table"),
    ],
)
def test_bad_policy_files_name_the_file_and_the_problem(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.toml")


def test_unknown_categories_are_reported_with_the_models_categories(tmp_path):
    policy = load_policy(write(tmp_path, "[thresholds]\ninsult = 0.5\nsexual = 0.3\nthreat = 0.4\n"))
    with pytest.raises(PolicyError) as exc:
        policy.check_categories(CATEGORIES)
    message = str(exc.value)
    assert "['insult', 'sexual']" in message
    assert "insult_harassment" in message  # what the model does have
    assert str(tmp_path) in message


POLICY = Policy({"profanity": 0.5, "insult_harassment": 0.5, "hate_identity_attack": 0.5, "threat": 0.4})


def test_clean_scores_are_not_toxic():
    decision = POLICY.decide([0.9, 0.04, 0.03, 0.02, 0.01], CATEGORIES)
    assert decision.top_category == "non_toxic"
    assert not decision.toxic
    assert decision.flagged == ()


def test_top_category_and_flagged_most_likely_first():
    decision = POLICY.decide([0.0, 0.0, 0.52, 0.0, 0.48], CATEGORIES)
    assert decision.top_category == "insult_harassment"
    assert decision.toxic
    assert decision.flagged == ("insult_harassment", "threat")
    assert POLICY.decide([0.0, 0.0, 0.45, 0.0, 0.55], CATEGORIES).flagged == ("threat",)


def test_threshold_is_inclusive_at_exactly_the_boundary():
    at = POLICY.decide([0.6, 0.0, 0.0, 0.0, 0.4], CATEGORIES)
    assert at.flagged == ("threat",)
    assert at.toxic
    assert at.top_category == "non_toxic"  # flagged even though non_toxic scores higher
    below = POLICY.decide([0.6000001, 0.0, 0.0, 0.0, 0.3999999], CATEGORIES)
    assert below.flagged == ()
    assert not below.toxic
    assert POLICY.decide([0.5, 0.5, 0.0, 0.0, 0.0], CATEGORIES).flagged == ("profanity",)


def test_non_toxic_is_never_flagged():
    decision = Policy(default_threshold=0.01).decide([0.96, 0.01, 0.01, 0.01, 0.01], CATEGORIES)
    assert "non_toxic" not in decision.flagged
    assert decision.flagged == ("profanity", "insult_harassment", "hate_identity_attack", "threat")


def test_categories_without_a_threshold_use_the_default():
    policy = Policy({"threat": 0.4}, default_threshold=0.3)
    assert policy.decide([0.65, 0.0, 0.0, 0.35, 0.0], CATEGORIES).flagged == ("hate_identity_attack",)
    assert policy.decide([0.65, 0.0, 0.0, 0.0, 0.35], CATEGORIES).flagged == ()  # 0.35 < threat's 0.4


def test_decide_follows_the_models_category_order():
    categories = ["non_toxic", "threat", "spam"]  # a model with another category set
    decision = Policy({"threat": 0.4}).decide([0.1, 0.3, 0.6], categories)
    assert decision.top_category == "spam"
    assert decision.flagged == ("spam",)
