"""UtteranceSegmenter with a deterministic frame detector: a frame is speech when it is loud."""

import numpy as np
import pytest

from asr.utterances import WHISPER_SAMPLE_RATE_HZ, UtteranceSegmenter
from asr.vad import FRAME_SAMPLES, FrameBuffer

FRAME_S = FRAME_SAMPLES / WHISPER_SAMPLE_RATE_HZ  # the segmenter's time resolution


class LoudFrames:
    """Probability 1 for a frame whose mean level is over 0.5, else 0; counts the samples it judged."""

    def __init__(self):
        self.buffer = FrameBuffer()
        self.judged = 0

    def feed(self, samples):
        return self._judge(self.buffer.frames(samples))

    def flush(self):
        return self._judge(self.buffer.rest())

    def _judge(self, frames):
        self.judged += frames.size
        return (np.abs(frames).mean(axis=1) > 0.5).astype(np.float32) if len(frames) else np.zeros(0)


def seconds(s: float, level: float = 0.0) -> np.ndarray:
    return np.full(int(s * WHISPER_SAMPLE_RATE_HZ), level, dtype=np.float32)


def feed_in_chunks(segmenter, audio, chunk_s=0.1):
    step = int(chunk_s * WHISPER_SAMPLE_RATE_HZ)
    out = []
    for offset in range(0, len(audio), step):
        out.extend(segmenter.feed(audio[offset : offset + step]))
    return out


def near(a: float, b: float) -> bool:
    return abs(a - b) <= FRAME_S + 1e-6


@pytest.mark.parametrize("chunk_s", [0.02, 0.1, 0.37, 2.0])
def test_utterance_is_emitted_after_enough_silence_not_at_the_end(chunk_s):
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, pad_s=0.0)
    stream = np.concatenate([seconds(0.5), seconds(1.0, 0.9), seconds(0.5), seconds(0.8, 0.9), seconds(0.6)])
    emitted = feed_in_chunks(segmenter, stream, chunk_s)
    assert [u.index for u in emitted] == [0, 1]
    assert near(emitted[0].start_s, 0.5) and near(emitted[0].end_s, 1.5)
    assert near(emitted[1].start_s, 2.0) and near(emitted[1].end_s, 2.8)
    assert len(emitted[1].audio) == round((emitted[1].end_s - emitted[1].start_s) * WHISPER_SAMPLE_RATE_HZ)
    assert np.abs(emitted[1].audio).mean() > 0.8  # the speech itself, not the silence around it
    assert segmenter.finish() == []


def test_padding_keeps_the_onset_and_the_tail():
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, pad_s=0.1)
    (utterance,) = feed_in_chunks(segmenter, np.concatenate([seconds(1.0), seconds(1.0, 0.9), seconds(1.0)]))
    assert near(utterance.start_s, 0.9) and near(utterance.end_s, 2.1)


def test_speech_still_going_waits_then_finish_flushes_it():
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, pad_s=0.0)
    assert feed_in_chunks(segmenter, np.concatenate([seconds(0.2), seconds(1.0, 0.9), seconds(0.1)])) == []
    last = segmenter.finish()
    assert len(last) == 1 and near(last[0].end_s, 1.2)


def test_speech_to_the_last_sample_ends_at_the_stream_end():
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, pad_s=0.1)
    feed_in_chunks(segmenter, np.concatenate([seconds(0.5), seconds(0.61, 0.9)]))
    (last,) = segmenter.finish()
    assert abs(last.end_s - segmenter.total_s) < 1e-6 and len(last.audio) > 0


def test_long_speech_is_cut_at_the_limit():
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, max_utterance_s=2.0)
    emitted = feed_in_chunks(segmenter, seconds(5.0, 0.9)) + segmenter.finish()
    assert len(emitted) == 3 and all(u.end_s - u.start_s <= 2.0 + 1e-6 for u in emitted)
    assert [u.index for u in emitted] == [0, 1, 2]
    assert sum(len(u.audio) for u in emitted) == len(seconds(5.0))  # cut, nothing lost or repeated


def test_silence_only_keeps_the_buffer_small():
    segmenter = UtteranceSegmenter(LoudFrames(), min_silence_s=0.3, pad_s=0.1)
    assert feed_in_chunks(segmenter, seconds(20.0)) == []
    assert segmenter.kept_s <= 0.1 + 0.1 + FRAME_S  # the pad, one chunk, one unfinished frame
    assert abs(segmenter.total_s - 20.0) < 0.01


def test_each_sample_is_judged_once_however_long_the_utterance():
    """The quadratic path re-ran the VAD over the whole utterance for every chunk (issue 15)."""
    detector = LoudFrames()
    segmenter = UtteranceSegmenter(detector, min_silence_s=0.3, max_utterance_s=15.0)
    stream = np.concatenate([seconds(14.0, 0.9), seconds(1.0)])
    assert len(feed_in_chunks(segmenter, stream, chunk_s=0.02) + segmenter.finish()) == 1
    assert len(stream) <= detector.judged < len(stream) + FRAME_SAMPLES


def test_options_are_checked():
    with pytest.raises(ValueError, match="pad_s"):
        UtteranceSegmenter(LoudFrames(), min_silence_s=0.1, pad_s=0.2)
    with pytest.raises(ValueError, match="max_utterance_s"):
        UtteranceSegmenter(LoudFrames(), max_utterance_s=0.01)
