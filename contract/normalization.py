"""Optional chat-text normalisation, part of a model version's contract.

A model trained on normalised text must be served on text normalised the same way, so the scheme
is named, recorded in the checkpoint's config (`text_normalization`) and in the version's
export.json (`normalization`), and applied by training, evaluation and the gateway through this
one module. Standard library only, but for `game`'s confusables table (imported when used).

`chat` rewrites what varies between sources and players but carries no meaning for moderation:
- HTML entities (`&amp;`, `&#8220;`), common in scraped tweets, are decoded;
- URLs become `http`, user mentions `@user` (TweetEval's own convention);
- a character repeated 3+ times is cut to two (`sooooo` -> `soo`, `!!!!!` -> `!!`);
- leetspeak inside words is spelled out (`1d10t` -> `idiot`, `$h1t` -> `shit`) when the word has
  at least two letters and is not a number with a suffix or a name ending in digits, so `1v1`,
  `5pm`, `3rd`, `mp3` and numbers stay as they are.

`game` (contract/game_text.py) does what `chat` does and also undoes obfuscation: invisible
characters, NFKC, look-alike letters, spaced letters, symbols inside words and more leetspeak,
leaving game codes and scores alone. `offset_normalizer` gives, for `none` and `game`, the
normalised text with the index of the source character of each of its characters (evidence spans).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

NONE = "none"
CHAT = "chat"
GAME = "game"
SCHEMES = (NONE, CHAT, GAME)

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
_REPEATS = re.compile(r"(\D)\1{2,}", re.DOTALL)  # not digits: 1000 stays 1000
_WORD = re.compile(r"[^\s]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_CHARS = frozenset("013457@$")
_CANDIDATE = re.compile(r"[a-z0-9@$]+", re.IGNORECASE)
# numbers with a unit or suffix (5pm, 3rd, 10k, 2v2) and names ending in digits (mp3, covid19)
_NOT_LEET = re.compile(r"\d+[a-z]{1,3}|[a-z]+\d+", re.IGNORECASE)


def normalize_chat(text: str) -> str:
    text = html.unescape(text)
    text = _URL.sub("http", text)
    text = _MENTION.sub("@user", text)
    text = _REPEATS.sub(r"\1\1", text)
    return _WORD.sub(_unleet_word, text)


def _unleet_word(match: re.Match) -> str:
    word = match.group(0)
    core = word.strip(".,!?;:'\"()[]{}*")
    if (word == "@user" or not core or not _CANDIDATE.fullmatch(core)
            or not _LEET_CHARS.intersection(core) or sum(c.isalpha() for c in core) < 2
            or core[0] == "@" or _NOT_LEET.fullmatch(core)):  # a mention, a number, a name: not leetspeak
        return word
    return word.replace(core, core.translate(_LEET))


def _identity(text: str) -> str:
    return text


def _identity_with_offsets(text: str) -> tuple[str, list[int]]:
    return text, list(range(len(text)))


def normalizer(scheme: str | None) -> Callable[[str], str]:
    """The function for a scheme name; None or "" mean none. Raises ValueError for unknown names."""
    scheme = scheme or NONE
    if scheme == NONE:
        return _identity
    if scheme == CHAT:
        return normalize_chat
    if scheme == GAME:
        from contract.game_text import normalize_game

        return normalize_game
    raise ValueError(f"unknown text normalization {scheme!r} (known: {', '.join(SCHEMES)})")


def offset_normalizer(scheme: str | None) -> Callable[[str], tuple[str, list[int]]]:
    """Like `normalizer`, but the function returns (normalised text, source index of each of its
    characters). Raises ValueError for unknown names and for `chat`, which has no offsets (its
    versions can only point at normalised text)."""
    scheme = scheme or NONE
    if scheme == NONE:
        return _identity_with_offsets
    if scheme == GAME:
        from contract.game_text import normalize_game_with_offsets

        return normalize_game_with_offsets
    normalizer(scheme)  # unknown names: the same error as there
    raise ValueError(f"text normalization {scheme!r} has no character offsets (use {GAME!r} or {NONE!r})")
