"""Blocklist and allowlist matching: obfuscation, offsets into the text as sent, verdict effects."""

from __future__ import annotations

import pytest

from gateway.lists import ALLOWLIST, BLOCKLIST, compile_entry, find_matches, matching_key
from gateway.policy import Evidence, Policy, load_policy

CATEGORIES = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]
CLEAN = [0.95, 0.02, 0.01, 0.01, 0.01]
TOXIC = [0.05, 0.05, 0.2, 0.0, 0.7]  # threat over its threshold, toxic_score 0.95
KYS = compile_entry(BLOCKLIST, "kys", category="threat", severity="high")
KILL_YOURSELF = compile_entry(BLOCKLIST, r"kill (yo)?ur ?self", pattern=True, category="threat", severity="high")
NOOB = compile_entry(BLOCKLIST, "trash noob", category="insult_harassment", severity="low")
HEADSHOT = compile_entry(ALLOWLIST, "headshot")
ONE_SHOT = compile_entry(ALLOWLIST, "he's one shot")
KILL_HIM = compile_entry(ALLOWLIST, "kill him")
POLICY = Policy({"threat": 0.4}, blocklist=(KYS, KILL_YOURSELF, NOOB), allowlist=(HEADSHOT, ONE_SHOT, KILL_HIM))


def spans(text: str, entries) -> list[str]:
    return [text[m.start:m.end] for m in find_matches(text, entries)]


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("kys", "kys"),
        ("just KYS", "KYS"),
        ("go k y s now", "k y s"),
        ("go K.Y.S now", "K.Y.S"),
        ("k-y-s!!!", "k-y-s"),
        ("u r a k y s", "k y s"),  # inside a run of single letters
        ("\uff4b\uff59\uff53 lol", "\uff4b\uff59\uff53"),  # fullwidth letters
    ],
)
def test_blocklist_terms_match_through_obfuscation_with_offsets_into_the_original(text, matched):
    assert spans(text, [KYS]) == [matched]


@pytest.mark.parametrize("text", ["keys", "skys are blue", "kyshot", "sky", "KYSSS"])  # KYSSS -> "kyss"
def test_terms_do_not_match_inside_other_words(text):
    assert spans(text, [KYS]) == []


def test_patterns_and_multi_word_terms_match_the_normalised_text():
    assert spans("pls Kill   YOURSELF.", [KILL_YOURSELF]) == ["Kill   YOURSELF"]
    assert spans("go kill urself", [KILL_YOURSELF]) == ["kill urself"]
    assert spans("ur a TRASH, noob", [NOOB]) == ["TRASH, noob"]
    assert spans("trashnoob", [NOOB]) == []


def test_leetspeak_goes_through_the_shared_normalisation():
    assert spans("ur a tr4sh n00b", [NOOB]) == ["tr4sh n00b"]


def test_every_match_is_reported_in_text_order():
    text = "kys, really kys"
    assert [(m.start, m.end) for m in find_matches(text, [KYS])] == [(0, 3), (12, 15)]


def test_matching_key_maps_each_character_back():
    key = matching_key("He's  K.Y.S")
    assert key.text == "hes kys"
    assert [key.spans[i] for i in range(len(key.text)) if key.text[i] != " "] == [
        (0, 1), (1, 2), (3, 4), (6, 7), (8, 9), (10, 11)]


def test_apostrophes_are_dropped_in_phrases_and_text():
    assert spans("HE\u2019S ONE SHOT", [ONE_SHOT]) == ["HE\u2019S ONE SHOT"]


def test_blocklist_match_forces_its_category_and_severity():
    decision = POLICY.decide(CLEAN, CATEGORIES, "gg k.y.s")
    assert decision.toxic
    assert decision.flagged == ("threat",)
    assert (decision.severity, decision.action) == ("high", "block")
    assert decision.evidence == (Evidence(3, 8, "threat", 1.0, "blocklist"),)


def test_blocklist_severity_is_a_floor_not_a_ceiling():
    decision = POLICY.decide([0.02, 0.0, 0.9, 0.0, 0.08], CATEGORIES, "trash noob")
    assert decision.flagged == ("insult_harassment",)
    assert decision.severity == "high"  # the model's own score is higher than the entry's "low"


def test_a_message_made_only_of_allowlisted_phrases_is_allowed():
    decision = POLICY.decide(TOXIC, CATEGORIES, "Kill him, he's one shot!!")
    assert not decision.toxic
    assert decision.flagged == ()
    assert (decision.severity, decision.action) == ("none", "allow")
    assert decision.evidence == (Evidence(0, 8, "non_toxic", 1.0, "allowlist"),
                                 Evidence(10, 23, "non_toxic", 1.0, "allowlist"))
    assert decision.toxic_score == pytest.approx(0.95)  # the scores are still reported


def test_allowlisted_phrase_with_other_words_leaves_the_model_in_charge():
    decision = POLICY.decide(TOXIC, CATEGORIES, "headshot, you worthless bot")
    assert decision.toxic
    assert decision.flagged == ("threat",)
    assert decision.evidence == (Evidence(0, 8, "non_toxic", 1.0, "allowlist"),)


def test_blocklist_wins_over_the_allowlist():
    decision = POLICY.decide(CLEAN, CATEGORIES, "headshot kys")
    assert decision.toxic
    assert [e.source for e in decision.evidence] == ["allowlist", "blocklist"]
    assert decision.action == "block"


def test_no_text_means_no_list_matching():
    assert POLICY.decide(CLEAN, CATEGORIES).evidence == ()
    assert not POLICY.decide(CLEAN, CATEGORIES, "").toxic


def test_offsets_stay_exact_deep_into_a_long_message_with_rewrites():
    text = "gg wp team " * 20 + "ur a TR4SH n00b!!!!! sooooo k.y.s"
    found = find_matches(text, [NOOB, KYS])
    assert [text[m.start:m.end] for m in found] == ["TR4SH n00b", "k.y.s"]
    assert found[1].end == len(text)


def test_a_match_inside_a_longer_one_of_the_same_category_is_not_repeated():
    entries = [compile_entry(ALLOWLIST, p) for p in ("gg", "wp", "gg wp", "one shot")] + [ONE_SHOT]
    assert spans("GG WP, he's one shot", entries) == ["GG WP", "he's one shot"]
    blocked = [KYS, compile_entry(BLOCKLIST, "kys", category="insult_harassment", severity="low")]
    assert len(find_matches("kys", blocked)) == 2  # two categories: both are evidence


@pytest.mark.parametrize(
    "text",
    ["go hang yourself", "neck urself lol", "just end yourself already", "pls off yourself", "drink bleach",
     "i know where u live", "I'll find out where you live", "ill leak your address", "gonna leak your information", "im gonna dox you",
     "you're getting swatted", "i'll swat u", "ddos ur router", "i'm coming to your house",
     "we'll show up at your school"],
)
def test_the_shipped_blocklist_flags_self_harm_incitement_and_real_world_threats(text):
    assert find_matches(text, load_policy().blocklist), text


@pytest.mark.parametrize(
    "text",
    ["end your turn", "hang back and farm", "off to the left", "coming to your lane", "go to your base",
     "post your build", "leak mid", "ddos attack on the servers again", "i'll end you in the arena",
     "show up at your spawn", "your address bar is broken", "go to your home base", "going to your house",
     "post your ip so we can join", "coming to your place"],
)
def test_the_shipped_blocklist_leaves_game_talk_alone(text):
    assert find_matches(text, load_policy().blocklist) == [], text
