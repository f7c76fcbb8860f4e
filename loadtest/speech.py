"""Spoken sentences for the benchmarks and the tests: espeak-ng speaks each once, cached on disk.

One place to make speech, so every benchmark and test hears the same voice at the same speed.
espeak-ng's robotic voice trips Whisper on some words at its default speed; at 150 words per
minute the test sentences come back word for word from tiny.en.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ESPEAK_VOICE = "en"
WORDS_PER_MINUTE = 150  # slower than espeak-ng's 175: Whisper mishears fewer words
CACHE_DIR = Path(os.environ.get("LOADTEST_CLIP_DIR", Path(tempfile.gettempdir()) / "moderation-speech"))
ESPEAK_TIMEOUT_S = 60  # a paragraph takes well under a second


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak_wav(sentence: str, voice: str = ESPEAK_VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> bytes:
    """`sentence` spoken by espeak-ng as WAV bytes (22,050 Hz mono 16-bit), cached under CACHE_DIR.

    Args:
        sentence: what to say.
        voice: an espeak-ng voice, e.g. "en" or "en-us".
        words_per_minute: speaking speed.

    Returns:
        The WAV file's bytes. Raises FileNotFoundError where espeak-ng is not installed.
    """
    key = hashlib.sha1(f"{voice}|{words_per_minute}|{sentence}".encode()).hexdigest()[:16]
    path = CACHE_DIR / f"{key}.wav"
    if not path.exists():
        if not espeak_available():
            raise FileNotFoundError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{key}.{os.getpid()}.partial")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(partial), sentence],
                       check=True, capture_output=True, timeout=ESPEAK_TIMEOUT_S)
        os.replace(partial, path)  # whole files only: load generators and tests may speak at once
    return path.read_bytes()


def speak_audio(sentence: str, voice: str = ESPEAK_VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> np.ndarray:
    """`sentence` spoken as 16 kHz mono float32 samples, as Whisper takes them (asr.decode_audio)."""
    from asr import decode_audio

    return decode_audio(speak_wav(sentence, voice, words_per_minute))


def speak_pcm16(sentence: str, voice: str = ESPEAK_VOICE, words_per_minute: int = WORDS_PER_MINUTE) -> bytes:
    """`sentence` spoken as 16 kHz mono little-endian PCM16, as StreamVoice takes it."""
    audio = speak_audio(sentence, voice, words_per_minute)
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
