"""What the gateway needs from one model version's directory: labels, tokenizer, max length.

A version directory (written by moderation-export) holds the TorchScript file Triton runs and
the files the gateway reads here, so tokenizer, labels and model always change together. Its
manifest is verified first: a version whose files changed after publishing never serves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from contract import tensors
from contract.manifest import ManifestError, verify_manifest
from contract.normalization import normalizer
from gateway.text_encoder import TextEncoder

DEFAULT_MAX_LENGTH = 128  # tokens, when a version's export.json does not say


def numbered_versions(model_dir: Path) -> list[str]:
    """The version directories of one model (`1`, `2`, ...), oldest first; none if it is absent."""
    if not model_dir.is_dir():
        return []
    return sorted((p.name for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir()), key=int)


class VersionFilesError(RuntimeError):
    """A version directory lacks what the gateway needs."""


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    labels: tuple[str, ...]
    encoder: TextEncoder


def load_serving_model(model_dir: Path, name: str, version: str, buckets=()) -> ServingModel:
    version_dir = Path(model_dir) / version
    try:
        verify_manifest(version_dir)
    except ManifestError as err:
        raise VersionFilesError(str(err)) from None
    labels_path = version_dir / tensors.LABELS_FILENAME
    try:
        labels = tensors.read_labels(labels_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VersionFilesError(f"{labels_path} not found") from None
    except ValueError as err:
        raise VersionFilesError(f"{labels_path}: {err}") from None
    info_path = version_dir / tensors.EXPORT_INFO_FILENAME
    try:
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        max_length = int(info.get("max_length", DEFAULT_MAX_LENGTH))
    except (OSError, ValueError, AttributeError) as err:
        raise VersionFilesError(f"{info_path}: unreadable: {err}") from None
    try:  # the model was trained on text normalised this way, so it must be served so too
        normalize = normalizer(info.get("normalization"))
    except ValueError as err:
        raise VersionFilesError(f"{info_path}: {err}") from None
    try:
        encoder = TextEncoder(version_dir, max_length, buckets, normalize)
    except (OSError, ValueError) as err:
        raise VersionFilesError(f"{version_dir}: cannot load the tokenizer: {err}") from None
    return ServingModel(name, version, tuple(labels), encoder)
