"""The default backend: faster-whisper (CTranslate2), which runs the packaged models.

Settings that matter for short game clips:
- `condition_on_previous_text=False`: each clip stands alone, and conditioning lets one bad
  segment repeat through the rest (faster-whisper's own advice against hallucination loops).
- `without_timestamps=False`: segment times tell moderators where in the clip a thing was said.
- `vad_filter`: Silero VAD removes non-speech first; a silent clip yields no segments at all,
  and faster-whisper maps the segment times back onto the original clip.
- `num_workers` lets that many transcriptions run at once on one loaded model (CTranslate2's
  `inter_threads`); each uses `cpu_threads` threads.
- `encoder_window_s` below 30: faster-whisper pads each window's mel frames with zeros to 30 s
  before `WhisperModel.encode`; the model here cuts that padding back to the clip plus 1 s (at
  least the window asked for) first. CTranslate2 encodes windows of any length, and the decoder's
  timestamps are relative to the window's start, so segment times are unchanged. The short window
  can drop speech, so a clip the VAD found speech in but that came back empty is decoded again
  with the full window (`Transcriber._retry_if_unheard`; docs/operations.md).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ
from asr.batched_decode import decode_together
from asr.errors import ModelUnavailable
from asr.models import resolve_ctranslate2_model
from asr.transcriber import (
    WHISPER_WINDOW_S,
    Segment,
    Transcriber,
    TranscriberOptions,
    Transcript,
    clamp_segment,
    join_segment_texts,
)

logger = logging.getLogger(__name__)


class FasterWhisperTranscriber(Transcriber):
    def __init__(self, options: TranscriberOptions):
        super().__init__(options)
        cache_dir = Path(options.cache_dir) if options.cache_dir else None
        self.model_path = resolve_ctranslate2_model(options.model, cache_dir)
        self._model = _load_model(self.model_path, options)

    def _transcribe_batch(self, audios: list[np.ndarray], language: str | None) -> list[Transcript]:
        if len(audios) == 1 or (language is None and self._model.model.is_multilingual):
            return super()._transcribe_batch(audios, language)  # one clip, or a language to detect per clip
        if not self._model.model.is_multilingual:
            language = "en"  # as faster-whisper does for English-only models
        decoded = decode_together(self._model, audios, language, self.options.beam_size, self.options.vad_filter)
        transcripts = []
        for audio, (segments, speech_detected) in zip(audios, decoded, strict=True):
            duration_s = len(audio) / WHISPER_SAMPLE_RATE_HZ
            if segments is None:  # needs faster-whisper's full loop (long, or retried warmer)
                transcripts.append(self._transcribe(audio, language, duration_s))
                continue
            result = [_to_segment(segment, duration_s) for segment in segments]
            transcripts.append(Transcript(text=join_segment_texts(result), segments=result, language=language,
                                          duration_s=duration_s, speech_detected=speech_detected))
        return transcripts

    def _transcribe(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        segments, info = self._model.transcribe(
            audio,
            language=language,
            beam_size=self.options.beam_size,
            vad_filter=self.options.vad_filter,
            condition_on_previous_text=False,
            without_timestamps=False,
        )
        result = [_to_segment(segment, duration_s) for segment in segments]  # decoding happens here
        return Transcript(
            text=join_segment_texts(result),
            segments=result,
            language=info.language,
            duration_s=duration_s,
            speech_detected=info.duration_after_vad > 0 if self.options.vad_filter else bool(result),
        )

    def _transcribe_full_window(self, audio: np.ndarray, language: str | None, duration_s: float) -> Transcript:
        with self._model.full_window():
            return self._transcribe(audio, language, duration_s)


MEL_FRAMES_PER_S = 100  # Whisper's feature hop: 10 ms
_WINDOW_MARGIN_FRAMES = MEL_FRAMES_PER_S  # silence kept after the clip, so speech never ends at the edge


def shortened_window(features: np.ndarray, min_frames: int) -> np.ndarray:
    """`features` ([batch x] mels x frames, zero-padded at the end to 30 s) cut to the frames that hold
    audio plus a 1 s margin, and to at least `min_frames`; always an even count (the encoder
    halves it)."""
    frames = features.shape[-1]
    # padding columns are exact zeros; a real log-mel column never is (its floor is max - 8 dB)
    has_audio = np.flatnonzero(np.any(features.reshape(-1, frames) != 0, axis=0))
    used = int(has_audio[-1]) + 1 if len(has_audio) else 0
    keep = min(frames, max(used + _WINDOW_MARGIN_FRAMES, min_frames))
    keep += keep % 2
    return features if keep >= frames else np.ascontiguousarray(features[..., :keep])


def _load_model(model_path: str, options: TranscriberOptions):
    try:
        from faster_whisper import WhisperModel
    except ImportError as err:
        raise ModelUnavailable("faster-whisper is not installed: pip install 'moderation-gateway[asr]'") from err
    min_frames = round(options.encoder_window_s * MEL_FRAMES_PER_S)
    full_window = threading.local()  # per thread: runner threads share one in-process model

    class WindowedWhisperModel(WhisperModel):
        def encode(self, features: np.ndarray):
            if min_frames >= WHISPER_WINDOW_S * MEL_FRAMES_PER_S or getattr(full_window, "on", False):
                return super().encode(features)
            return super().encode(shortened_window(features, min_frames))

        @contextmanager
        def full_window(self):
            """Encodes the full 30 s window in this thread until the block ends."""
            full_window.on = True
            try:
                yield
            finally:
                full_window.on = False

    started = time.perf_counter()
    try:
        model = WindowedWhisperModel(
            model_path,
            device=options.device,
            compute_type=options.compute_type,
            cpu_threads=options.cpu_threads,
            num_workers=options.num_workers,
        )
    except (RuntimeError, ValueError, OSError) as err:  # CUDA missing, bad files, hub unreachable
        raise ModelUnavailable(f"could not load Whisper model {model_path!r} on {options.device}: {err}") from err
    logger.info("loaded whisper model=%s device=%s compute_type=%s threads=%d workers=%d window_s=%g s=%.2f",
                model_path, options.device, options.compute_type, options.cpu_threads,
                options.num_workers, options.encoder_window_s, time.perf_counter() - started)
    return model


def _to_segment(segment, duration_s: float) -> Segment:
    start_s, end_s = clamp_segment(segment.start, segment.end, duration_s)
    return Segment(
        start_s=start_s,
        end_s=end_s,
        text=segment.text.strip(),
        avg_logprob=float(segment.avg_logprob),
        no_speech_prob=float(segment.no_speech_prob),
    )
