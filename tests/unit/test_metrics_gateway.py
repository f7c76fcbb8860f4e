"""The gateway's /metrics: an in-process gateway (fake classifier) answers calls, then is scraped."""

from __future__ import annotations

import json
import logging
import socket
import urllib.request

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.errors import GatewayStartError
from gateway.logformat import JsonFormatter
from gateway.metrics import GatewayMetrics, split_address
from tests.unit.test_grpc_servicer import FakeClassifier, model_repo, start_gateway  # noqa: F401 (fixtures)

SERIES = ("moderation_requests_total", "moderation_request_duration_seconds", "moderation_stage_duration_seconds",
          "moderation_in_flight_requests", "moderation_speech_queue_depth", "moderation_verdicts_total",
          "moderation_model_info")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from the gateway's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metered(start_gateway):  # noqa: F811
    gateway, fake, channel = start_gateway(metrics_listen_address="127.0.0.1:0")
    return gateway, moderation_pb2_grpc.ModerationStub(channel)


def test_calls_codes_stages_verdicts_and_version_are_exported(metered):
    gateway, stub = metered
    assert gateway.metrics_port > 0
    before = scrape(gateway.metrics_port)
    assert {name for name, _ in before} >= {"moderation_in_flight_requests", "moderation_speech_queue_depth",
                                            "moderation_model_info"}
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a"), timeout=10)  # one word: clean
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a a"), timeout=10)  # two words: profanity
    stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=["a", "a"]), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=" "), timeout=10)
    after = scrape(gateway.metrics_port)
    names = {name.removesuffix("_count").removesuffix("_bucket").removesuffix("_sum") for name, _ in after}
    assert names >= set(SERIES)
    assert value(after, "moderation_requests_total", method="ClassifyText", code="OK") == 2
    assert value(after, "moderation_requests_total", method="ClassifyText", code="INVALID_ARGUMENT") == 1
    assert value(after, "moderation_requests_total", method="ClassifyTextBatch", code="OK") == 1
    assert value(after, "moderation_request_duration_seconds_count", method="ClassifyText") == 3
    for stage in ("tokenize", "model"):
        assert value(after, "moderation_stage_duration_seconds_count", stage=stage) == 3  # the 3 calls that scored
    assert value(after, "moderation_verdicts_total", category="non_toxic", action="allow") == 3
    assert sum(v for (name, labels), v in after.items()
               if name == "moderation_verdicts_total" and ("category", "profanity") in labels) == 1
    assert value(after, "moderation_in_flight_requests") == 0
    assert value(after, "moderation_model_info", model="toxicity", version="1") == 1


def test_each_gateway_counts_its_own_calls(start_gateway):  # noqa: F811
    first, _, first_channel = start_gateway(metrics_listen_address="127.0.0.1:0")
    second, _, _ = start_gateway(metrics_listen_address="127.0.0.1:0")
    stub = moderation_pb2_grpc.ModerationStub(first_channel)
    stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a"), timeout=10)
    assert value(scrape(first.metrics_port), "moderation_requests_total", method="ClassifyText", code="OK") == 1
    assert value(scrape(second.metrics_port), "moderation_requests_total", method="ClassifyText", code="OK") == 0


def test_a_taken_metrics_port_stops_start_up(start_gateway):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GatewayStartError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_gateway(metrics_listen_address=f"127.0.0.1:{port}")


def test_no_metrics_address_serves_nothing(start_gateway):  # noqa: F811
    gateway, _, _ = start_gateway(metrics_listen_address="")
    assert gateway.metrics_port == 0 and gateway.metrics_server is None


def test_the_call_log_record_carries_fields_for_json_logs(metered, caplog):
    _, stub = metered
    with caplog.at_level(logging.INFO, logger="gateway.boundary"):
        stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="a a", request_id="req-7"), timeout=10)
    record = next(r for r in caplog.records if getattr(r, "rpc", None) and r.rpc["request_id"] == "req-7")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO" and entry["logger"] == "gateway.boundary"
    assert entry["message"].startswith("rpc kind=text id=req-7")
    rpc = entry["rpc"]
    assert rpc["method"] == "ClassifyText" and rpc["status"] == "OK" and rpc["texts"] == 1 and rpc["chars"] == 3
    assert {"tokenize_ms", "model_ms", "total_ms"} <= set(rpc)
    assert "a a" not in json.dumps(entry)  # sizes only, never the text


def test_json_formatter_writes_one_object_per_line_with_exceptions():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("gateway.x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed here" and entry["level"] == "ERROR"
    assert "RuntimeError: boom" in entry["exception"] and entry["time"].endswith("+00:00")


def test_verdicts_are_counted_from_every_response_kind():
    metrics = GatewayMetrics()
    verdict = moderation_pb2.Verdict(top_category="insult_harassment", action="block")
    metrics.count_verdicts(verdict)
    metrics.count_verdicts(moderation_pb2.ClassifyTextBatchResponse(verdicts=[verdict, verdict]))
    metrics.count_verdicts(moderation_pb2.VoiceVerdict(verdict=verdict, segments=[moderation_pb2.VoiceSegment(verdict=verdict)]))
    metrics.count_verdicts(moderation_pb2.VoiceEvent(verdict=verdict))
    metrics.count_verdicts(moderation_pb2.ModelInfo())  # carries none
    text = metrics.render().decode()
    assert 'moderation_verdicts_total{action="block",category="insult_harassment"} 5.0' in text


@pytest.mark.parametrize("address,expected", [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::]:80", ("::", 80)),
                                              (":9464", ("0.0.0.0", 9464))])
def test_split_address(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["9464", "host:", "host:99999"])
def test_split_address_refuses_bad_addresses(address):
    with pytest.raises(ValueError):
        split_address(address)


def test_a_stream_observes_the_stages_of_each_event_once():
    from gateway.boundary import RequestLog, _counted

    metrics, log = GatewayMetrics(), RequestLog("stream")

    def events():
        for k in range(3):
            if k != 1:  # the middle utterance had no words: no model call, no fresh stages
                log.stages_ms.update(tokenize=0.5 + k, model=10.0 + k)
            yield moderation_pb2.VoiceEvent(utterance=k, verdict=moderation_pb2.Verdict(top_category="non_toxic",
                                                                                        action="allow"))

    assert len(list(_counted(events(), metrics, log))) == 3
    text = metrics.render().decode()
    assert 'moderation_stage_duration_seconds_count{stage="model"} 2.0' in text
    assert 'moderation_stage_duration_seconds_count{stage="tokenize"} 2.0' in text
    assert 'moderation_verdicts_total{action="allow",category="non_toxic"} 3.0' in text
