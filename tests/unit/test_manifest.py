"""A version's manifest: written over every file, and any change, loss or addition is refused,
by the gateway too (load_serving_model runs at start and at activation)."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from contract import tensors
from contract.manifest import MANIFEST_FILENAME, ManifestError, verify_manifest, write_manifest
from gateway.model_version import VersionFilesError, load_serving_model
from tests.unit.test_model_config import MODEL_DIR


@pytest.fixture
def version_dir(tmp_path):
    path = tmp_path / "3"
    path.mkdir()
    (path / "a.txt").write_text("alpha\n")
    (path / "b.bin").write_bytes(b"\x00\x01")
    write_manifest(path)
    return path


def test_manifest_lists_every_file_with_its_sha256(version_dir):
    files = json.loads((version_dir / MANIFEST_FILENAME).read_text())["files"]
    assert sorted(files) == ["a.txt", "b.bin"]
    assert files["a.txt"] == {"sha256": hashlib.sha256(b"alpha\n").hexdigest(), "bytes": 6}
    verify_manifest(version_dir)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: (d / "a.txt").write_text("alphA\n"), "a.txt: sha256 differs"),
    (lambda d: (d / "b.bin").unlink(), "b.bin: missing"),
    (lambda d: (d / "model.py").write_text("import os\n"), "model.py: not in the manifest"),
    (lambda d: (d / MANIFEST_FILENAME).unlink(), "manifest.json not found"),
    (lambda d: (d / MANIFEST_FILENAME).write_text("{"), "unreadable"),
])
def test_any_change_is_refused_with_its_reason(version_dir, change, message):
    change(version_dir)
    with pytest.raises(ManifestError, match=message):
        verify_manifest(version_dir)


def test_gateway_refuses_a_tampered_version(tmp_path):
    shipped = max((p for p in MODEL_DIR.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    copy = tmp_path / tensors.MODEL_NAME / "7"
    shutil.copytree(shipped, copy, ignore=shutil.ignore_patterns(tensors.MODEL_FILENAME))
    (copy / tensors.MODEL_FILENAME).symlink_to(shipped / tensors.MODEL_FILENAME)
    with pytest.raises(VersionFilesError, match="only regular files"):
        load_serving_model(copy.parent, tensors.MODEL_NAME, "7")
    (copy / tensors.MODEL_FILENAME).unlink()
    (copy / tensors.MODEL_FILENAME).write_bytes(b"not the published weights")
    with pytest.raises(VersionFilesError, match="model.pt: sha256 differs"):
        load_serving_model(copy.parent, tensors.MODEL_NAME, "7")
