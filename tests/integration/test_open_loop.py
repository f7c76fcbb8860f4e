"""loadtest.open_loop against the real gateway and Triton: every call is counted under its status."""

from __future__ import annotations

import asyncio

import pytest

from loadtest.corpus import chat_messages
from loadtest.open_loop import merge, send_at_rate
from tests.integration.conftest import start_gateway

pytestmark = pytest.mark.integration


def test_a_gentle_rate_is_all_answered(gateway):
    step = merge([asyncio.run(send_at_rate(gateway.address, 40, 1.0, 5.0, chat_messages(40)))])

    assert step.calls == 40
    assert set(step.codes) == {"OK"}, step.codes
    assert step.codes["OK"].count == 40
    assert 30 <= step.offered_rate <= 45


def test_past_the_in_flight_limit_the_excess_is_turned_away(triton):
    running = start_gateway(triton, max_in_flight=2)
    try:
        step = merge([asyncio.run(send_at_rate(running.address, 300, 1.0, 5.0, chat_messages(100)))])
    finally:
        running.close()

    assert set(step.codes) == {"OK", "RESOURCE_EXHAUSTED"}
    assert sum(code.count for code in step.codes.values()) == step.calls == 300
    assert step.codes["RESOURCE_EXHAUSTED"].p50_ms < step.codes["OK"].p50_ms


def test_a_voice_share_sends_clips_and_counts_them_apart(gateway):
    from loadtest.corpus import voice_clips

    clips = voice_clips()
    if not clips:
        pytest.skip("espeak-ng is not installed")
    step = merge([asyncio.run(send_at_rate(gateway.address, 20, 1.0, 5.0, chat_messages(20), clips, 0.2, 30.0))])

    assert step.calls == 20
    assert step.codes["OK"].count == 16
    voice = step.voice_codes
    assert sum(code.count for code in voice.values()) == 4
    assert set(voice) <= {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"} and "OK" in voice and voice["OK"].count >= 1

