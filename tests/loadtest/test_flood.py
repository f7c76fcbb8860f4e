"""loadtest.flood: h2load's calls are real gRPC calls, and its summary is read correctly."""

from __future__ import annotations

import shutil
import threading
from concurrent import futures

import grpc
import pytest

from gateway.pb import moderation_pb2, moderation_pb2_grpc
from loadtest.flood import FLOOD_TEXT, Flood, grpc_frame, parse_summary

SUMMARY = """finished in 2.00s, 199.50 req/s, 10.92KB/s
requests: 400 total, 400 started, 398 done, 395 succeeded, 3 failed, 2 errored, 1 timeout
status codes: 395 2xx, 0 3xx, 0 4xx, 0 5xx
"""


def test_a_frame_is_the_message_behind_a_flag_byte_and_a_big_endian_length():
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"") == b"\x00\x00\x00\x00\x00"


def test_the_summary_gives_calls_answered_failed_and_duration():
    result = parse_summary(SUMMARY, cpu_seconds=0.5)
    assert (result.calls, result.answered, result.failed, result.seconds) == (400, 395, 6, 2.0)
    assert result.as_dict()["rate"] == 200.0 and result.as_dict()["cpu_cores"] == 0.25
    assert parse_summary(SUMMARY.replace("2.00s", "850.50ms"), 0.0).seconds == pytest.approx(0.8505)


def test_no_summary_is_an_error_that_shows_what_h2load_said():
    with pytest.raises(ValueError, match="connection refused"):
        parse_summary("connection refused\n", 0.0)


class _Counting(moderation_pb2_grpc.ModerationServicer):
    def __init__(self):
        self.texts: list[str] = []
        self.lock = threading.Lock()

    def ClassifyText(self, request, context):
        with self.lock:
            self.texts.append(request.text)
        return moderation_pb2.ClassifyTextResponse(top_category="non_toxic")


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_the_flood_sends_gateway_requests_a_grpc_server_parses(tmp_path):
    servicer = _Counting()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    moderation_pb2_grpc.add_ModerationServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        service = moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name
        request = moderation_pb2.ClassifyTextRequest(text=FLOOD_TEXT).SerializeToString()
        flood = Flood(f"127.0.0.1:{port}", f"/{service}/ClassifyText", request, rate=100, seconds=1.0,
                      work_dir=tmp_path)
        result = flood.finish(timeout_s=30)
    finally:
        server.stop(grace=None)
    assert servicer.texts == [FLOOD_TEXT] * 100
    assert (result.calls, result.answered, result.failed) == (100, 100, 0)
    assert 0.8 <= result.seconds <= 5  # paced over about a second, not sent at once
    assert result.cpu_seconds > 0
