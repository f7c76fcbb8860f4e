"""A gateway configured for voice refuses to start when Whisper cannot be loaded, and says why."""

from __future__ import annotations

import os
import sys

import pytest

from gateway.errors import GatewayStartError
from gateway.server import create_server, main
from gateway.settings import Settings
from gateway.voice import create_voice_pipeline


class UnusedClassifier:
    """create_server must stop before any model call."""

    def infer(self, *args, **kwargs):
        raise AssertionError("the classifier was called")


def test_a_missing_whisper_model_stops_start_up_with_the_reason(tmp_path):
    settings = Settings(metrics_listen_address="", listen_address="127.0.0.1:0", admin_listen_address="", asr_process=False,
                        whisper_model=str(tmp_path / "no-such-model") + os.sep)

    with pytest.raises(GatewayStartError, match=r"voice is enabled but cannot start: .*does not exist.*--voice-enabled false"):
        create_server(settings, classifier=UnusedClassifier())


def test_the_gateway_command_exits_non_zero_with_the_reason(tmp_path):
    argv = ["--listen-address", "127.0.0.1:0", "--admin-listen-address", "", "--asr-process", "false",
            "--whisper-model", str(tmp_path / "no-such-model") + os.sep]
    with pytest.raises(SystemExit, match=r"^gateway failed to start: voice is enabled but cannot start: .*does not exist"):
        main(argv)


def test_a_missing_asr_extra_stops_start_up_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "asr", None)  # `import asr` now raises ImportError

    with pytest.raises(GatewayStartError, match=r"the asr extra is not installed .*moderation-gateway\[asr\]"):
        create_voice_pipeline(Settings(admin_listen_address=""))


def test_voice_turned_off_loads_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "asr", None)

    assert create_voice_pipeline(Settings(voice_enabled=False)) is None
