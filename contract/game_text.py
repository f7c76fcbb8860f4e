"""The `game` text normalisation: undo the obfuscation players use to get abuse past a filter.

Issue 14, part 6. It does what `chat` does (HTML entities, URLs, mentions, repeats, leetspeak)
and also: removes zero-width and other invisible format characters, applies Unicode NFKC
(fullwidth and mathematical letters, ligatures), maps look-alike letters of other scripts to
Latin through Unicode's confusables table, joins spaced letters (`k y s`, `f.u.c.k`), drops a
symbol inside a word (`id.iot`), spells out leetspeak (`y0u 4re`, `a$$`) and cuts stretched
letters (to one for letters English rarely doubles: `fuuuck`, to two otherwise: `gooood`).
Game codes, scores and IDs stay as they are (`F4G3X`, `5v5`, `1v1`, `2k`, `3rd`, `10k`, `x2`,
`B4`, `top5`, `1shot`, `Soldier76`, `4Head`); only a message all in capitals with two or more
code-like words is read as shouted leetspeak (`Y0U 4RE 1D10T`). `f*ck`-style masking is left
alone: the model sees those forms in its data. Measurements: docs/performance.md.

The confusables table comes from `confusable-homoglyphs`, which ships Unicode's confusables.txt
(UTS #39) as data; only look-alikes of a single ASCII letter are used, plus a tiny supplement of
Cyrillic and Greek lower-case letters that Unicode lists against Latin small capitals. A word is
mapped only when it already holds an ASCII letter or every letter in it has a Latin look-alike,
so ordinary Cyrillic and Greek words stay as they are.

Every step is written once as a rewrite of regex matches that also says which source character
each output character came from, so `normalize_game_with_offsets` and `normalize_game` cannot
drift apart. Order matters for idempotence: entities first (they can produce any character),
repeats last (leetspeak can create them).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from contract import chat_text as chat

Rewrite = Callable[[re.Match], "tuple[str, list[int] | None] | None"]

# Unicode Default_Ignorable format characters: soft hyphen, zero-width space/joiners, bidi marks,
# word joiner, invisible operators, BOM, variation selectors, combining grapheme joiner, tags.
_INVISIBLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]+")
_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
_NON_SPACE = re.compile(r"\S+")
# words worth a Python call: with a non-ASCII character, an inner symbol, a leetspeak character
_NON_ASCII_WORD = re.compile(r"\S*[^\x00-\x7f]\S*")
_SYMBOL_WORD = re.compile(r"\S*[A-Za-z][._~^#%+=][A-Za-z]\S*")
_LEET_WORD = re.compile(r"\S*[013457@$!|]\S*")
# combining marks left on a Latin letter after NFKC: accents the tokenizer drops anyway, and zalgo
_MARKS_ON_LATIN = re.compile("(?<=[A-Za-z])[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
# 3+ single letters with one separator, the same each time: "k y s", "f.u.c.k", "n-o-o-b"
_SPACED = re.compile(r"(?<![A-Za-z0-9'])[A-Za-z]([ ._\-])[A-Za-z](?:\1[A-Za-z])+(?![A-Za-z0-9])")
# one-letter chat words: "u r a" stays; a run with other letters is joined whole ("u r a k y s" -> "urakys")
_STANDALONE_LETTERS = frozenset("aiurAIUR")
_RARELY_DOUBLED = frozenset("aiuyhkwjqvxAIUYHKWJQVX")  # aa, ii, uu, yy... are rare inside English words
_SYMBOL_IN_WORD = re.compile(r"(?<=[A-Za-z])[._~^#%+=](?=[A-Za-z])")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "!": "i", "|": "l"})
_LEET_UPPER = str.maketrans({"0": "O", "1": "I", "3": "E", "4": "A", "5": "S", "7": "T",
                             "@": "A", "$": "S", "!": "I", "|": "L"})  # Y0U -> YOU, not YoU
_LEET_CHARS = frozenset("013457@$!|")
_LEET_SYMBOLS = frozenset("@$!|")
_LEET_CANDIDATE = re.compile(r"[A-Za-z0-9@$!|]+")
_EDGE_PUNCTUATION = ".,!?;:'\"()[]{}*<>"
# numbers with a unit or an ordinal: 3rd, 2k, 5pm, 100hp; several digits or letters: 10mins, 3secs
_NUMBER_SUFFIXES = frozenset(["st", "nd", "rd", "th", "k", "m", "b", "x", "v", "s", "h", "d", "am", "pm", "hp", "mp",
                              "xp", "ms", "fps", "kg", "km", "lb", "min", "hr", "hrs", "gb", "mb", "tb", "vs", "p"])
_DIGITS_LETTERS = re.compile(r"(\d+)([A-Za-z]+)")
_NAME_DIGITS = re.compile(r"[A-Za-z]+\d+")  # x2, b4, mp3, Soldier76
_VERSUS = re.compile(r"\d+(?:[A-Za-z]{1,2}\d+)+")  # 5v5, 1v1v1, 3x3, 4vs5
_CAMEL_NAME = re.compile(r"\d+[A-Z][a-z]+")  # 4Head, 5Head
_CODE = re.compile(r"[A-Z0-9]+")  # F4G3X: a lobby code, unless the whole message is shouted leetspeak
_LOWER = re.compile(r"[a-z]")
_LATIN = re.compile(r"[A-Za-z]")
# Unicode lists these against Latin small capitals or not at all; they pass for Latin in chat.
_CONFUSABLE_SUPPLEMENT = {"к": "k", "т": "t", "н": "h", "в": "b", "м": "m", "п": "n",
                          "є": "e", "κ": "k", "τ": "t", "ε": "e", "η": "n", "ω": "w", "χ": "x", "β": "b", "μ": "u",
                          "ς": "c"}  # NFKC turns the lunate sigma, a look-alike of c, into a final sigma


def normalize_game(text: str) -> str:
    """The `game` normalisation of one message (see the module docstring)."""
    return _run(text, None)[0]


def normalize_game_with_offsets(text: str) -> tuple[str, list[int]]:
    """The `game` normalisation and, for each of its characters, the index of the character of
    `text` it came from (non-decreasing; a character made from several maps to the first).

    Returns:
        (normalised text, offsets) with len(offsets) == len(normalised text); the text is
        exactly `normalize_game(text)`.
    """
    return _run(text, list(range(len(text))))


def _run(text: str, offsets: list[int] | None) -> tuple[str, list[int] | None]:
    text, offsets = _unescape_entities(text, offsets)
    if not text.isascii():
        text, offsets = _sub(_INVISIBLE, _delete, text, offsets)
        text, offsets = _nfkc(text, offsets)
        text, offsets = _sub(_NON_ASCII_WORD, _to_latin, text, offsets)
        text, offsets = _sub(_MARKS_ON_LATIN, _delete, text, offsets)
    text, offsets = _sub(chat.URL, lambda m: ("http", None), text, offsets)
    text, offsets = _sub(chat.MENTION, lambda m: ("@user", None), text, offsets)
    text, offsets = _sub(_SPACED, _join_spaced, text, offsets)
    text, offsets = _sub(_SYMBOL_WORD, _drop_inner_symbols, text, offsets)
    keep_codes = _LEET_WORD.search(text) is None or not _is_shouted_leet(text)
    text, offsets = _sub(_LEET_WORD, lambda m: _unleet(m, keep_codes), text, offsets)
    return _sub(chat.REPEATS, _cut_repeat, text, offsets)


def _sub(pattern: re.Pattern, rewrite: Rewrite, text: str, offsets: list[int] | None):
    """pattern.sub with offsets. `rewrite` returns None (keep the match) or (replacement,
    positions): for each replacement character its position inside the match, or None for
    position i -> min(i, last) (same-length rewrites, or a short word for a long one)."""
    pieces: list[str] = []
    new_offsets: list[int] | None = [] if offsets is not None else None
    last = 0
    for match in pattern.finditer(text):
        result = rewrite(match)
        if result is None:
            continue
        replacement, positions = result
        start, end = match.span()
        pieces.append(text[last:start])
        pieces.append(replacement)
        if new_offsets is not None:
            new_offsets.extend(offsets[last:start])
            final = max(end - start - 1, 0)
            new_offsets.extend(offsets[start + (min(i, final) if positions is None else positions[i])]
                               for i in range(len(replacement)))
        last = end
    if not pieces:
        return text, offsets
    pieces.append(text[last:])
    if new_offsets is not None:
        new_offsets.extend(offsets[last:])
    return "".join(pieces), new_offsets


def _delete(match: re.Match):
    return "", []


def _unescape_entities(text: str, offsets):
    """HTML entities, repeated until none is left (`&amp;amp;` -> `&`) so a second pass finds none."""
    for _ in range(4):
        if "&" not in text:
            break
        new_text, new_offsets = _sub(_ENTITY, _entity, text, offsets)
        if new_text == text:
            break
        text, offsets = new_text, new_offsets
    return text, offsets


def _entity(match: re.Match):
    value = html.unescape(match.group(0))
    return None if value == match.group(0) else (value, None)


def _nfkc(text: str, offsets):
    """NFKC per base character and its combining marks, so each output maps to its source."""
    if unicodedata.is_normalized("NFKC", text):
        return text, offsets
    return _sub(_SEGMENT, lambda m: _nfkc_segment(m.group(0)), text, offsets)


_SEGMENT = re.compile(r".[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
                      r"\u0900-\u0903\u093a-\u094f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u3099\u309a\ufe20-\ufe2f]*",
                      re.DOTALL)


def _nfkc_segment(segment: str):
    value = unicodedata.normalize("NFKC", segment)
    return None if value == segment else (value, None)


def _to_latin(match: re.Match):
    word = match.group(0)
    if word.isascii():
        return None
    table = load_confusables()
    if not any(ord(char) in table for char in word):
        return None
    if not _LATIN.search(word) and not all(ord(char) in table for char in word if char.isalpha()):
        return None  # a word of another script, not a disguised Latin one
    return word.translate(table), None


@lru_cache(maxsize=1)
def load_confusables() -> dict[int, str]:
    """Non-ASCII characters that Unicode lists as look-alikes of one ASCII letter, -> that letter."""
    from confusable_homoglyphs.confusables import confusables_data

    table = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        latin = [h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()]
        if latin:
            # Unicode's prototype for I is l (they look alike); an upper-case source means I.
            table[ord(char)] = "I" if latin[0] == "l" and char.isupper() else latin[0]
    table.update({ord(char): latin for char, latin in _CONFUSABLE_SUPPLEMENT.items()})
    return table


def _cut_repeat(match: re.Match):
    """A character typed 3+ times: once for letters English words rarely double (`fuuuck`,
    `shiiit`), twice for the rest (`gooood`, `killll`, `!!!!`), as `chat` does."""
    if match.group(1) in _RARELY_DOUBLED:
        return match.group(1), [0]
    return match.group(0)[:2], [0, 1]


def _join_spaced(match: re.Match):
    run = match.group(0)
    letters = run[::2]
    if match.group(1) == " " and all(letter in _STANDALONE_LETTERS for letter in letters):
        return None
    return letters, list(range(0, len(run), 2))


def _drop_inner_symbols(match: re.Match):
    word = match.group(0)
    if "@" in word or "/" in word or _SYMBOL_IN_WORD.search(word) is None or len(_LATIN.findall(word)) < 3:
        return None  # e-mail addresses and paths keep their dots, abbreviations (e.g.) theirs
    kept = [i for i in range(len(word)) if not _is_inner_symbol(word, i)]
    return "".join(word[i] for i in kept), kept


def _is_inner_symbol(word: str, i: int) -> bool:
    return 0 < i < len(word) - 1 and word[i] in "._~^#%+=" and word[i - 1].isascii() and word[i - 1].isalpha() \
        and word[i + 1].isascii() and word[i + 1].isalpha()


def _is_shouted_leet(text: str) -> bool:
    """All capitals and two or more code-like words (`Y0U 4RE 1D10T`): leetspeak, not codes."""
    if _LOWER.search(text):
        return False
    cores = (word.strip(_EDGE_PUNCTUATION) for word in _NON_SPACE.findall(text))
    return sum(1 for core in cores if _is_code(core) and not _is_game_token(core)) >= 2


def _is_code(core: str) -> bool:
    return _CODE.fullmatch(core) is not None and any(c.isalpha() for c in core) and any(c.isdigit() for c in core)


def _unleet(match: re.Match, keep_codes: bool):
    word = match.group(0)
    if not _LEET_CHARS.intersection(word):
        return None
    start = len(word) - len(word.lstrip(_EDGE_PUNCTUATION))
    core = word.strip(_EDGE_PUNCTUATION)
    if not core or _is_game_token(core) or (keep_codes and _is_code(core)):
        return None
    end = start + len(core)
    table = _LEET if _LOWER.search(core) else _LEET_UPPER
    return word[:start] + core.translate(table) + word[end:], None


def _is_number_with_unit(digits: str, letters: str) -> bool:
    """3rd, 10k, 5pm, 20mins, 3secs, 1shot, but not 4re (are) or 5tupid (stupid)."""
    return (len(digits) > 1 or digits == "1" or letters.lower() in _NUMBER_SUFFIXES
            or (len(letters) > 3 and letters[-1] in "sS"))


def _is_game_token(core: str) -> bool:
    """True for what is not leetspeak: numbers, scores, mentions, names with digits."""
    if (core[0] == "@" or core == "@user" or not _LEET_CANDIDATE.fullmatch(core)
            or not _LEET_CHARS.intersection(core)):
        return True
    letters = sum(char.isalpha() for char in core)
    symbols = sum(char in _LEET_SYMBOLS for char in core)
    if letters == 0 or letters + symbols < 2:
        return True  # 5v5, 2k, $5, 100
    number_unit = _DIGITS_LETTERS.fullmatch(core)
    if number_unit and _is_number_with_unit(number_unit.group(1), number_unit.group(2)):
        return True
    return bool(_NAME_DIGITS.fullmatch(core) or _VERSUS.fullmatch(core) or _CAMEL_NAME.fullmatch(core))
