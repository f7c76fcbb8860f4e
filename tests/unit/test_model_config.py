"""The model repository's config.pbtxt files and version directories keep the tensor contract (contract/tensors.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from contract import tensors
from contract.manifest import verify_manifest
from gateway.model_version import load_serving_model

REPO_DIR = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_DIR / "model_repository" / tensors.MODEL_NAME
CPU_CONFIG = MODEL_DIR / "config.pbtxt"
GPU_CONFIG = MODEL_DIR / "configs" / "gpu.pbtxt"

DataType = model_config_pb2.DataType
Kind = model_config_pb2.ModelInstanceGroup.Kind


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module", params=[CPU_CONFIG, GPU_CONFIG], ids=["cpu", "gpu"])
def config(request):
    return parse(request.param)


def test_model_name(config):
    assert config.name == tensors.MODEL_NAME


def test_inputs_follow_the_contract(config):
    assert [tensor.name for tensor in config.input] == [tensors.INPUT_IDS, tensors.ATTENTION_MASK]
    for tensor in config.input:
        assert tensor.data_type == DataType.Value(tensors.INPUT_DTYPE)
        assert list(tensor.dims) == [-1]  # [batch, seq] with batching: seq is variable


def test_output_follows_the_contract(config):
    assert [tensor.name for tensor in config.output] == [tensors.SCORES]
    assert config.output[0].data_type == DataType.Value(tensors.SCORES_DTYPE)
    assert list(config.output[0].dims) == [-1]  # the category count is per version


def test_dynamic_batching_and_bounded_queue(config):
    assert config.max_batch_size > 0
    assert config.HasField("dynamic_batching")
    preferred = list(config.dynamic_batching.preferred_batch_size)
    assert preferred and all(0 < size <= config.max_batch_size for size in preferred)
    assert config.dynamic_batching.default_queue_policy.max_queue_size > 0


def test_one_version_served_at_a_time(config):
    policy = config.version_policy
    assert policy.latest.num_versions == 1 or len(policy.specific.versions) == 1


def test_gpu_config_refuses_to_start_on_a_cpu_only_int8_version(tmp_path):
    from gateway.triton_process import TritonProcess, TritonStartError

    version_dir = tmp_path / tensors.MODEL_NAME / "4"
    version_dir.mkdir(parents=True)
    (version_dir / tensors.EXPORT_INFO_FILENAME).write_text(json.dumps({"precision": "int8"}))
    with pytest.raises(TritonStartError, match="dynamic-int8.*--precision fp16 --device cuda"):
        TritonProcess(tmp_path, config_name="gpu", grpc_port=1, http_port=2, metrics_port=3).check_versions()
    TritonProcess(tmp_path, grpc_port=1, http_port=2, metrics_port=3).check_versions()  # CPU: fine
    (version_dir / tensors.EXPORT_INFO_FILENAME).write_text(json.dumps({"precision": "fp32"}))
    TritonProcess(tmp_path, config_name="gpu", grpc_port=1, http_port=2, metrics_port=3).check_versions()


def test_the_shipped_version_has_no_cpu_only_int8_kernels():
    latest = VERSION_DIRS[-1]
    assert json.loads((latest / tensors.EXPORT_INFO_FILENAME).read_text())["precision"] != "int8"


def test_cpu_config_runs_the_python_backend_with_ragged_batching():
    config = parse(CPU_CONFIG)
    assert config.backend == tensors.BACKEND_NAME  # a python-based backend (triton_backends/)
    assert [group.kind for group in config.instance_group] == [Kind.Value("KIND_CPU")]
    assert all(tensor.allow_ragged_batch for tensor in config.input)
    threads = config.parameters["torch_num_threads"].string_value
    assert threads.isdigit() and int(threads) > 0  # model.py reads it with int()


def test_gpu_config_runs_libtorch_without_ragged_batching():
    config = parse(GPU_CONFIG)
    assert config.platform == "pytorch_libtorch"
    assert config.default_model_filename == tensors.MODEL_FILENAME
    assert config.instance_group and all(group.kind == Kind.Value("KIND_GPU") for group in config.instance_group)
    assert not any(tensor.allow_ragged_batch for tensor in config.input)  # libtorch cannot pad


# --- exported versions (none until moderation-export has run) ------------------------------
VERSION_DIRS = sorted((p for p in MODEL_DIR.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


@pytest.fixture(
    params=VERSION_DIRS or [pytest.param(None, marks=pytest.mark.skip(reason="no exported version in model_repository/toxicity yet"))],
    ids=[p.name for p in VERSION_DIRS] or ["none"],
)
def version_dir(request) -> Path:
    return request.param


def test_version_dir_has_the_files_triton_and_the_gateway_need(version_dir):
    for name in (tensors.MODEL_FILENAME, tensors.LABELS_FILENAME, tensors.EXPORT_INFO_FILENAME, *tensors.TOKENIZER_FILES):
        assert (version_dir / name).is_file(), f"{version_dir / name} is missing"


def test_version_labels_pass_the_contract_and_match_export_json(version_dir):
    labels = tensors.read_labels((version_dir / tensors.LABELS_FILENAME).read_text(encoding="utf-8"))
    info = json.loads((version_dir / tensors.EXPORT_INFO_FILENAME).read_text(encoding="utf-8"))
    assert info["labels"] == labels
    assert info["version"] == int(version_dir.name)


def test_version_holds_data_only_and_matches_its_manifest(version_dir):
    assert not [p.name for p in version_dir.iterdir() if p.suffix == ".py" or p.is_dir()]
    verify_manifest(version_dir)


def test_one_shipped_version():
    assert [p.name for p in VERSION_DIRS] == ["5"]


def test_cpu_config_names_the_backend_that_ships_once():
    config = parse(CPU_CONFIG)
    assert config.backend == tensors.BACKEND_NAME
    assert (REPO_DIR / "triton_backends" / tensors.BACKEND_NAME / "model.py").is_file()


def test_gateway_can_load_the_version(version_dir):
    model = load_serving_model(MODEL_DIR, tensors.MODEL_NAME, version_dir.name)
    assert model.labels[0] == tensors.NEGATIVE_CATEGORY
    ids, mask = model.encoder.encode(["gg"])
    assert ids.shape == mask.shape


def test_numbered_versions_are_directories_in_numeric_order(tmp_path):
    from gateway.model_version import numbered_versions

    for name in ("10", "9", "2", "staging"):
        (tmp_path / name).mkdir()
    (tmp_path / "11").write_text("a file, not a version")
    assert numbered_versions(tmp_path) == ["2", "9", "10"]
    assert numbered_versions(tmp_path / "absent") == []
