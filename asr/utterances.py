"""Cuts a live 16 kHz audio stream into utterances with voice activity detection (VAD).

Audio arrives in small chunks. Every `check_every_s` of new audio the VAD runs over what is
buffered since the last cut; a speech span followed by at least `min_silence_s` of silence is a
finished utterance and is handed out at once, without waiting for the stream to close. A span
that runs past `max_utterance_s` is cut there, so a player who never pauses still gets verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ

# (audio) -> speech spans as (start, end) sample indices, in order
SpeechDetector = Callable[[np.ndarray], list[tuple[int, int]]]


@dataclass(frozen=True)
class Utterance:
    index: int
    start_s: float  # stream time
    end_s: float
    audio: np.ndarray


def silero_detector(min_silence_s: float, pad_s: float = 0.1) -> SpeechDetector:
    """The Silero VAD that ships inside faster-whisper."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=int(min_silence_s * 1000), speech_pad_ms=int(pad_s * 1000))

    def detect(audio: np.ndarray) -> list[tuple[int, int]]:
        return [(span["start"], span["end"]) for span in get_speech_timestamps(audio, options)]

    return detect


class UtteranceSegmenter:
    def __init__(self, detect: SpeechDetector, *, min_silence_s: float = 0.4, check_every_s: float = 0.2,
                 max_utterance_s: float = 15.0, keep_before_s: float = 0.5):
        self.detect = detect
        self.min_silence = int(min_silence_s * WHISPER_SAMPLE_RATE_HZ)
        self.check_every = int(check_every_s * WHISPER_SAMPLE_RATE_HZ)
        self.max_utterance = int(max_utterance_s * WHISPER_SAMPLE_RATE_HZ)
        self.keep_before = int(keep_before_s * WHISPER_SAMPLE_RATE_HZ)  # silence kept so an onset isn't clipped
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream sample index of _buffer[0]
        self._unchecked = 0
        self._count = 0

    @property
    def total_s(self) -> float:
        return (self._offset + len(self._buffer)) / WHISPER_SAMPLE_RATE_HZ

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        """Adds audio; returns the utterances that finished with it (often none)."""
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        self._unchecked += len(samples)
        if self._unchecked < self.check_every:
            return []
        self._unchecked = 0
        return self._cut(final=False)

    def finish(self) -> list[Utterance]:
        """The stream ended: whatever speech is left is the last utterance."""
        return self._cut(final=True)

    def _cut(self, final: bool) -> list[Utterance]:
        spans = self.detect(self._buffer) if len(self._buffer) else []
        done, cut_at = [], None
        for start, end in spans:
            finished = final or len(self._buffer) - end >= self.min_silence
            too_long = end - start >= self.max_utterance
            if not (finished or too_long):
                break
            done.append(self._utterance(start, end))
            cut_at = end
        if cut_at is not None:
            self._drop(cut_at)
        elif not spans and len(self._buffer) > self.keep_before:
            self._drop(len(self._buffer) - self.keep_before)  # only silence: keep a little
        return done

    def _utterance(self, start: int, end: int) -> Utterance:
        utterance = Utterance(self._count, (self._offset + start) / WHISPER_SAMPLE_RATE_HZ,
                              (self._offset + end) / WHISPER_SAMPLE_RATE_HZ, self._buffer[start:end].copy())
        self._count += 1
        return utterance

    def _drop(self, samples: int) -> None:
        self._buffer = self._buffer[samples:]
        self._offset += samples
