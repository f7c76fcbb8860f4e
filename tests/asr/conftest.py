"""The toxic clip in every codec, and one tiny.en model loaded per session."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

from tests.asr.speech import CODECS, Codec, ffmpeg


@dataclass(frozen=True)
class EncodedClip:
    codec: Codec
    data: bytes
    duration_s: float  # of the source WAV
    key_words: tuple[str, ...]


@pytest.fixture(scope="session")
def encoded_toxic(toxic_speech, tmp_path_factory) -> dict[str, EncodedClip]:
    """Codec name -> the toxic sentence encoded with it (ffmpeg, once per session)."""
    out_dir = tmp_path_factory.mktemp("codecs")
    clips = {}
    for codec in CODECS:
        target = out_dir / f"{codec.name}.{codec.suffix}"
        try:
            ffmpeg(toxic_speech.path, target, *codec.ffmpeg_args)
        except subprocess.CalledProcessError as err:  # an ffmpeg build without this encoder
            pytest.skip(f"ffmpeg cannot encode {codec.name}: {err.stderr.decode(errors='replace')[-300:]}")
        clips[codec.name] = EncodedClip(codec, target.read_bytes(), toxic_speech.duration_s, toxic_speech.key_words)
    return clips


@pytest.fixture(scope="session")
def transcriber():
    """The default transcriber (packaged tiny.en, int8, greedy, 2 threads), loaded once."""
    from asr import TranscriberOptions, create_transcriber

    return create_transcriber(TranscriberOptions())


@pytest.fixture(scope="session")
def busy_audio(audio_tools, tmp_path_factory):
    """About 15 s of decoded speech (BUSY_PARAGRAPH, "idiot" twice), to keep a worker busy."""
    from asr import decode_audio
    from tests.asr.speech import BUSY_PARAGRAPH, speak

    return decode_audio(speak(BUSY_PARAGRAPH, tmp_path_factory.mktemp("speech") / "busy.wav").read_bytes())
