"""experiments.serving_matrix.matrix: each setting's config override, and the markdown table."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from experiments.serving_matrix.matrix import SETTINGS, Setting, write

CONFIG = Path(__file__).resolve().parents[2] / "model_repository" / "toxicity" / "config.pbtxt"


def shipped_config_as_json() -> dict:
    """The shipped config.pbtxt in the JSON form Triton's get_model_config(as_json=True) returns."""
    config = text_format.Parse(CONFIG.read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def test_settings_override_batching_instances_and_threads():
    shipped = shipped_config_as_json()
    off = Setting("off", batching=False).apply(shipped, 500)
    assert "dynamic_batching" not in off and "dynamic_batching" in shipped  # the original is untouched
    two = Setting("two", instances=2, threads_per_instance=1).apply(shipped, 2000)
    assert two["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    assert two["parameters"]["torch_num_threads"] == {"string_value": "1"}
    assert two["dynamic_batching"]["max_queue_delay_microseconds"] == "2000"
    assert two["parameters"]["chunk_rows"] == shipped["parameters"]["chunk_rows"]
    # every override is still a valid model config
    for setting in SETTINGS:
        json_format.ParseDict(setting.apply(shipped, 500), model_config_pb2.ModelConfig())


def test_table_gives_ratios_to_the_best_raw_limit(tmp_path):
    row = {"messages_per_s": 300.0, "p50_ms": 90.0, "p99_ms": 170.0, "mean_triton_batch": 7.5, "errors": {}}
    report = {"command": "python -m experiments.serving_matrix.matrix", "machine": {"cpus": 2}, "callers": 32, "batch_rpc_callers": 4,
              "duration_s": 15, "queue_delay_us": 500, "best_raw_sequences_per_s": 600.0,
              "variants": {"int8": {"raw": {"sequences_per_s": 600.0, "batch_size": 64, "best_method": "sorted"},
                                    "end_to_end": {"2 x 1": row}}}}
    write(report, tmp_path / "matrix.json")
    lines = (tmp_path / "matrix.md").read_text().splitlines()
    assert "| int8 | raw in-process, batch 64, sorted | 600 | | | | | 1.00 |" in lines
    assert "| int8 | 2 x 1 | 300 | 90.0 | 170.0 | 7.5 | - | 0.50 |" in lines
