"""Streaming voice activity detection: speech probability per 32 ms frame, state carried across chunks.

The Silero model that faster-whisper ships (`faster_whisper.vad.get_vad_model`) is an LSTM over
512-sample frames, each given the 64 samples before it as context. faster-whisper runs it over a
whole clip at once; here each call runs it only over the frames the new audio completes, carrying
the LSTM state (h, c), the 64-sample context and the unfinished frame to the next call. The
probabilities are exactly those of one pass over the whole stream (tests/asr/test_vad.py), and the
work per chunk no longer grows with the utterance (issue 15, part 5).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

FRAME_SAMPLES = 512  # Silero's frame at 16 kHz: 32 ms
CONTEXT_SAMPLES = 64  # samples of the previous frame Silero sees before each frame
STATE_SHAPE = (1, 1, 128)  # Silero v6's LSTM state (h and c)


class FrameDetector(Protocol):
    """Speech probabilities for a 16 kHz stream, fed in pieces of any length."""

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Adds audio; returns one probability per FRAME_SAMPLES frame it completed (often none)."""

    def flush(self) -> np.ndarray:
        """The stream ended: the probability of the last, zero-padded frame, if one was begun."""


class FrameBuffer:
    """Cuts audio arriving in pieces of any length into whole frames; keeps the unfinished one."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES):
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float32)  # always shorter than one frame

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """The whole frames `samples` completes, as an array of shape (n, frame_samples)."""
        joined = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = len(joined) // self.frame_samples * self.frame_samples
        self._pending = joined[whole:].copy()
        return joined[:whole].reshape(-1, self.frame_samples)

    def rest(self) -> np.ndarray:
        """The unfinished frame padded with zeros (shape (1, frame_samples)), or no frame."""
        if not len(self._pending):
            return np.zeros((0, self.frame_samples), dtype=np.float32)
        padded = np.zeros((1, self.frame_samples), dtype=np.float32)
        padded[0, : len(self._pending)] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        return padded


class StreamingSileroVad:
    """faster-whisper's Silero VAD run incrementally; one per stream (it holds the stream's state)."""

    def __init__(self):
        from faster_whisper.vad import get_vad_model  # one ONNX session per process, shared

        self._session = get_vad_model().session
        self._buffer = FrameBuffer()
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        return self._run(self._buffer.frames(samples))

    def flush(self) -> np.ndarray:
        return self._run(self._buffer.rest())

    def _run(self, frames: np.ndarray) -> np.ndarray:
        if not len(frames):
            return np.zeros(0, dtype=np.float32)
        contexts = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT_SAMPLES:]])
        batch = np.concatenate([contexts, frames], axis=1)
        probabilities, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = frames[-1, -CONTEXT_SAMPLES:].copy()
        return np.asarray(probabilities, dtype=np.float32).reshape(-1)
