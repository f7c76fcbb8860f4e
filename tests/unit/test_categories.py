"""load_categories: the shipped file, and bad files that must stop with the file named."""

from __future__ import annotations

import pytest

from training.categories import DEFAULT_CATEGORIES_PATH, CategoryFileError, load_categories

CATEGORY_LIST = """
[[category]]
name = "non_toxic"
description = "clean"

[[category]]
name = "insult_harassment"

[[category]]
name = "threat"
"""

SOURCE = """
[sources.chat]
file_prefix = "chat"
format = "single"
labels.ok = ["non_toxic"]
labels.abusive = ["insult_harassment", "threat"]
labels.unusable = []
"""


def write(tmp_path, text: str):
    path = tmp_path / "categories.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_categories():
    categories = load_categories()
    assert categories.names == ("non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat")
    assert categories.toxic_names == categories.names[1:]
    jigsaw = categories.sources["jigsaw"]
    assert jigsaw.format == "multilabel"
    assert jigsaw.priority[0] == "threat"
    assert jigsaw.none_label == frozenset({"non_toxic"})
    assert categories.sources["davidson"].max_train_rows == {"offensive": 5000}
    assert categories.sources["tweeteval_hate"].labels["not_hateful"] == frozenset()
    assert str(DEFAULT_CATEGORIES_PATH).endswith("default_categories.toml")


def test_a_valid_custom_file(tmp_path):
    categories = load_categories(write(tmp_path, CATEGORY_LIST + SOURCE))
    assert categories.names == ("non_toxic", "insult_harassment", "threat")
    assert categories.descriptions[0] == "clean"
    assert categories.index("threat") == 2
    chat = categories.sources["chat"]
    assert chat.labels == {
        "ok": frozenset({"non_toxic"}),
        "abusive": frozenset({"insult_harassment", "threat"}),
        "unusable": frozenset(),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[category]]\nname = "threat"\n[[category]]\nname = "non_toxic"\n',
         "the first category must be 'non_toxic', got 'threat'"),
        (CATEGORY_LIST + SOURCE.replace('["non_toxic"]', '["non_toxic", "sexual"]'),
         "[sources.chat] label 'ok': unknown categories ['sexual']"),
        (CATEGORY_LIST + '[[category]]\nname = "threat"\n', "duplicate categories: threat"),
        (CATEGORY_LIST + SOURCE.replace('format = "single"', 'format = "tsv"'),
         "[sources.chat]: format must be one of"),
        (CATEGORY_LIST + '[[category]]\nname = "hate speech"\n', "invalid name 'hate speech'"),
        ('[[category]]\nname = "non_toxic"\n', "need 'non_toxic' and at least one more"),
        ("title = 'no categories'\n", "no [[category]] entries"),
        (CATEGORY_LIST + SOURCE.replace('["non_toxic"]', '"non_toxic"'), "expected a list of categories"),
        (CATEGORY_LIST + '[sources.chat]\nformat = "single"\n', "[sources.chat]: maps no labels"),
        (CATEGORY_LIST + SOURCE + 'priority = ["missing"]\n', "priority names unmapped columns ['missing']"),
        (CATEGORY_LIST + SOURCE + 'generic = ["missing"]\n', "generic names unmapped columns ['missing']"),
        ("[[category]\nname = 1\n", "not valid TOML"),
    ],
    ids=["first-not-non_toxic", "unknown-category", "duplicate", "bad-format", "bad-name", "only-negative",
         "no-categories", "not-a-list", "no-labels", "bad-priority", "bad-generic", "bad-toml"],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(CategoryFileError) as exc:
        load_categories(path)
    assert str(path) in str(exc.value)
    assert expected in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(CategoryFileError, match="file not found"):
        load_categories(tmp_path / "nope.toml")
