"""UtteranceSegmenter with a deterministic detector: 'speech' is any sample above 0.5."""

import numpy as np

from asr.utterances import WHISPER_SAMPLE_RATE_HZ, UtteranceSegmenter


def loud_spans(audio: np.ndarray) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, loud in enumerate(np.abs(audio) > 0.5):
        if loud and start is None:
            start = i
        if not loud and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(audio)))
    return spans


def seconds(s: float, level: float = 0.0) -> np.ndarray:
    return np.full(int(s * WHISPER_SAMPLE_RATE_HZ), level, dtype=np.float32)


def feed_in_chunks(segmenter, audio, chunk_s=0.1):
    step = int(chunk_s * WHISPER_SAMPLE_RATE_HZ)
    out = []
    for offset in range(0, len(audio), step):
        out.extend(segmenter.feed(audio[offset : offset + step]))
    return out


def test_utterance_is_emitted_after_enough_silence_not_at_the_end():
    segmenter = UtteranceSegmenter(loud_spans, min_silence_s=0.3, check_every_s=0.1)
    stream = np.concatenate([seconds(0.5), seconds(1.0, 0.9), seconds(0.5), seconds(0.8, 0.9), seconds(0.6)])
    emitted = feed_in_chunks(segmenter, stream)
    assert [u.index for u in emitted] == [0, 1]
    assert abs(emitted[0].start_s - 0.5) < 0.01 and abs(emitted[0].end_s - 1.5) < 0.01
    assert abs(emitted[1].start_s - 2.0) < 0.01 and abs(emitted[1].end_s - 2.8) < 0.01
    assert len(emitted[1].audio) == int(0.8 * WHISPER_SAMPLE_RATE_HZ)
    assert segmenter.finish() == []


def test_speech_still_going_waits_then_finish_flushes_it():
    segmenter = UtteranceSegmenter(loud_spans, min_silence_s=0.3, check_every_s=0.1)
    assert feed_in_chunks(segmenter, np.concatenate([seconds(0.2), seconds(1.0, 0.9), seconds(0.1)])) == []
    last = segmenter.finish()
    assert len(last) == 1 and abs(last[0].end_s - 1.2) < 0.01


def test_long_speech_is_cut_at_the_limit():
    segmenter = UtteranceSegmenter(loud_spans, min_silence_s=0.3, check_every_s=0.1, max_utterance_s=2.0)
    emitted = feed_in_chunks(segmenter, seconds(5.0, 0.9))
    assert emitted and all(u.end_s - u.start_s <= 2.2 for u in emitted)
    assert [u.index for u in emitted] == list(range(len(emitted)))


def test_silence_only_keeps_the_buffer_small():
    segmenter = UtteranceSegmenter(loud_spans, min_silence_s=0.3, check_every_s=0.1, keep_before_s=0.5)
    assert feed_in_chunks(segmenter, seconds(20.0)) == []
    assert len(segmenter._buffer) <= int(0.6 * WHISPER_SAMPLE_RATE_HZ)
    assert abs(segmenter.total_s - 20.0) < 0.01
