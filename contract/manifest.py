"""A version directory's manifest: the sha256 and size of every file in it.

Publish writes it; publish, activation and the gateway's start verify it, so a version whose
files were changed, added (code included) or lost after export is refused before it serves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST_FILENAME = "manifest.json"
_CHUNK_BYTES = 1 << 20


class ManifestError(ValueError):
    """The directory does not match its manifest; the message names every difference."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe(directory: Path) -> dict[str, dict]:
    """{file name: {"sha256", "bytes"}} for every file in the directory except the manifest."""
    entries = {}
    for path in sorted(Path(directory).iterdir()):
        if path.name == MANIFEST_FILENAME:
            continue
        if not path.is_file() or path.is_symlink():
            raise ManifestError(f"{path}: a version directory holds only regular files")
        entries[path.name] = {"sha256": file_digest(path), "bytes": path.stat().st_size}
    return entries


def write_manifest(directory: Path) -> Path:
    path = Path(directory) / MANIFEST_FILENAME
    path.write_text(json.dumps({"files": describe(directory)}, indent=2) + "\n", encoding="utf-8")
    return path


def verify_manifest(directory: Path) -> None:
    """Raises ManifestError unless every file matches the manifest and no file is unlisted."""
    path = Path(directory) / MANIFEST_FILENAME
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        raise ManifestError(f"{path} not found") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ManifestError(f"{path}: unreadable: {err}") from None
    actual = describe(directory)
    problems = [f"{name}: missing" for name in sorted(set(listed) - set(actual))]
    problems += [f"{name}: not in the manifest" for name in sorted(set(actual) - set(listed))]
    problems += [f"{name}: sha256 differs" for name in sorted(set(listed) & set(actual))
                 if listed[name].get("sha256") != actual[name]["sha256"]]
    if problems:
        raise ManifestError(f"{directory} does not match its manifest: {'; '.join(problems)}")
