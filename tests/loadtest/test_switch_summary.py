"""loadtest.switch_benchmark: what the callers saw across a switch, from the calls' records."""

from __future__ import annotations

import pytest

from loadtest.switch_benchmark import plot, summarize

# (started, latency_s, model_version, status) as the callers record them; the switch runs 2.0-2.4 s
RECORDS = [(0.0, 0.1, "1", "OK"), (1.0, 0.3, "1", "OK"), (2.1, 0.5, "1", "OK"), (2.5, 0.2, "2", "OK"),
           (3.0, 0.1, "", "UNAVAILABLE"), (4.2, 0.1, "1", "OK")]
EVENTS = {"activate_start": 2.0, "activate_end": 2.4, "rollback_start": 4.0, "rollback_end": 4.1, "load_ms": 300.0}


def test_the_summary_times_the_switch_from_the_last_answer_of_the_old_version():
    result = summarize(RECORDS, EVENTS)

    assert (result.requests, result.failed, result.old_version_requests_started_after_switch) == (6, 1, 0)
    assert result.activation_call_s == pytest.approx(0.4)
    assert result.activate_to_all_traffic_new_s == pytest.approx(0.6)  # the call started at 2.1 s ended at 2.6 s
    assert result.rollback_call_s == pytest.approx(0.1)
    assert result.steady_p50_ms == pytest.approx(200.0) and result.during_switch_p50_ms == pytest.approx(500.0)
    assert result.events_s["activate_start"] == 2.0 and result.load_ms == 300.0


def test_the_plot_is_written(tmp_path):
    plot(RECORDS, EVENTS, tmp_path / "switch.png")
    assert (tmp_path / "switch.png").stat().st_size > 0
