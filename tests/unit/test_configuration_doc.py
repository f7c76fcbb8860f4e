"""docs/configuration.md is generated from Settings; it must match what the code generates now."""

from dataclasses import fields

from gateway.settings import ENV_PREFIX, Settings
from gateway.settings_doc import REGENERATE, field_comments, format_default, render
from tests.conftest import REPO_DIR


def test_committed_configuration_doc_is_current():
    committed = (REPO_DIR / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert render() == committed, f"docs/configuration.md is out of date: run {REGENERATE}"


def test_every_field_has_its_flag_and_environment_variable():
    page = render()
    for field in fields(Settings):
        assert f"`--{field.name.replace('_', '-')}`" in page
        assert f"`{ENV_PREFIX}{field.name.upper()}`" in page


def test_environment_does_not_leak_into_the_defaults(monkeypatch):
    monkeypatch.setenv("MODERATION_LOG_LEVEL", "leaked")
    page = render()
    assert f"| `{Settings.log_level}` |" in page
    assert "leaked" not in page


def test_field_comments_take_the_lines_above_and_the_trailing_comment():
    source = '''
class Settings:
    plain: int = 1
    # Why this value,
    # in two lines.
    explained: int = 2  # and a unit

    # Not about the next field: a blank line ends the block above it.

    spaced: str = ""  # trailing only
'''
    assert field_comments(source) == {
        "plain": "",
        "explained": "and a unit. Why this value, in two lines.",
        "spaced": "trailing only",
    }


def test_defaults_read_as_they_are_typed():
    assert format_default(True) == "`true`"
    assert format_default((16, 32)) == "`16,32`"
    assert format_default(()) == '`""`'
    assert format_default("") == '`""`'
    assert format_default(2.0) == "`2.0`"
