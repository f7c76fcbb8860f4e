"""The `chat` text normalisation (described in contract/normalization.py, which names the schemes).

Its patterns are shared with the `game` scheme (contract/game_text.py).
"""

from __future__ import annotations

import html
import re

URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
MENTION = re.compile(r"(?<![\w@])@\w{1,30}")
REPEATS = re.compile(r"(\D)\1{2,}", re.DOTALL)  # not digits: 1000 stays 1000
_WORD = re.compile(r"[^\s]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_CHARS = frozenset("013457@$")
_CANDIDATE = re.compile(r"[a-z0-9@$]+", re.IGNORECASE)
# numbers with a unit or suffix (5pm, 3rd, 10k, 2v2) and names ending in digits (mp3, covid19)
_NOT_LEET = re.compile(r"\d+[a-z]{1,3}|[a-z]+\d+", re.IGNORECASE)


def normalize_chat(text: str) -> str:
    text = html.unescape(text)
    text = URL.sub("http", text)
    text = MENTION.sub("@user", text)
    text = REPEATS.sub(r"\1\1", text)
    return _WORD.sub(_unleet_word, text)


def _unleet_word(match: re.Match) -> str:
    word = match.group(0)
    core = word.strip(".,!?;:'\"()[]{}*")
    if (word == "@user" or not core or not _CANDIDATE.fullmatch(core)
            or not _LEET_CHARS.intersection(core) or sum(c.isalpha() for c in core) < 2
            or core[0] == "@" or _NOT_LEET.fullmatch(core)):  # a mention, a number, a name: not leetspeak
        return word
    return word.replace(core, core.translate(_LEET))
