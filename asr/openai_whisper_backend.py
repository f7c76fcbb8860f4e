"""The optional backend: OpenAI's reference Whisper (PyTorch), for users with its checkpoints.

It is not a default dependency: `openai-whisper` pulls the ~1 GB `triton` compiler package.
Install it with the extra (`pip install 'moderation-gateway[asr-openai]'`, or plain
`pip install openai-whisper`). What it can load:
- a `.pt` checkpoint path (the documented offline form), or
- a model name ("tiny.en", "base", ...), which whisper looks for in its download directory
  (`cache_dir`, default ~/.cache/whisper) and downloads when it is missing and the host is
  reachable. It cannot read the CTranslate2 directories faster-whisper uses.

We always pass the decoded array: `whisper.audio.load_audio` would run the ffmpeg binary on a
path. openai-whisper has no VAD of its own, so where faster-whisper is installed we run its
Silero VAD first and return an empty transcript for a clip without speech, as the default
backend does. Whisper's decoder installs key-value-cache hooks on the shared model for each
call, so calls are serialised with a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from asr.errors import ModelUnavailable
from asr.transcriber import (
    Segment,
    Transcriber,
    TranscriberOptions,
    Transcript,
    clamp_segment,
    join_segment_texts,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'moderation-gateway[asr-openai]' (the openai-whisper package)"


class OpenAIWhisperTranscriber(Transcriber):
    def __init__(self, options: TranscriberOptions):
        super().__init__(options)
        _check_model_argument(options.model)
        whisper = _import_whisper()
        self._lock = threading.Lock()
        self._model = _load_model(whisper, options)

    def _transcribe(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        if self.options.vad_filter and not _has_speech(audio):
            return Transcript(text="", language=language, duration_s=duration_s)
        with self._lock:
            result = self._model.transcribe(
                audio,
                language=language,
                beam_size=self.options.beam_size if self.options.beam_size > 1 else None,
                fp16=self.options.compute_type == "float16",
                condition_on_previous_text=False,
                verbose=None,
            )
        segments = [_to_segment(raw, duration_s) for raw in result["segments"]]
        return Transcript(
            text=join_segment_texts(segments),
            segments=segments,
            language=result.get("language", language),
            duration_s=duration_s,
            speech_detected=self.options.vad_filter or bool(segments),  # the VAD above found speech
        )


def _check_model_argument(model: str) -> None:
    """Refuses a CTranslate2 directory before importing anything (whisper would fail obscurely)."""
    path = Path(model).expanduser()
    if path.is_dir():
        raise ModelUnavailable(
            f"openai-whisper loads a .pt checkpoint or a model name, not the directory {path} "
            "(CTranslate2 models such as the packaged tiny.en need backend='faster-whisper')"
        )


def _import_whisper():
    try:
        import whisper
    except ImportError as err:
        raise ModelUnavailable(f"the openai-whisper backend is not installed: {INSTALL_HINT}") from err
    if not hasattr(whisper, "load_model"):  # another package named `whisper` (a graphite library)
        raise ModelUnavailable(f"the installed `whisper` module is not openai-whisper: {INSTALL_HINT}")
    return whisper


def _load_model(whisper, options: TranscriberOptions):
    started = time.perf_counter()
    try:
        model = whisper.load_model(options.model, device=options.device, download_root=options.cache_dir)
    except (RuntimeError, OSError, ValueError) as err:  # unknown name, no download host, bad file
        raise ModelUnavailable(
            f"openai-whisper could not load {options.model!r} (pass a local .pt checkpoint where its "
            f"download host is unreachable): {err}"
        ) from err
    logger.info("loaded openai-whisper model=%s device=%s compute_type=%s s=%.2f", options.model,
                options.device, options.compute_type, time.perf_counter() - started)
    return model


def _has_speech(audio: np.ndarray) -> bool:
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:  # no VAD available: let Whisper decide
        return True
    return bool(get_speech_timestamps(audio, VadOptions()))


def _to_segment(raw: dict, duration_s: float) -> Segment:
    start_s, end_s = clamp_segment(float(raw["start"]), float(raw["end"]), duration_s)
    return Segment(
        start_s=start_s,
        end_s=end_s,
        text=str(raw["text"]).strip(),
        avg_logprob=float(raw["avg_logprob"]),
        no_speech_prob=float(raw["no_speech_prob"]),
    )
