"""experiments.grpc_rejection_cost.flood: h2load's calls are real gRPC calls, a gRPC error stops the flood,
and h2load's summary is read correctly."""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from contract.pb import moderation_pb2, moderation_pb2_grpc
from experiments.grpc_rejection_cost.flood import FLOOD_TEXT, FloodError, classify_text_flood, grpc_frame, parse_summary

# as h2load prints it when a connection was lost: 10 of the 400 never sent, 5 sent but not answered
SUMMARY = """finished in 2.00s, 197.50 req/s, 10.92KB/s
requests: 400 total, 390 started, 385 done, 385 succeeded, 15 failed, 15 errored, 2 timeout
status codes: 385 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_a_frame_is_the_message_behind_a_flag_byte_and_a_big_endian_length():
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def test_the_summary_gives_calls_sent_answered_failed_and_durations():
    result = parse_summary(SUMMARY, seconds=1.5, cpu_seconds=0.5)
    assert (result.calls, result.answered, result.failed) == (390, 385, 15)  # failed: h2load's own count
    assert (result.seconds, result.run_seconds) == (1.5, 2.0)
    assert result.as_dict()["rate"] == 260.0  # calls sent over the schedule, not over the whole run
    assert result.as_dict()["cpu_cores"] == 0.25
    assert parse_summary(SUMMARY.replace("2.00s", "850.50ms"), 1.0, 0.0).run_seconds == pytest.approx(0.8505)
    assert parse_summary(SUMMARY.replace("2.00s", "900.00us"), 1.0, 0.0).run_seconds == pytest.approx(0.0009)


def test_no_summary_is_an_error_that_shows_what_h2load_said():
    with pytest.raises(ValueError, match="connection refused"):
        parse_summary("connection refused\n", 1.0, 0.0)


class _Counting(moderation_pb2_grpc.ModerationServicer):
    def __init__(self):
        self.texts: list[str] = []
        self.lock = threading.Lock()

    def ClassifyText(self, request, context):
        with self.lock:
            self.texts.append(request.text)
        return moderation_pb2.Verdict(top_category="non_toxic")


class _Failing(_Counting):
    def ClassifyText(self, request, context):
        super().ClassifyText(request, context)
        context.abort(grpc.StatusCode.INTERNAL, "the servicer failed")  # HTTP 200, grpc-status 13


@pytest.fixture
def counting_server():
    yield from _serve(_Counting())


@pytest.fixture
def failing_server():
    yield from _serve(_Failing())


def _serve(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    moderation_pb2_grpc.add_ModerationServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(grace=None)


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_the_flood_sends_gateway_requests_a_grpc_server_parses(tmp_path, counting_server):
    address, servicer = counting_server
    result = classify_text_flood(address, rate=100, seconds=1.0, work_dir=tmp_path).finish(timeout_s=30)

    assert servicer.texts == [FLOOD_TEXT] * 101  # the status check's call, then the flood's 100
    assert (result.calls, result.answered, result.failed) == (100, 100, 0)
    assert 0.8 <= result.seconds <= 5  # paced over about a second, not sent at once
    assert result.cpu_seconds > 0


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_a_grpc_error_status_stops_the_flood_before_it_starts(tmp_path, failing_server):
    address, servicer = failing_server
    with pytest.raises(FloodError, match="INTERNAL, not OK"):
        classify_text_flood(address, rate=100, seconds=1.0, work_dir=tmp_path)
    assert servicer.texts == [FLOOD_TEXT]  # the status check only: h2load never ran


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
@pytest.mark.skipif(1 not in os.sched_getaffinity(0), reason="needs CPU 1")
def test_every_thread_of_a_pinned_flood_runs_on_its_cpus(tmp_path, counting_server):
    # h2load sends from a thread it starts itself: pinning its pid after the start would miss it
    address, _ = counting_server
    flood = classify_text_flood(address, rate=50, seconds=2.0, work_dir=tmp_path, cpus={1})
    try:
        tasks = Path(f"/proc/{flood.pid}/task")
        deadline = time.monotonic() + 5
        while len(list(tasks.iterdir())) < 2 and time.monotonic() < deadline:  # its sending thread
            time.sleep(0.05)
        allowed = {task.name: _allowed_cpus(task) for task in tasks.iterdir()}
    finally:
        flood.finish(timeout_s=30)
    assert len(allowed) >= 2 and set(allowed.values()) == {"1"}


def _allowed_cpus(task: Path) -> str:
    for line in (task / "status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return ""
