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

from collections.abc import Callable

from contract.chat_text import normalize_chat
from contract.game_text import load_confusables, normalize_game, normalize_game_with_offsets

NONE = "none"
CHAT = "chat"
GAME = "game"
SCHEMES = (NONE, CHAT, GAME)

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
        load_confusables()  # now, not on the first message that needs it
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
        load_confusables()
        return normalize_game_with_offsets
    normalizer(scheme)  # unknown names: the same error as there
    raise ValueError(f"text normalization {scheme!r} has no character offsets (use {GAME!r} or {NONE!r})")
