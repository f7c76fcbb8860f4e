"""Cuts a live 16 kHz audio stream into utterances with voice activity detection (VAD).

Audio arrives in small chunks. Each chunk goes once through a streaming frame detector (asr.vad:
Silero with its state carried), and a small state machine over the frames' speech probabilities
finds utterances: speech starts at a frame over `threshold`; it ends when frames under
`neg_threshold` have lasted `min_silence_s` (the hysteresis of faster-whisper's
`get_speech_timestamps`). A finished utterance is handed out at once, without waiting for the
stream to close; one that runs past `max_utterance_s` is cut there, so a player who never pauses
still gets verdicts. Every chunk costs the same whatever the utterance's length: nothing already
seen is looked at again, and only the audio an utterance may still need is kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from asr.audio import WHISPER_SAMPLE_RATE_HZ
from asr.vad import FRAME_SAMPLES, FrameDetector


@dataclass(frozen=True)
class Utterance:
    index: int
    start_s: float  # stream time
    end_s: float
    audio: np.ndarray


class AudioTape:
    """The recent part of a stream, kept as the chunks that arrived (appending copies nothing old)."""

    def __init__(self):
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0  # stream sample index of the first kept sample
        self.end = 0  # stream sample index one past the last sample

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self.end += len(samples)

    def drop_before(self, index: int) -> None:
        """Forgets whole chunks that end at or before stream sample `index`."""
        while self._chunks and self.start + len(self._chunks[0]) <= index:
            self.start += len(self._chunks.popleft())

    def slice(self, start: int, end: int) -> np.ndarray:
        """Stream samples [start, end), clipped to what is kept."""
        kept = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.float32)
        return kept[max(start - self.start, 0) : max(end - self.start, 0)].copy()

    @property
    def kept(self) -> int:
        return self.end - self.start


class UtteranceSegmenter:
    """One stream's utterance cutter; not thread-safe (one per stream)."""

    def __init__(self, detector: FrameDetector, *, min_silence_s: float = 0.4, max_utterance_s: float = 15.0,
                 pad_s: float = 0.1, threshold: float = 0.5, neg_threshold: float | None = None):
        """
        Args:
          detector: Speech probability per FRAME_SAMPLES frame (asr.vad.StreamingSileroVad).
          min_silence_s: Silence that ends an utterance.
          max_utterance_s: An utterance still going after this long is cut.
          pad_s: Audio kept before the first and after the last speech frame, so Whisper hears
            the onset and the tail of the words (at most min_silence_s).
          threshold: A frame at or over this probability is speech.
          neg_threshold: A frame under this is silence; between the two a frame continues what
            came before. None: threshold - 0.15, as faster-whisper does.
        """
        if not 0 <= pad_s <= min_silence_s:
            raise ValueError(f"pad_s must be in 0..min_silence_s ({min_silence_s}), got {pad_s}")
        if max_utterance_s * WHISPER_SAMPLE_RATE_HZ < 2 * FRAME_SAMPLES:
            raise ValueError(f"max_utterance_s must cover at least two VAD frames, got {max_utterance_s}")
        self.detector = detector
        self.min_silence = int(min_silence_s * WHISPER_SAMPLE_RATE_HZ)
        self.max_utterance = int(max_utterance_s * WHISPER_SAMPLE_RATE_HZ)
        self.pad = int(pad_s * WHISPER_SAMPLE_RATE_HZ)
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        self._tape = AudioTape()
        self._frames = 0  # frames the detector has judged
        self._speech_start: int | None = None  # stream sample index; None: not in speech
        self._silence_start: int | None = None  # first silent frame inside the current speech
        self._last_end = 0  # where the previous utterance ended: padding never reaches back past it
        self._count = 0

    @property
    def total_s(self) -> float:
        """Stream time fed so far."""
        return self._tape.end / WHISPER_SAMPLE_RATE_HZ

    @property
    def kept_s(self) -> float:
        """Audio held in memory: bounded by max_utterance_s plus padding and one chunk."""
        return self._tape.kept / WHISPER_SAMPLE_RATE_HZ

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        """Adds audio; returns the utterances that finished with it (often none)."""
        samples = samples.astype(np.float32, copy=False)
        self._tape.append(samples)
        done = self._judge(self.detector.feed(samples))
        self._forget()
        return done

    def finish(self) -> list[Utterance]:
        """The stream ended: whatever speech is left is the last utterance."""
        done = self._judge(self.detector.flush())
        if self._speech_start is not None:
            end = self._tape.end if self._silence_start is None else self._silence_start + self.pad
            done.append(self._utterance(self._speech_start, end))
            self._speech_start = None
        return done

    def _judge(self, probabilities: np.ndarray) -> list[Utterance]:
        done = []
        for probability in probabilities:
            frame_start = self._frames * FRAME_SAMPLES
            frame_end = frame_start + FRAME_SAMPLES
            self._frames += 1
            if self._speech_start is None:
                if probability >= self.threshold:
                    self._speech_start = max(frame_start - self.pad, self._last_end, self._tape.start)
                    self._silence_start = None
                continue
            if probability >= self.threshold:
                self._silence_start = None
            elif probability < self.neg_threshold and self._silence_start is None:
                self._silence_start = frame_start
            if self._silence_start is not None and frame_end - self._silence_start >= self.min_silence:
                done.append(self._utterance(self._speech_start, self._silence_start + self.pad))
                self._speech_start = None
            elif frame_end - self._speech_start >= self.max_utterance:
                cut = self._speech_start + self.max_utterance
                done.append(self._utterance(self._speech_start, cut))
                self._speech_start, self._silence_start = cut, None  # the speech goes on
        return done

    def _utterance(self, start: int, end: int) -> Utterance:
        end = min(end, self._tape.end)  # the last frame of a stream is padded past its end
        utterance = Utterance(self._count, start / WHISPER_SAMPLE_RATE_HZ, end / WHISPER_SAMPLE_RATE_HZ,
                              self._tape.slice(start, end))
        self._count += 1
        self._last_end = end
        return utterance

    def _forget(self) -> None:
        """Drops audio no utterance can need: before the current speech, or before the pad."""
        if self._speech_start is not None:
            self._tape.drop_before(self._speech_start)
        else:
            self._tape.drop_before(self._frames * FRAME_SAMPLES - self.pad)
