"""Model lifecycle under load: publish, activate, roll back, category changes, broken versions.

Runs its own Triton on a temporary copy of the model repository. The extra versions are real
TorchScript models built from the shipped one (loadtest/model_variants.py).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
import torch

from contract import tensors
from contract.manifest import write_manifest
from contract.pb import admin_pb2, admin_pb2_grpc, moderation_pb2
from export.repository import PublishError, publish_directory
from gateway.secrets_files import write_secret_file
from loadtest.model_variants import ExtraCategory, Temperature, copy_repository, make_variant_export
from tests.integration.conftest import MODEL_REPOSITORY, _has_version, start_gateway, start_triton

pytestmark = pytest.mark.integration

TOKEN = "test-admin-token-0123456789abcdefghij"  # 32+ characters, as the gateway demands
TEXTS = [
    "good game everyone, well played",
    "you are a stupid idiot, shut up you worthless loser",
    "can we switch to the north lane next round?",
    "fuck you moron, you are trash",
]


def _offline_scores(version_dir: Path, texts) -> list[list[float]]:
    from gateway.model_version import load_serving_model

    serving = load_serving_model(version_dir.parent, tensors.MODEL_NAME, version_dir.name)
    model = torch.jit.load(str(version_dir / tensors.MODEL_FILENAME), map_location="cpu").float().eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            ids, mask = serving.encoder.encode([text])
            rows.append(model(torch.from_numpy(ids), torch.from_numpy(mask))[0].tolist())
    return rows


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    root = tmp_path_factory.mktemp("lifecycle")
    repository = root / "repo"
    model_dir = copy_repository(MODEL_REPOSITORY, repository)
    triton = start_triton(root, repository)
    # generous model timeout: loading a version competes for the same 2 CPU cores as serving
    running = start_gateway(triton, admin_listen_address="127.0.0.1:0", admin_token_file=str(_token_file(root)),
                            triton_timeout_s=20.0, policy_dir=str(_policy_dir(root)))
    admin_channel = grpc.insecure_channel(f"127.0.0.1:{running.gateway.admin_port}")
    yield {"root": root, "model_dir": model_dir, "triton": triton, "gateway": running,
           "admin": admin_pb2_grpc.ModelAdminStub(admin_channel)}
    admin_channel.close()
    running.close()
    triton.stop()


def _policy_dir(root: Path) -> Path:
    """The only directory ReloadPolicy may read from."""
    (root / "policies").mkdir(exist_ok=True)
    return root / "policies"


def _token_file(root: Path) -> Path:
    return write_secret_file(root / "admin.token", TOKEN)


AUTH = [("authorization", f"Bearer {TOKEN}")]


class Load:
    """Callers sending ClassifyText in a loop; records (version, text index, scores) or errors."""

    def __init__(self, stub, callers: int = 8):
        self.stub = stub
        self.stop = threading.Event()
        self.results: list[list[tuple]] = [[] for _ in range(callers)]
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(callers)]

    def _run(self, k: int) -> None:
        i = k
        while not self.stop.is_set():
            index = i % len(TEXTS)
            try:
                verdict = self.stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXTS[index]), timeout=30)
                self.results[k].append((verdict.model_version, index, [s.score for s in verdict.scores],
                                        [s.category for s in verdict.scores]))
            except grpc.RpcError as err:
                self.errors.append(f"{err.code().name}: {err.details()}")
            i += 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        # every caller completes two more calls after the last switch, however slow the machine
        counts = [len(r) for r in self.results]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(len(r) < c + 2 for r, c in zip(self.results, counts)):
            time.sleep(0.1)
        self.stop.set()
        for thread in self.threads:
            thread.join()


def _runs(sequence):
    """['1','1','2','2','1'] -> ['1','2','1']"""
    return [v for i, v in enumerate(sequence) if i == 0 or sequence[i - 1] != v]


def test_admin_needs_the_token(stack):
    admin = stack["admin"]
    for metadata in ([], [("authorization", "Bearer wrong")], [("authorization", TOKEN)]):
        with pytest.raises(grpc.RpcError) as caught:
            admin.ListModelVersions(admin_pb2.ListModelVersionsRequest(), metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_version_is_not_found(stack):
    with pytest.raises(grpc.RpcError) as caught:
        stack["admin"].ActivateVersion(admin_pb2.ActivateVersionRequest(version="99"), metadata=AUTH, timeout=60)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "99" in caught.value.details()


def test_publish_refuses_broken_exports(stack, tmp_path):
    source = stack["model_dir"] / "1"
    broken = shutil.copytree(source, tmp_path / "broken")
    (broken / tensors.MODEL_FILENAME).write_bytes(b"not a torchscript file")
    with pytest.raises(PublishError, match="model.pt: sha256 differs"):  # changed after export
        publish_directory(broken, stack["model_dir"])
    write_manifest(broken)  # an export that wrote a broken model file
    with pytest.raises(PublishError, match="smoke inference failed"):
        publish_directory(broken, stack["model_dir"])
    mismatched = shutil.copytree(source, tmp_path / "mismatched")
    (mismatched / tensors.LABELS_FILENAME).write_text("non_toxic\nprofanity\n")
    write_manifest(mismatched)
    with pytest.raises(PublishError, match="outputs 5 scores but there are 2 labels"):
        publish_directory(mismatched, stack["model_dir"])
    assert sorted(p.name for p in stack["model_dir"].iterdir() if not p.name.endswith(".pbtxt")) == ["1"]


def test_activate_and_rollback_under_load_lose_nothing(stack):
    admin, stub = stack["admin"], stack["gateway"].stub
    export = make_variant_export(stack["model_dir"] / "1", stack["root"] / "export-t2", lambda b: Temperature(b, 2.0))
    version = publish_directory(export, stack["model_dir"]).name
    with Load(stub) as load:
        activated = admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version=version), metadata=AUTH, timeout=120)
        time.sleep(2.0)
        rolled_back = admin.Rollback(admin_pb2.RollbackRequest(), metadata=AUTH, timeout=120)
    assert activated.active_version == version and activated.previous_version == "1"
    assert rolled_back.active_version == "1" and rolled_back.previous_version == version
    assert rolled_back.load_ms == 0.0  # the previous version stayed loaded: rollback is a switch
    assert load.errors == []
    for caller in load.results:
        assert _runs([r[0] for r in caller]) == ["1", version, "1"]
    offline = {v: _offline_scores(stack["model_dir"] / v, TEXTS) for v in ("1", version)}
    for caller in load.results:
        for served_version, index, scores, _ in caller:
            expected = offline[served_version][index]
            assert max(abs(a - b) for a, b in zip(scores, expected)) < 0.05


def test_new_category_set_switches_consistently(stack):
    admin, stub = stack["admin"], stack["gateway"].stub
    export = make_variant_export(stack["model_dir"] / "1", stack["root"] / "export-spam",
                          lambda b: ExtraCategory(b, 0.01), extra_labels=["spam"])
    version = publish_directory(export, stack["model_dir"]).name
    with Load(stub) as load:
        admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version=version), metadata=AUTH, timeout=120)
    assert load.errors == []
    for caller in load.results:
        for served_version, _, scores, categories in caller:
            assert len(scores) == len(categories)
            assert (categories[-1] == "spam") == (served_version == version)
    info = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=10)
    assert info.model_version == version and list(info.categories)[-1] == "spam"
    admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version="1"), metadata=AUTH, timeout=120)


def test_broken_version_keeps_the_old_one_serving(stack):
    admin, stub = stack["admin"], stack["gateway"].stub
    before = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=10).model_version
    broken = stack["model_dir"] / "90"  # corrupt on disk, as if written by hand
    shutil.copytree(stack["model_dir"] / "1", broken)
    (broken / tensors.MODEL_FILENAME).write_bytes(b"\x00corrupt")
    with Load(stub, callers=4) as load:
        with pytest.raises(grpc.RpcError) as tampered:
            admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version="90"), metadata=AUTH, timeout=120)
        write_manifest(broken)  # now it is what was published, and Triton must fail to load it
        with pytest.raises(grpc.RpcError) as caught:
            admin.ActivateVersion(admin_pb2.ActivateVersionRequest(version="90"), metadata=AUTH, timeout=120)
    assert tampered.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "model.pt: sha256 differs" in tampered.value.details()
    assert f"still serving {before}" in tampered.value.details()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "90" in caught.value.details() and before in caught.value.details()
    assert load.errors == []
    assert {r[0] for caller in load.results for r in caller} == {before}
    listed = admin.ListModelVersions(admin_pb2.ListModelVersionsRequest(), metadata=AUTH, timeout=10)
    assert listed.active_version == before


def test_policy_reload_validates_first(stack):
    admin, stub = stack["admin"], stack["gateway"].stub
    policies = _policy_dir(stack["root"])
    bad = policies / "bad.toml"
    bad.write_text("[thresholds]\nno_such_category = 0.5\n")
    with pytest.raises(grpc.RpcError) as caught:
        admin.ReloadPolicy(admin_pb2.ReloadPolicyRequest(path=str(bad)), metadata=AUTH, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no_such_category" in caught.value.details()
    strict = policies / "strict.toml"
    strict.write_text("default_threshold = 1.0\ntoxic_threshold = 1.0\n")  # nothing reaches 1.0: nothing is flagged
    reply = admin.ReloadPolicy(admin_pb2.ReloadPolicyRequest(path=str(strict)), metadata=AUTH, timeout=10)
    assert reply.default_threshold == 1.0
    verdict = stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXTS[1]), timeout=10)
    assert not verdict.toxic and verdict.top_category != "non_toxic"
    admin.ReloadPolicy(admin_pb2.ReloadPolicyRequest(), metadata=AUTH, timeout=10)  # back to the default
    assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXTS[1]), timeout=10).toxic
