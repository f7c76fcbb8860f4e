"""Real speech for tests, made on the fly: espeak-ng speaks a sentence, ffmpeg re-encodes it.

espeak-ng's robotic voice trips Whisper on some words (FACTS.md); these sentences, spoken at
150 words per minute, came back word for word from tiny.en in every codec we tried, while
"you are an idiot" at espeak's default speed came back as "you are a nitty".
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from loadtest.speech import speak_wav

ESPEAK_VOICE = "en"
ESPEAK_WORDS_PER_MINUTE = 150  # slower than espeak's 175: fewer misheard words
TOXIC_SENTENCE = "shut up you stupid idiot, your team is trash"
TOXIC_KEY_WORDS = ("idiot", "trash")
CLEAN_SENTENCE = "good game everyone, that was a great match"
CLEAN_KEY_WORDS = ("good game", "match")
# About 15 s, to keep a worker busy. Not a sentence repeated: Whisper sometimes judges a window of
# the same robotic sentence over and over to be no speech, and returns nothing for it.
BUSY_PARAGRAPH = ("shut up you stupid idiot, push the middle lane now and keep the shields up. "
                  "nice shot on the sniper, you saved the whole team. what an idiot, he walked straight into the fire. "
                  "let us regroup at the base and buy armor before the timer runs out.")


@dataclass(frozen=True)
class SpokenClip:
    """A WAV file of one spoken sentence (espeak-ng writes 22,050 Hz mono 16-bit)."""

    path: Path
    sentence: str
    key_words: tuple[str, ...]
    duration_s: float


@dataclass(frozen=True)
class Codec:
    """How to re-encode a WAV with ffmpeg, and what decode_audio needs to read it back."""

    name: str
    suffix: str
    ffmpeg_args: tuple[str, ...]
    format_hint: str = ""
    sample_rate_hz: int | None = None  # for raw PCM only


# Every format decode_audio must accept (issue 5), with the odd cases called out.
CODECS = (
    Codec("wav_s16", "wav", ("-c:a", "pcm_s16le")),
    Codec("wav_s24", "wav", ("-c:a", "pcm_s24le")),
    Codec("wav_s32", "wav", ("-c:a", "pcm_s32le")),
    Codec("wav_f32", "wav", ("-c:a", "pcm_f32le")),
    Codec("wav_48k_stereo", "wav", ("-ar", "48000", "-ac", "2", "-c:a", "pcm_s16le")),
    Codec("ogg_opus", "ogg", ("-c:a", "libopus", "-b:a", "24k"), "audio/ogg; codecs=opus"),
    Codec("webm_opus", "webm", ("-c:a", "libopus", "-b:a", "24k"), "webm"),
    Codec("mp3", "mp3", ("-c:a", "libmp3lame", "-b:a", "48k"), "mp3"),
    Codec("flac", "flac", ("-c:a", "flac")),
    Codec("m4a_aac", "m4a", ("-c:a", "aac", "-b:a", "48k"), "m4a"),
    Codec("aac_adts", "aac", ("-c:a", "aac", "-b:a", "48k")),
    Codec("pcm16_22k", "raw", ("-f", "s16le", "-c:a", "pcm_s16le"), "pcm16", 22_050),
    Codec("pcm16_16k", "raw", ("-f", "s16le", "-ar", "16000", "-c:a", "pcm_s16le"), "raw", 16_000),
)


def missing_tools() -> list[str]:
    return [tool for tool in ("espeak-ng", "ffmpeg") if shutil.which(tool) is None]


def speak(sentence: str, path: Path) -> Path:
    path.write_bytes(speak_wav(sentence, ESPEAK_VOICE, ESPEAK_WORDS_PER_MINUTE))
    return path


def spoken_clip(sentence: str, key_words: tuple[str, ...], path: Path) -> SpokenClip:
    speak(sentence, path)
    return SpokenClip(path=path, sentence=sentence, key_words=key_words, duration_s=wav_duration_s(path))


def wav_duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def write_silence(path: Path, seconds: float, sample_rate_hz: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(b"\0\0" * int(seconds * sample_rate_hz))
    return path


def ffmpeg(source: Path, target: Path, *args: str) -> Path:
    """Runs ffmpeg quietly and returns the file it wrote."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *args, str(target)],
        check=True, capture_output=True, timeout=120,
    )
    return target


def ffmpeg_to_bytes(source: Path, *args: str) -> bytes:
    """Encodes to stdout; a piped WebM cannot seek back, so it declares no duration."""
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(source), *args, "-"],
        check=True, capture_output=True, timeout=120,
    ).stdout
