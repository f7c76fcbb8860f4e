"""check_text: the per-message limits the servicer applies before anything else."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidInput
from gateway.service import check_text


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r\n", "\u3000"])
def test_empty_or_whitespace_only_text_is_rejected(text):
    with pytest.raises(InvalidInput, match="text is empty"):
        check_text(text, 100)


def test_exact_limit_passes_and_one_more_fails():
    check_text("x" * 10, 10)
    with pytest.raises(InvalidInput, match="text is 11 characters; the limit is 10"):
        check_text("x" * 11, 10)


def test_limit_counts_characters_not_bytes():
    check_text("🔥" * 10, 10)  # 40 bytes in UTF-8, 10 characters
    check_text("é" * 10, 10)


def test_where_names_the_field():
    with pytest.raises(InvalidInput, match=r"texts\[3\] is empty"):
        check_text("  ", 10, "texts[3]")
