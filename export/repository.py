"""Writes a model version into Triton's model repository, atomically.

A version is staged in a hidden directory next to the numbered ones and renamed into place
only when complete, so Triton (which reads only numeric directory names) never sees a
half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from export import contract

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # needed; others copied if present
OPTIONAL_TOKENIZER_FILES = ("special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "bpe.codes")
PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_python_model.py")


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
    missing = [name for name in TOKENIZER_FILES if not (tokenizer_dir / name).exists()]
    if missing:
        raise PublishError(f"tokenizer files missing in {tokenizer_dir}: {', '.join(missing)}")


def check_labels(labels: list[str], output_width: int) -> None:
    try:
        contract.read_labels("\n".join(labels))
    except ValueError as err:
        raise PublishError(f"labels break the contract: {err}") from None
    if len(labels) != output_width:
        raise PublishError(
            f"the model outputs {output_width} scores but there are {len(labels)} labels ({', '.join(labels)})"
        )


def write_version(
    model_dir: Path,
    *,
    model_bytes: bytes,
    labels: list[str],
    tokenizer_dir: Path,
    export_info: dict,
    model_card: Path | None = None,
    version: int | None = None,
) -> Path:
    """Writes model.pt, model.py, labels, tokenizer files, card and export.json as one version."""
    model_dir.mkdir(parents=True, exist_ok=True)
    check_tokenizer_dir(tokenizer_dir)
    version = version or next_version(model_dir)
    final = model_dir / str(version)
    if final.exists():
        raise PublishError(f"version {version} already exists in {model_dir}")
    staging = model_dir / f".staging-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        (staging / contract.MODEL_FILENAME).write_bytes(model_bytes)
        shutil.copyfile(PYTHON_MODEL_SOURCE, staging / contract.PYTHON_BACKEND_FILENAME)
        (staging / contract.LABELS_FILENAME).write_text("\n".join(labels) + "\n", encoding="utf-8")
        for name in TOKENIZER_FILES + OPTIONAL_TOKENIZER_FILES:
            if (tokenizer_dir / name).exists():
                shutil.copyfile(tokenizer_dir / name, staging / name)
        if model_card and model_card.exists():
            shutil.copyfile(model_card, staging / contract.MODEL_CARD_FILENAME)
        info = dict(export_info, version=version, labels=labels)
        (staging / contract.EXPORT_INFO_FILENAME).write_text(json.dumps(info, indent=2) + "\n")
        os.rename(staging, final)  # atomic on one filesystem
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
