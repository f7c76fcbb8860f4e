"""Triton's model control is locked to the gateway; secrets stay out of child processes; a
version that judges known texts wrongly is refused at activation.

Runs its own Triton (fresh control key) on a temporary copy of the model repository, and a
gateway with its admin port and Whisper worker processes. The tampered-file refusal at
activation is tested in test_lifecycle.py (test_broken_version_keeps_the_old_one_serving).
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
import torch
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from contract import tensors
from contract.manifest import write_manifest
from contract.pb import admin_pb2, admin_pb2_grpc, moderation_pb2
from gateway.secrets_files import write_secret_file
from gateway.triton_access import GRPC_HEADER, HTTP_HEADER
from loadtest.model_variants import Temperature, copy_repository, make_variant_export
from tests.integration.conftest import MODEL_REPOSITORY, _has_version, start_gateway, start_triton

pytestmark = pytest.mark.integration

TOKEN = "security-test-admin-token-0123456789abcdef"
ENV_CANARY = "env-admin-token-canary-0123456789abcdef"  # an operator's leftover MODERATION_ADMIN_TOKEN
AUTH = [("authorization", f"Bearer {TOKEN}")]


def _always_non_toxic(source: Path, target: Path) -> Path:
    """A real model whose classifier bias makes non_toxic win every text (a broken training run)."""
    import shutil

    shutil.copytree(source, target)
    model = torch.jit.load(str(source / tensors.MODEL_FILENAME), map_location="cpu")
    with torch.no_grad():
        model.classifier.classifier.bias[0] += 30.0  # labels.txt puts non_toxic first
    torch.jit.save(model, str(target / tensors.MODEL_FILENAME))
    write_manifest(target)
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    root = tmp_path_factory.mktemp("security")
    model_dir = copy_repository(MODEL_REPOSITORY, root / "repo")
    previous = os.environ.get("MODERATION_ADMIN_TOKEN")
    os.environ["MODERATION_ADMIN_TOKEN"] = ENV_CANARY  # must reach no child, and be ignored
    try:
        triton = start_triton(root, root / "repo")
        running = start_gateway(triton, admin_listen_address="127.0.0.1:0",
                                admin_token_file=str(write_secret_file(root / "admin.token", TOKEN)),
                                voice_enabled=True, asr_workers=1, triton_timeout_s=20.0)
    finally:
        if previous is not None:
            os.environ["MODERATION_ADMIN_TOKEN"] = previous
    # published after Triton started (explicit model control loads them only when activated)
    make_variant_export(model_dir / "1", model_dir / "2", lambda b: Temperature(b, 2.0))
    _always_non_toxic(model_dir / "1", model_dir / "3")
    channel = grpc.insecure_channel(f"127.0.0.1:{running.gateway.admin_port}")
    yield {"triton": triton, "gateway": running, "admin": admin_pb2_grpc.ModelAdminStub(channel), "model_dir": model_dir}
    channel.close()
    running.close()
    triton.stop()


def _restricted(call) -> str:
    with pytest.raises(InferenceServerException) as caught:
        call()
    return str(caught.value)


def test_model_control_without_the_key_is_refused_while_activation_works(stack):
    triton, admin = stack["triton"], stack["admin"]
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        wrong = {GRPC_HEADER: "not-the-key-" + "0" * 32}
        for headers in (None, wrong):
            assert "protocol is restricted" in _restricted(lambda h=headers: client.unload_model(tensors.MODEL_NAME, headers=h))
            assert "protocol is restricted" in _restricted(lambda h=headers: client.load_model(tensors.MODEL_NAME, headers=h))
            assert "protocol is restricted" in _restricted(
                lambda h=headers: client.get_model_config(tensors.MODEL_NAME, headers=h))
            assert "protocol is restricted" in _restricted(lambda h=headers: client.get_model_repository_index(headers=h))
        assert client.is_model_ready(tensors.MODEL_NAME, "1")  # the refused unload changed nothing
        assert client.get_model_metadata(tensors.MODEL_NAME).name == tensors.MODEL_NAME  # the data path stays open
    activated = admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version="2"), metadata=AUTH, timeout=180)
    assert activated.active_version == "2"
    verdict = stack["gateway"].stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="good game"), timeout=30)
    assert verdict.model_version == "2"


def test_a_version_that_calls_everything_clean_is_refused_at_activation(stack):
    admin = stack["admin"]
    before = admin.ListModelVersions(admin_pb2.ListModelVersionsRequest(), metadata=AUTH, timeout=30).active_version
    with pytest.raises(grpc.RpcError) as refused:
        admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version="3"), metadata=AUTH, timeout=180)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = refused.value.details()
    assert "behavioural smoke test" in details and "toxic[0] judged clean" in details
    assert f"still serving {before}" in details
    verdict = stack["gateway"].stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="good game"), timeout=30)
    assert verdict.model_version == before


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_no_child_process_sees_the_admin_token_or_the_control_key(stack):
    secrets = {"admin token (file)": TOKEN, "admin token (env)": ENV_CANARY,
               "Triton control key": stack["triton"].control_key}
    seen = {"tritonserver": 0, "python backend stub": 0, "asr worker": 0}
    for pid in _descendants(os.getpid()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:  # exited meanwhile
            continue
        for name, value in secrets.items():
            assert value not in environ, f"{name} in the environment of pid {pid} ({cmdline[:80]!r})"
        assert "MODERATION_ADMIN_TOKEN=" not in environ
        if "tritonserver" in cmdline:
            seen["tritonserver"] += 1
        elif "triton_python_backend_stub" in cmdline:
            seen["python backend stub"] += 1
        elif "multiprocessing" in cmdline:
            seen["asr worker"] += 1
    assert all(seen.values()), f"expected every kind of child process, saw {seen}"
    assert "MODERATION_ADMIN_TOKEN" not in os.environ  # the gateway removed it from its own environment


def test_triton_http_is_off_by_default_and_restricted_when_asked_for(stack, tmp_path):
    import urllib.error
    import urllib.request

    assert stack["triton"].http_port == 0  # no HTTP listener on the stack's Triton
    copy_repository(MODEL_REPOSITORY, tmp_path / "repo")
    triton = start_triton(tmp_path, tmp_path / "repo", http_enabled=True)
    try:
        url = f"http://127.0.0.1:{triton.http_port}"
        for headers in ({}, {HTTP_HEADER: "not-the-key-" + "0" * 32}):
            request = urllib.request.Request(f"{url}/v2/repository/index", data=b"{}", headers=headers, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 403 and b"restricted" in refused.value.read()
        request = urllib.request.Request(f"{url}/v2/repository/index", data=b"{}",
                                         headers={HTTP_HEADER: triton.control_key}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=30) as answer:  # health stays open
            assert answer.status == 200
    finally:
        triton.stop()
