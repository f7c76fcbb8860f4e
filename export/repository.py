"""Writes a model version into Triton's model repository, atomically.

A version directory holds data only (weights, tokenizer, labels, card, export.json) and a
manifest of their sha256; the code that runs it is the backend in triton_backends/. A version
is staged in a hidden directory next to the numbered ones and renamed into place only when
complete, so Triton (which reads only numeric directory names) never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from contract import tensors
from contract.manifest import MANIFEST_FILENAME, ManifestError, verify_manifest, write_manifest

OTHER_FILES = (tensors.MODEL_FILENAME, tensors.LABELS_FILENAME, tensors.MODEL_CARD_FILENAME,
               tensors.EXPORT_INFO_FILENAME, MANIFEST_FILENAME)
ALLOWED_FILES = frozenset(tensors.TOKENIZER_FILES + tensors.OPTIONAL_TOKENIZER_FILES + OTHER_FILES)


class PublishError(RuntimeError):
    """The version would be inconsistent; nothing was written."""


def versions(model_dir: Path) -> list[int]:
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(model_dir: Path) -> int:
    existing = versions(model_dir)
    return existing[-1] + 1 if existing else 1


def check_tokenizer_dir(tokenizer_dir: Path) -> None:
    missing = [name for name in tensors.TOKENIZER_FILES if not (tokenizer_dir / name).exists()]
    if missing:
        raise PublishError(f"tokenizer files missing in {tokenizer_dir}: {', '.join(missing)}")


def check_labels(labels: list[str], output_width: int) -> None:
    try:
        tensors.read_labels("\n".join(labels))
    except ValueError as err:
        raise PublishError(f"labels break the contract: {err}") from None
    if len(labels) != output_width:
        raise PublishError(
            f"the model outputs {output_width} scores but there are {len(labels)} labels ({', '.join(labels)})"
        )


def write_files(target: Path, *, model_bytes: bytes, labels: list[str], tokenizer_dir: Path,
                export_info: dict, model_card: Path | None = None) -> None:
    """Writes model.pt, labels, tokenizer files, card, export.json and the manifest into target."""
    check_tokenizer_dir(tokenizer_dir)
    target.mkdir(parents=True, exist_ok=True)
    (target / tensors.MODEL_FILENAME).write_bytes(model_bytes)
    (target / tensors.LABELS_FILENAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
    for name in tensors.TOKENIZER_FILES + tensors.OPTIONAL_TOKENIZER_FILES:  # the optional ones if present
        if (tokenizer_dir / name).exists():
            shutil.copyfile(tokenizer_dir / name, target / name)
    if model_card and model_card.exists():
        shutil.copyfile(model_card, target / tensors.MODEL_CARD_FILENAME)
    (target / tensors.EXPORT_INFO_FILENAME).write_text(json.dumps(dict(export_info, labels=labels), indent=2) + "\n")
    write_manifest(target)


def write_version(model_dir: Path, *, version: int | None = None, **files) -> Path:
    """Writes a new version (see write_files for the keywords) atomically; returns its path."""
    return _commit(model_dir, version, lambda staging: write_files(staging, **files))


def publish_directory(export_dir: Path, model_dir: Path, version: int | None = None) -> Path:
    """Copies an exported directory (moderation-export --out-dir) in as the next version."""
    check_export_dir(export_dir)
    return _commit(model_dir, version, lambda staging: shutil.copytree(export_dir, staging, dirs_exist_ok=True))


def check_export_dir(export_dir: Path) -> None:
    """Refuses a directory Triton or the gateway could not serve, or one that is not what was
    exported (manifest); runs one smoke inference."""
    if not export_dir.is_dir():
        raise PublishError(f"{export_dir}: not a directory")
    unexpected = sorted(p.name for p in export_dir.iterdir() if p.name not in ALLOWED_FILES)
    if unexpected:  # code above all: the backend that runs a version ships with the product
        raise PublishError(f"{export_dir}: a version holds data files only; unexpected: {', '.join(unexpected)}")
    needed = (tensors.MODEL_FILENAME, tensors.LABELS_FILENAME, MANIFEST_FILENAME)
    missing = [name for name in needed if not (export_dir / name).exists()]
    if missing:
        raise PublishError(f"{export_dir}: missing {', '.join(missing)}")
    try:
        verify_manifest(export_dir)
    except ManifestError as err:
        raise PublishError(str(err)) from None
    check_tokenizer_dir(export_dir)
    try:
        labels = tensors.read_labels((export_dir / tensors.LABELS_FILENAME).read_text(encoding="utf-8"))
    except ValueError as err:
        raise PublishError(f"{export_dir / tensors.LABELS_FILENAME}: {err}") from None
    check_labels(labels, _smoke_width(export_dir))


def _smoke_width(export_dir: Path) -> int:
    """Scores one short text the way the CPU backend would; returns the output width."""
    import torch
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(export_dir))
        model = torch.jit.load(str(export_dir / tensors.MODEL_FILENAME), map_location="cpu").float().eval()
        encoded = tokenizer(["good game"], return_tensors="pt")
        with torch.inference_mode():
            scores = model(encoded["input_ids"].long(), encoded["attention_mask"].long())
    except Exception as err:  # any failure here means the version cannot serve
        raise PublishError(f"{export_dir}: smoke inference failed: {err}") from None
    if scores.ndim != 2 or scores.shape[0] != 1 or abs(float(scores.sum()) - 1.0) > 1e-3:
        raise PublishError(f"{export_dir}: smoke inference returned {tuple(scores.shape)} scores that are not a softmax")
    return int(scores.shape[1])


def _commit(model_dir: Path, version: int | None, fill) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise PublishError(f"version {version} already exists in {model_dir}")
    staging = model_dir / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        fill(staging)
        info_path = staging / tensors.EXPORT_INFO_FILENAME
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        info_path.write_text(json.dumps(dict(info, version=version), indent=2) + "\n")
        write_manifest(staging)
        os.rename(staging, final)  # atomic on one filesystem: Triton never sees half a version
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
