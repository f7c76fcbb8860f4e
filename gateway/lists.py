"""Operator lists: blocklist terms/patterns and allowlisted game phrases, matched on a normalised
copy of the message whose every character maps back to a span of the text as sent.

The copy: NFKC and case folding, then the chat normalisation of `contract.normalization` (so its
obfuscation handling also applies to the lists), a few words at a time, and where it rewrote
something, word by word aligned back to the original characters (difflib where lengths differ); apostrophes are dropped ("he's" -> "hes") and other symbols split words. Runs of single letters ("k y s", "k.y.s") are joined into one word, and a list entry may
match anywhere inside such a run, since its own word boundaries are gone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

from contract.normalization import GAME, normalizer

BLOCKLIST = "blocklist"
ALLOWLIST = "allowlist"

_normalize_text = normalizer(GAME)  # obfuscation undone as the model sees it
# a few words at a time, so a rewrite is aligned word by word only where one happened
_CHUNK = re.compile(r"\s*(?:\S{1,64}\s*){1,12}|\S+\s*")
_WORD = re.compile(r"\S+|\s+")
_PIECE = re.compile(r"[^\W_]+")  # letters and digits
_APOSTROPHES = re.compile(r"['\u2019\u02bc`]")


@dataclass(frozen=True)
class ListEntry:
    """One blocklist or allowlist entry, compiled for the normalised copy."""

    source: str  # BLOCKLIST or ALLOWLIST
    text: str  # the term, phrase or pattern as the operator wrote it
    regex: re.Pattern
    category: str = ""
    severity: str = ""


@dataclass(frozen=True)
class ListMatch:
    start: int  # character offsets into the text as sent, [start, end)
    end: int
    entry: ListEntry


@dataclass(frozen=True)
class MatchKey:
    """The normalised copy: words separated by single spaces; spans[i] is the [start, end) of
    the original text that character i came from."""

    text: str
    spans: tuple[tuple[int, int], ...]
    in_run: tuple[bool, ...]  # the character belongs to a joined run of single letters

    def at_boundary(self, start: int, end: int) -> bool:
        before = start == 0 or self.text[start - 1] == " " or (self.in_run[start - 1] and self.in_run[start])
        after = end == len(self.text) or self.text[end] == " " or (self.in_run[end - 1] and self.in_run[end])
        return before and after


def normalize_entry(text: str) -> str:
    """A term or phrase as it appears in the normalised copy (what a match must equal)."""
    return matching_key(text).text


def compile_entry(source: str, text: str, *, pattern: bool = False, category: str = "", severity: str = "") -> ListEntry:
    """Raises ValueError (re.error) for a bad pattern or one that would match nothing at all."""
    regex = re.compile(text if pattern else re.escape(normalize_entry(text)))
    if regex.pattern == "" or regex.fullmatch(""):
        raise ValueError("it matches the empty string (an empty term or a pattern like 'a*')")
    return ListEntry(source, text, regex, category, severity)


def find_matches(text: str | MatchKey, entries) -> list[ListMatch]:
    """Every whole-word match of every entry, in text order, less those inside a longer match of
    the same category; `text` may be its matching_key()."""
    if not entries:
        return []
    key = text if isinstance(text, MatchKey) else matching_key(text)
    matches = []
    for entry in entries:
        position = 0
        while (found := entry.regex.search(key.text, position)) is not None:
            start, end = found.span()
            if end > start and key.at_boundary(start, end):
                matches.append(ListMatch(key.spans[start][0], key.spans[end - 1][1], entry))
                position = end
            else:
                position = start + 1
    return sorted(_drop_contained(matches), key=lambda m: (m.start, m.end))


def _drop_contained(matches: list[ListMatch]) -> list[ListMatch]:
    """A match inside a longer one of the same category adds nothing: "gg wp" alone, not also
    "gg" and "wp"."""
    def inside(inner: ListMatch, outer: ListMatch) -> bool:
        return (outer.start <= inner.start and inner.end <= outer.end and inner.entry.category == outer.entry.category
                and outer.end - outer.start > inner.end - inner.start)

    return [m for m in matches if not any(inside(m, other) for other in matches)]


def only_allowlisted(text: str, allow_matches: list[ListMatch]) -> bool:
    """True when the message has at least one allowlisted phrase and no other letters or digits."""
    if not allow_matches:
        return False
    covered = bytearray(len(text))
    for match in allow_matches:
        covered[match.start:match.end] = b"\x01" * (match.end - match.start)
    return not any(not covered[i] and char.isalnum() for i, char in enumerate(text))


def matching_key(text: str) -> MatchKey:
    pieces = _join_single_letters(_pieces(text))
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    in_run: list[bool] = []
    for piece_text, piece_spans, run in pieces:
        if chars:
            chars.append(" ")
            spans.append((piece_spans[0][0], piece_spans[0][0]))
            in_run.append(False)
        chars.extend(piece_text)
        spans.extend(piece_spans)
        in_run.extend([run] * len(piece_text))
    return MatchKey("".join(chars), tuple(spans), tuple(in_run))


def _pieces(text: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """Letter-and-digit runs of the normalised text, each character with its original span."""
    pieces = []
    for chunk in _CHUNK.finditer(text):
        normalized, spans = _strip_apostrophes(*_normalize(chunk.group(), chunk.start()))
        pieces += [(m.group(), spans[m.start():m.end()]) for m in _PIECE.finditer(normalized)]
    return pieces


def _normalize(text: str, offset: int) -> tuple[str, list[tuple[int, int]]]:
    """NFKC + case folding per character, then the shared chat normalisation, aligned back to
    the original characters (it may cut repeats or rewrite leetspeak)."""
    if text.isascii():  # the common case: folding keeps one character per character
        before, folded_spans = text.lower(), [(offset + i, offset + i + 1) for i in range(len(text))]
    else:
        folded, folded_spans = [], []
        for i, char in enumerate(text):
            for out in unicodedata.normalize("NFKC", char).casefold():
                folded.append(out)
                folded_spans.append((offset + i, offset + i + 1))
        before = "".join(folded)
    if _normalize_text(before) == before:
        return before, folded_spans
    text_out, spans = [], []
    for word in _WORD.finditer(before):  # word by word keeps each alignment short
        after = _normalize_text(word.group()) if not word.group().isspace() else word.group()
        text_out.append(after)
        spans += _align(word.group(), after, folded_spans[word.start():word.end()])
    return "".join(text_out), spans


def _align(before: str, after: str, before_spans: list) -> list[tuple[int, int]]:
    """The original span of each character of `after`, a rewrite of `before`."""
    if len(after) == len(before):  # one for one (leetspeak, case)
        return before_spans
    spans = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if op == "equal":
            spans.extend(before_spans[i1:i2])
        elif op != "delete":  # replaced or inserted characters: the original stretch they replace
            first, last = before_spans[min(i1, len(before) - 1)], before_spans[max(min(i2, len(before)) - 1, 0)]
            spans.extend([(first[0], max(last[1], first[1]))] * (j2 - j1))
    return spans


def _strip_apostrophes(text: str, spans: list) -> tuple[str, list]:
    if not _APOSTROPHES.search(text):
        return text, spans
    keep = [i for i, char in enumerate(text) if not _APOSTROPHES.match(char)]
    return "".join(text[i] for i in keep), [spans[i] for i in keep]


def _join_single_letters(pieces) -> list[tuple[str, list, bool]]:
    """Runs of two or more one-character pieces become one piece: "k y s" -> "kys"."""
    joined: list[tuple[str, list, bool]] = []
    run: list = []
    for piece in [*pieces, None]:
        if piece is not None and len(piece[0]) == 1:
            run.append(piece)
            continue
        if len(run) >= 2:
            joined.append(("".join(p[0] for p in run), [s for p in run for s in p[1]], True))
        elif run:
            joined.append((run[0][0], run[0][1], False))
        run = []
        if piece is not None:
            joined.append((piece[0], piece[1], False))
    return joined
