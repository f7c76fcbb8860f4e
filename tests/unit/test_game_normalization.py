"""The `game` normalisation: each transformation, the game tokens it must leave alone,
idempotence, character offsets, and no exception on any input (issue 14, part 6)."""

from __future__ import annotations

import pytest

from contract.game_text import normalize_game, normalize_game_with_offsets
from contract.normalization import GAME, SCHEMES, normalizer, offset_normalizer

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the dev extra brings hypothesis; without it the property tests skip
    given = None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ｙｏｕ ｎｏｏｂ", "you noob"),  # fullwidth
        ("𝐲𝐨𝐮 𝓷𝓸𝓸𝓫", "you noob"),  # mathematical alphanumerics
        ("ﬁnish him", "finish him"),  # ligature
        ("уоu аrе bаd", "you are bad"),  # Cyrillic look-alikes
        ("ΒΑΝΑΝΑ ροοr", "BANANA poor"),  # Greek look-alikes
        ("тrаsh кid", "trash kid"),  # the small supplement
        ("ІDІОТ", "IDIOT"),  # upper-case look-alikes of I
        ("tr\u200bash t\u200dal\ufeffk", "trash talk"),  # zero-width characters
        ("t̸̢r̵a̷s̶h", "trash"),  # zalgo marks on Latin letters
        ("k y s", "kys"),  # spaced letters
        ("n o o b team", "noob team"),
        ("t.r.a.s.h", "trash"),
        ("l-o-s-e-r!", "loser!"),
        ("r e t a r d", "retard"),
        ("a-i-r", "air"),
        ("tr.ash t~alk", "trash talk"),  # a symbol inside a word
        ("a$$", "ass"),
        ("y0u 4re 4 w0rthl3ss n00b", "you are 4 worthless noob"),  # leetspeak
        ("b!tch |oser", "bitch loser"),
        ("Y0U 4RE N00B", "YOU ARE NOOB"),  # shouted leetspeak
        ("sooooo baaaad fuuuck", "soo bad fuck"),  # repeats: two, or one for letters rarely doubled
        ("5tupid 4sshole", "stupid asshole"),  # a leading digit before a word
        ("n000000b", "noob"),
        ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # entities, as chat (and nested)
        ("@bob see https://example.com/a", "@user see http"),
    ],
)
def test_game_rewrites(text, expected):
    assert normalize_game(text) == expected


@pytest.mark.parametrize(
    "text",
    ["F4G3X", "join F4G3X now", "GG F4G3X", "5v5", "1v1 me", "4vs5", "2k", "gg", "ez mid", "x2", "3rd place",
     "10k gold", "20mins", "3secs", "1shot", "1tap", "meet at 5pm", "push B4 then C7", "(120, 45)", "Soldier76", "Zer0", "4Head",
     "2B and 9S", "R2D2", "top5 pos1 bo3 player1", "mp3", "100hp", "$5", "1000 gold", "u r a", "e.g. this", "a@b.com", "f*ck", "naïve café",
     "привет мир", "καλημέρα", "don't", "mid-lane", "3.5 kda", "gg wp", "line\nbreak"],
)
def test_game_leaves_codes_scores_and_ordinary_text_alone(text):
    assert normalize_game(text) == text


def test_fullwidth_code_is_still_a_code():
    assert normalize_game("Ｆ４Ｇ３Ｘ") == "F4G3X"


IDEMPOTENCE_SAMPLES = ["k y s", "y0u 4re 4 1d10t", "ΒΑΝΑΝΑ", "n000000b", "&amp;amp;", "Y0U 4RE N00B", "a\u0301\u0301",
                       "\u0430\u0301", "f u u u u c k", "sh!!!!t", "a . b . c", "e\u0301\ufb01"]


@pytest.mark.parametrize("text", IDEMPOTENCE_SAMPLES)
def test_normalising_twice_is_normalising_once(text):
    once = normalize_game(text)
    assert normalize_game(once) == once


@pytest.mark.parametrize(
    ("text", "normalized", "offsets"),
    [
        ("k y s", "kys", [0, 2, 4]),
        ("id.iot", "idiot", [0, 1, 3, 4, 5]),
        ("a\u200bb", "ab", [0, 2]),
        ("ﬁx", "fix", [0, 0, 1]),
        ("ｎ00b", "noob", [0, 1, 2, 3]),
        ("baaaad", "bad", [0, 1, 5]),
        ("gooood", "good", [0, 1, 2, 5]),
        ("x &amp; y", "x & y", [0, 1, 2, 7, 8]),
    ],
)
def test_offsets_point_at_the_source_characters(text, normalized, offsets):
    assert normalize_game_with_offsets(text) == (normalized, offsets)


def test_scheme_lookup_and_offsets_for_each_scheme():
    assert GAME in SCHEMES
    assert normalizer("game")("k y s") == "kys"
    assert offset_normalizer("game")("k y s") == ("kys", [0, 2, 4])
    assert offset_normalizer("none")("ab") == ("ab", [0, 1])
    assert offset_normalizer(None)("") == ("", [])
    with pytest.raises(ValueError, match="no character offsets"):
        offset_normalizer("chat")
    with pytest.raises(ValueError, match="unknown text normalization"):
        offset_normalizer("shouty")


def test_never_raises_on_odd_input():
    for text in ["", " ", "\ud800", "a\udfffb", "\x00\x01", "&#0;", "&#x110000;", "&#99999999;", "\u0301", "\U0010ffff",
                 "\u0345" * 5, "\uff9e\uff9f", "\u1100\u1161", "a" * 10_000, "k " * 5_000]:
        normalized, offsets = normalize_game_with_offsets(text)
        assert normalized == normalize_game(text)
        _check_offsets(text, normalized, offsets)


def _check_offsets(text: str, normalized: str, offsets: list[int]) -> None:
    assert len(offsets) == len(normalized)
    assert offsets == sorted(offsets)
    assert all(0 <= i < len(text) for i in offsets)


if given is not None:
    @settings(max_examples=300, deadline=None)
    @given(st.text())
    def test_property_any_unicode_never_raises_and_offsets_agree(text):
        normalized, offsets = normalize_game_with_offsets(text)
        assert normalized == normalize_game(text)
        _check_offsets(text, normalized, offsets)

    CHAT_ALPHABET = st.sampled_from(list("abcdefiklnorstuyABFGIKOSXYZ 0134578@$!|.-_*'?&;#") +
                                    ["ｆ", "𝐮", "а", "о", "с", "ο", "Ι", "\u200b", "\u0301", "ﬁ", "&amp;", " [SEPA] "])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(CHAT_ALPHABET, max_size=40).map("".join))
    def test_property_idempotent_on_chat_like_text(text):
        once = normalize_game(text)
        assert normalize_game(once) == once

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def test_property_idempotent_on_any_unicode(text):
        once = normalize_game(text)
        assert normalize_game(once) == once
