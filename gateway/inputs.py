"""Checks on request fields that need no model: request ids, visible text, spoken language.

Each raises InvalidInput with a message written for the caller (issue 15, part 4).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from gateway.errors import InvalidInput

MAX_REQUEST_ID_CHARS = 128  # ids are echoed and logged: long ones would bloat every line
_REQUEST_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_CHARS}}}")  # printable ASCII, no space: one log token
# Categories that draw nothing on their own: controls (NUL...), format characters (zero-width
# space and joiners, BOM, bidi marks), separators, and combining marks with no base letter.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols that render as blank space although Unicode files them as visible.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
ENGLISH_ONLY = ("en",)


def check_request_id(request_id: str) -> None:
    """Empty (the gateway makes one) or 1-128 printable ASCII characters without spaces."""
    if request_id and not _REQUEST_ID.fullmatch(request_id):
        raise InvalidInput(f"request_id must be at most {MAX_REQUEST_ID_CHARS} printable ASCII characters "
                           f"without spaces (got {len(request_id)} characters)")


def is_invisible(text: str) -> bool:
    """True when no character of `text` would show: empty, whitespace, zero-width, NUL and the like."""
    return all(c in _BLANK_CHARACTERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


@functools.cache
def accepted_languages(whisper_model: str) -> tuple[str, ...]:
    """The language codes the configured Whisper model understands."""
    if whisper_model.rstrip("/").endswith(".en"):  # tiny.en, base.en, ...: English-only models
        return ENGLISH_ONLY
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:  # another backend: no list to check against, asr checks the code's shape
        return ()
    return tuple(_LANGUAGE_CODES)


def check_language(language: str, accepted: tuple[str, ...]) -> None:
    """Empty (the gateway's default) or one of `accepted`; `accepted` empty: anything passes."""
    if language and accepted and language not in accepted:
        raise InvalidInput(f"language {language[:16]!r} is not supported; accepted: {', '.join(accepted)}")
