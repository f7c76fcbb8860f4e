"""One small interface over two Whisper implementations.

`asr.backends.create_transcriber(options)` loads a model once; `Transcriber.transcribe(audio)`
then turns a 16 kHz float32 clip (from `asr.audio.decode_audio`) into a `Transcript`. Backends:

- "faster-whisper" (default): CTranslate2, int8 on CPU and float16 on GPU, Silero VAD built in.
  It reads the packaged models (see asr.models).
- "openai-whisper": the reference PyTorch implementation, for users who have its `.pt`
  checkpoints. It is an optional extra (it pulls a ~1 GB `triton` package) and cannot read the
  CTranslate2 files.

Defaults favour latency on small CPU boxes: greedy decoding (beam search costs time for little
gain on short clips), language fixed to English (no detection pass), and VAD so silence costs no
decoder time and yields an empty transcript rather than Whisper's invented text.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import re
import time
from dataclasses import dataclass, field

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ

logger = logging.getLogger(__name__)

BACKENDS = ("faster-whisper", "openai-whisper")
DEVICES = ("cpu", "cuda")
# CTranslate2 compute types; openai-whisper only runs float32, or float16 on a GPU.
COMPUTE_TYPES = {
    "faster-whisper": ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                       "float16", "bfloat16", "float32"),
    "openai-whisper": ("float16", "float32"),
}
_GPU_ONLY_COMPUTE_TYPES = ("float16", "bfloat16", "int8_float16", "int8_bfloat16")
WHISPER_WINDOW_S = 30.0  # what Whisper was trained on and pads every clip to
MIN_ENCODER_WINDOW_S = 1.0
NO_SPEECH_PROB_LIMIT = 0.6  # faster-whisper's no_speech_threshold: above it Whisper calls a window silence
MAX_BEAM_SIZE = 16  # whisper's own default is 5; more costs time for no gain on short clips
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")  # Whisper's codes: "en", "de", "haw", "yue"


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, with Whisper's confidence signals."""

    start_s: float  # from the start of the clip
    end_s: float
    text: str
    avg_logprob: float  # mean token log-probability; below about -1 the text is doubtful
    no_speech_prob: float  # Whisper's probability that the window held no speech


@dataclass(frozen=True)
class Transcript:
    text: str  # the segments' texts joined with spaces; "" when no speech was found
    segments: list[Segment] = field(default_factory=list)
    language: str | None = None  # the language decoded in (given, or detected)
    duration_s: float = 0.0  # of the audio passed in
    # The VAD found speech (without VAD: Whisper wrote something). True with an empty text means
    # speech that could not be transcribed, which must not pass for a clean clip.
    speech_detected: bool = False
    full_window_retry: bool = False  # decoded a second time with the full 30 s window


@dataclass(frozen=True)
class TranscriberOptions:
    """How to load and run Whisper; checked when built, before any model is loaded."""

    backend: str = "faster-whisper"
    # "tiny.en" / "base" (packaged), a local model directory (faster-whisper) or .pt file
    # (openai-whisper), or a hub name where a hub is reachable.
    model: str = "tiny.en"
    device: str = "cpu"
    # None: int8 on CPU and float16 on GPU (faster-whisper); float32 / float16 (openai-whisper).
    compute_type: str | None = None
    beam_size: int = 1  # 1 is greedy decoding
    language: str | None = "en"  # None detects the language (multilingual models only)
    cpu_threads: int = 2  # threads per transcription (CTranslate2's intra_threads)
    num_workers: int = 1  # transcriptions that can run at once on one loaded model
    vad_filter: bool = True  # skip non-speech with Silero VAD
    # Seconds of audio the encoder sees at least. Whisper pads every window to 30 s and the
    # encoder's cost grows with the window, so a shorter window (faster-whisper only) encodes
    # the clip plus 1 s of padding, at least this long (docs/decisions/0006-whisper-encoder-window.md).
    encoder_window_s: float = 30.0
    cache_dir: str | None = None  # where "base" is assembled; asr.models.default_cache_dir()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.compute_type is None:
            default = "float16" if self.device == "cuda" else self._cpu_default()
            object.__setattr__(self, "compute_type", default)
        self._check_compute_type()
        if not 1 <= self.beam_size <= MAX_BEAM_SIZE:
            raise ValueError(f"beam_size must be in 1..{MAX_BEAM_SIZE}, got {self.beam_size}")
        if self.cpu_threads < 1 or self.num_workers < 1:
            raise ValueError(f"cpu_threads and num_workers must be >= 1, got {self.cpu_threads}, {self.num_workers}")
        check_language(self.language)
        self._check_encoder_window()
        if not self.model:
            raise ValueError("model must name a model or a path")

    def _check_encoder_window(self) -> None:
        if not MIN_ENCODER_WINDOW_S <= self.encoder_window_s <= WHISPER_WINDOW_S:
            raise ValueError(f"encoder_window_s must be in {MIN_ENCODER_WINDOW_S:g}..{WHISPER_WINDOW_S:g}, "
                             f"got {self.encoder_window_s}")
        if self.backend != "faster-whisper" and self.encoder_window_s != WHISPER_WINDOW_S:
            raise ValueError(f"{self.backend} only encodes the full {WHISPER_WINDOW_S:g} s window; "
                             "encoder_window_s needs faster-whisper")

    def _cpu_default(self) -> str:
        return "int8" if self.backend == "faster-whisper" else "float32"

    def _check_compute_type(self) -> None:
        allowed = COMPUTE_TYPES[self.backend]
        if self.compute_type not in allowed:
            raise ValueError(f"compute_type for {self.backend} must be one of {allowed}, got {self.compute_type!r}")
        if self.device == "cpu" and self.compute_type in _GPU_ONLY_COMPUTE_TYPES:
            raise ValueError(f"compute_type {self.compute_type} needs device='cuda'")


def whisper_languages() -> frozenset[str]:
    """The language codes Whisper knows ("en", "de", "haw", ...); an unknown one fails inside the model."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES  # the list the tokenizer itself checks against

    return frozenset(_LANGUAGE_CODES)


def check_language(language: str | None) -> None:
    if language is not None and (not _LANGUAGE_CODE.fullmatch(language) or language not in whisper_languages()):
        raise ValueError(f"language must be a Whisper language code such as 'en', got {language[:16]!r}; "
                         f"known: {', '.join(sorted(whisper_languages()))}")


class Transcriber(abc.ABC):
    """A loaded Whisper model. `transcribe` may be called from several threads."""

    def __init__(self, options: TranscriberOptions):
        self.options = options

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Transcribes one clip.

        Args:
          audio: 1-D float32 samples in [-1, 1] at 16 kHz, as decode_audio returns them.
          language: Overrides options.language for this call (None: use the option).

        Returns:
          The transcript; empty (no segments) when the clip holds no speech.
        """
        audio = check_audio(audio)
        language = language or self.options.language
        check_language(language)
        duration_s = len(audio) / WHISPER_SAMPLE_RATE_HZ
        if len(audio) == 0:
            return Transcript(text="", language=language, duration_s=0.0)
        started = time.perf_counter()
        transcript = self._retry_if_unheard(audio, language, self._transcribe(audio, language, duration_s))
        elapsed_s = time.perf_counter() - started
        logger.debug("transcribed audio_s=%.2f ms=%.1f segments=%d chars=%d", duration_s,
                     elapsed_s * 1e3, len(transcript.segments), len(transcript.text))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("transcript: %s", transcript.text)
        return transcript

    def transcribe_batch(self, audios: list[np.ndarray], language: str | None = None) -> list[Transcript]:
        """Transcribes clips that arrived together, in one model call where the backend can.

        Each clip's transcript is what `transcribe` would give, up to the small differences of
        decoding it beside others (it is padded to the longest clip's window). Raises if any clip fails.
        """
        audios = [check_audio(audio) for audio in audios]
        language = language or self.options.language
        check_language(language)
        transcripts: list[Transcript | None] = [
            None if len(audio) else Transcript(text="", language=language, duration_s=0.0) for audio in audios]
        spoken = [index for index, audio in enumerate(audios) if len(audio)]
        if spoken:
            started = time.perf_counter()
            decoded = self._transcribe_batch([audios[index] for index in spoken], language)
            for index, transcript in zip(spoken, decoded, strict=True):
                transcripts[index] = self._retry_if_unheard(audios[index], language, transcript)
            logger.debug("transcribed clips=%d ms=%.1f", len(spoken), (time.perf_counter() - started) * 1e3)
        return transcripts

    @abc.abstractmethod
    def _transcribe(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        """Runs the model on a checked, non-empty clip."""

    def _transcribe_batch(self, audios: list[np.ndarray], language: str | None) -> list[Transcript]:
        """Checked, non-empty clips; backends that batch override this."""
        return [self._transcribe(audio, language, len(audio) / WHISPER_SAMPLE_RATE_HZ) for audio in audios]

    def _transcribe_full_window(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        """Decodes with Whisper's full 30 s window; backends that shorten the window override this."""
        return self._transcribe(audio, language, duration_s)

    def _retry_if_unheard(self, audio: np.ndarray, language: str | None, transcript: Transcript) -> Transcript:
        """Speech the short window did not hear, decoded again with the full window in the same call,
        so the retry runs in the clip's own queue place and slot (issue 14, part 11)."""
        if not needs_full_window(transcript, self.options.encoder_window_s):
            return transcript
        started = time.perf_counter()
        retried = self._transcribe_full_window(audio, language, transcript.duration_s)
        logger.info("full-window retry audio_s=%.2f ms=%.1f heard=%s", transcript.duration_s,
                    (time.perf_counter() - started) * 1e3, bool(retried.text.strip()))
        return choose_retried(transcript, retried)

    def close(self) -> None:  # noqa: B027 - optional hook; in-process models hold nothing to free
        """Frees what the model holds beyond memory."""


def check_audio(audio: np.ndarray) -> np.ndarray:
    if not isinstance(audio, np.ndarray) or audio.ndim != 1:
        raise ValueError("audio must be a 1-D numpy array of 16 kHz samples (use asr.decode_audio)")
    if audio.dtype != np.float32:
        raise ValueError(f"audio must be float32 in [-1, 1], got {audio.dtype}")
    return audio


def needs_full_window(transcript: Transcript, encoder_window_s: float) -> bool:
    """True when the VAD found speech but the transcript is empty or Whisper judged every segment
    no-speech, and the window was shorter than 30 s: a short window can drop speech
    (docs/operations.md, "Voice: speech that was not transcribed")."""
    if encoder_window_s >= WHISPER_WINDOW_S or not transcript.speech_detected:
        return False
    if not transcript.text.strip():
        return True
    return all(segment.no_speech_prob > NO_SPEECH_PROB_LIMIT for segment in transcript.segments)


def choose_retried(first: Transcript, retried: Transcript) -> Transcript:
    """The retry's transcript when it heard words, else the first one; either way speech was detected."""
    chosen = retried if retried.text.strip() or not first.text.strip() else first
    return dataclasses.replace(chosen, speech_detected=True, full_window_retry=True)


def join_segment_texts(segments: list[Segment]) -> str:
    return " ".join(text for text in (segment.text.strip() for segment in segments) if text)


def clamp_segment(start_s: float, end_s: float, duration_s: float) -> tuple[float, float]:
    """Whisper's timestamps come in 20 ms steps and can overshoot the clip; keep them inside it."""
    start_s = min(max(0.0, start_s), duration_s)
    return start_s, min(max(start_s, end_s), duration_s)
