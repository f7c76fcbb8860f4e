"""Settings precedence (defaults < MODERATION_* env < flags) and validation."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.settings import Settings, load_settings, parse_buckets


def test_defaults_when_no_env_and_no_flags():
    assert load_settings([], env={}) == Settings()


def test_env_overrides_defaults_with_typed_values():
    env = {
        "MODERATION_MAX_IN_FLIGHT": "8",
        "MODERATION_TRITON_TIMEOUT_S": "0.5",
        "MODERATION_LENGTH_BUCKETS": "16,32,64",
        "MODERATION_TRITON_URL": "triton:9001",
    }
    settings = load_settings([], env=env)
    assert settings.max_in_flight == 8
    assert settings.triton_timeout_s == 0.5
    assert settings.length_buckets == (16, 32, 64)
    assert settings.triton_url == "triton:9001"
    assert settings.max_text_chars == Settings().max_text_chars  # untouched fields keep defaults


def test_flags_override_env():
    env = {"MODERATION_MAX_IN_FLIGHT": "8", "MODERATION_LENGTH_BUCKETS": "16,32"}
    settings = load_settings(["--max-in-flight", "4", "--length-buckets", "64,128"], env=env)
    assert settings.max_in_flight == 4
    assert settings.length_buckets == (64, 128)


def test_env_without_prefix_is_ignored():
    assert load_settings([], env={"MAX_IN_FLIGHT": "3", "max_in_flight": "3"}).max_in_flight == Settings.max_in_flight


def test_empty_bucket_env_means_no_buckets():
    assert load_settings([], env={"MODERATION_LENGTH_BUCKETS": ""}).length_buckets == ()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--max-in-flight", "0"], "max_in_flight must be >= 1"),
        (["--max-batch-texts", "0"], "max_batch_texts must be >= 1"),
        (["--triton-timeout-s", "0"], "triton_timeout_s must be > 0"),
        (["--length-buckets", "32,16"], "length_buckets must be increasing"),
        (["--length-buckets", "16,16"], "length_buckets must be increasing"),
        (["--length-buckets", "1,16"], "length_buckets must be increasing token counts >= 2"),
        (["--listen-address", "50051"], "host:port"),
        (["--length-buckets", "16,x"], "--length-buckets"),
        (["--max-in-flight", "many"], "--max-in-flight"),
        (["--asr-window-s", "0.5"], "asr_window_s must be in 1..30"),
        (["--asr-window-s", "45"], "asr_window_s must be in 1..30"),
    ],
)
def test_bad_flags_stop_with_a_clear_message(argv, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        load_settings(argv, env={})
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err


def test_invalid_value_from_env_is_validated_too(capsys):
    with pytest.raises(SystemExit) as exc:
        load_settings([], env={"MODERATION_MAX_IN_FLIGHT": "0"})
    assert exc.value.code == 2
    assert "max_in_flight must be >= 1" in capsys.readouterr().err


def test_unparsable_env_value_names_the_variable():
    with pytest.raises(SystemExit) as exc:
        load_settings([], env={"MODERATION_MAX_IN_FLIGHT": "lots"})
    assert "MODERATION_MAX_IN_FLIGHT" in str(exc.value.code)


def test_a_valid_flag_rescues_an_invalid_env_value():
    # the env value is only a default for the flag: the final value is what gets validated
    assert load_settings(["--max-in-flight", "2"], env={"MODERATION_MAX_IN_FLIGHT": "0"}).max_in_flight == 2


def test_settings_validates_on_construction_and_replace():
    with pytest.raises(ValueError, match="max_streams"):
        Settings(max_streams=0)
    with pytest.raises(ValueError, match="health_poll_s"):
        Settings().replace(health_poll_s=0)
    assert Settings().replace(max_in_flight=3).max_in_flight == 3


def test_settings_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().max_in_flight = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("16,32,64", (16, 32, 64)), (" 16, 32 ", (16, 32)), ("", ()), ("8,", (8,)), ((4, 8), (4, 8))],
)
def test_parse_buckets(value, expected):
    assert parse_buckets(value) == expected


def test_bucket_string_given_to_settings_is_parsed():
    assert Settings(length_buckets="16,32").length_buckets == (16, 32)
