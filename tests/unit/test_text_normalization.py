"""Chat text normalisation: what it rewrites, what it must leave alone, and scheme lookup."""

from __future__ import annotations

import pytest

from contract.normalization import normalize_chat, normalizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("you 1d10t!!!!!", "you idiot!!"),
        ("sooooo good", "soo good"),
        ("$h1t happens", "shit happens"),
        ("n00b", "noob"),
        ("h4x0r.", "haxor."),
        ("@bob lol @user", "@user lol @user"),
        ("see https://example.com/a?b=1 ok www.example.org", "see http ok http"),
        ("Tom &amp; Jerry &#8220;hi&#8221;", "Tom & Jerry \u201chi\u201d"),
    ],
)
def test_chat_rewrites(text, expected):
    assert normalize_chat(text) == expected


@pytest.mark.parametrize(
    "text",
    ["gg 1v1 me 2v2", "I have 300 gold", "R2D2", "email a@b.com", "ok", "", "naïve café \u4f60\u597d", "line\nbreak",
     "meet at 5pm", "3rd place", "send the mp3", "covid19", "10000 gold"],
)
def test_chat_leaves_numbers_and_ordinary_text_alone(text):
    assert normalize_chat(text) == text


def test_chat_is_idempotent_on_typical_chat():
    for text in ["you 1d10t!!!!!", "@bob sooooo https://x.io", "n00b &amp; h4x0r"]:
        once = normalize_chat(text)
        assert normalize_chat(once) == once


def test_scheme_lookup():
    assert normalizer(None)("n00b") == "n00b"
    assert normalizer("none")("n00b") == "n00b"
    assert normalizer("chat")("n00b") == "noob"
    with pytest.raises(ValueError, match="unknown text normalization 'shouty'"):
        normalizer("shouty")
