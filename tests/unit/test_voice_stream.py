"""StreamVoice's input limits (gateway.voice_stream) on real chunk messages, with a recording segmenter.

Only refusals that no slowness can undo are asserted as refusals (60 s of audio sent at once),
and acceptances get slack that a loaded machine only widens (a late chunk looks slower, not faster).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("av", reason="the asr extra is not installed")

from contract.pb import moderation_pb2  # noqa: E402
from gateway.boundary import RequestLog  # noqa: E402
from gateway.errors import InvalidInput  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.voice import VoicePipeline  # noqa: E402
from gateway.voice_stream import ChunkReader, StreamExpired, StreamInput, StreamLimits  # noqa: E402

RATE = 16000


class RecordingSegmenter:
    def __init__(self):
        self.samples = 0
        self.finished = False

    def feed(self, samples):
        self.samples += len(samples)
        return []

    def finish(self):
        self.finished = True
        return ["last"]


class PcmVoice:
    settings = Settings()  # check_language reads the Whisper model's languages from it
    check_language = VoicePipeline.check_language
    pcm16_stream = VoicePipeline.pcm16_stream


def chunk(seconds: float, first: bool = False, rate: int = RATE, **fields):
    pcm = np.zeros(int(seconds * rate), dtype="<i2").tobytes()
    return moderation_pb2.AudioChunk(pcm16=pcm, sample_rate_hz=rate if first else 0, **fields)


def run(chunks, **limits):
    settings = Settings().replace(**limits)
    segmenter = RecordingSegmenter()
    stream = StreamInput(PcmVoice(), StreamLimits.from_settings(settings), segmenter, RequestLog("stream"))
    return list(stream.utterances(chunks)), segmenter, stream


def paced(chunks, every_s: float):
    for item in chunks:
        yield item
        time.sleep(every_s)


def test_live_paced_audio_is_accepted_and_flushed_at_the_end():
    chunks = [chunk(0.5, first=True, language="en", request_id="r-1")] + [chunk(0.5) for _ in range(5)]
    out, segmenter, stream = run(paced(chunks, 0.25), stream_burst_s=1.0)  # 2x real time: the limit
    assert out == ["last"] and segmenter.finished
    assert segmenter.samples == 3 * RATE and stream.language == "en" and stream.log.request_id == "r-1"
    assert stream.log.size == 6


def test_audio_far_faster_than_real_time_is_refused():
    with pytest.raises(InvalidInput, match=r"faster than 2x real time"):
        run([chunk(2.0, first=True)] + [chunk(2.0) for _ in range(30)])


def test_a_short_chunk_may_only_be_the_last():
    out, segmenter, _ = run([chunk(0.1, first=True), chunk(0.1), chunk(0.005)])
    assert out == ["last"] and segmenter.samples == int(0.205 * RATE)
    with pytest.raises(InvalidInput, match="less than 20 ms"):
        run([chunk(0.1, first=True), chunk(0.005), chunk(0.1)])
    with pytest.raises(InvalidInput, match="less than 20 ms"):  # 2-byte chunks, the probe of issue 15
        run([moderation_pb2.AudioChunk(pcm16=b"\0\0", sample_rate_hz=RATE)] * 3)


def test_only_the_first_chunk_may_be_empty():
    out, _, _ = run([moderation_pb2.AudioChunk(sample_rate_hz=RATE), chunk(0.1)])
    assert out == ["last"]
    with pytest.raises(InvalidInput, match="less than 20 ms"):
        run([chunk(0.1, first=True)] + [moderation_pb2.AudioChunk()] * 2)


@pytest.mark.parametrize("first, needle", [
    (moderation_pb2.AudioChunk(pcm16=b"\0\0" * 800), "sample_rate_hz"),
    (chunk(0.1, first=True, rate=1), "outside"),
    (moderation_pb2.AudioChunk(pcm16=b"\0" * 3, sample_rate_hz=RATE), "whole samples"),
    (moderation_pb2.AudioChunk(pcm16=b"\0" * (64 * 1024 + 2), sample_rate_hz=RATE), "limit"),
])
def test_bad_chunks_are_invalid_argument(first, needle):
    with pytest.raises(InvalidInput, match=needle):
        run([first])


def test_an_unknown_language_is_invalid_argument_naming_the_known_ones():
    # the default model, tiny.en, knows English only
    with pytest.raises(InvalidInput, match="'xx' is not supported; accepted: en$"):
        run([chunk(0.1, first=True, language="xx")])
    PcmVoice.settings = Settings(whisper_model="base")  # a multilingual model: Whisper's own list
    try:
        with pytest.raises(InvalidInput, match="'xx' is not supported; accepted: af, am, ar"):
            run([chunk(0.1, first=True, language="xx")])
    finally:
        PcmVoice.settings = Settings()


def test_rate_may_not_change_mid_stream():
    with pytest.raises(InvalidInput, match="changed"):
        run([chunk(0.1, first=True), chunk(0.1, first=True, rate=8000)])


def test_stream_audio_limit():
    with pytest.raises(InvalidInput, match="limit of 1 s of audio"):
        run([chunk(0.6, first=True), chunk(0.6)], max_stream_s=1.0)


def test_a_silent_client_is_cut_off_and_the_reader_thread_ends():
    release = threading.Event()

    def stalls():
        yield chunk(0.1, first=True)
        release.wait(30)  # like gRPC's iterator, blocked until the call ends

    before = threading.active_count()
    started = time.monotonic()
    with pytest.raises(StreamExpired, match="no audio for 0.3 s") as caught:
        run(stalls(), stream_idle_timeout_s=0.3)
    assert caught.value.code.name == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 20
    release.set()  # gRPC ends the call after the handler's error
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


def test_wall_clock_cap_ends_a_stream_that_keeps_sending():
    def forever():
        yield chunk(0.1, first=True)
        while True:
            time.sleep(0.1)
            yield chunk(0.1)

    with pytest.raises(StreamExpired, match="open for 0.5 s"):
        run(forever(), stream_max_wall_s=0.5)


def test_errors_from_the_request_iterator_reach_the_handler():
    def broken():
        yield chunk(0.1, first=True)
        raise RuntimeError("cancelled by the caller")

    with pytest.raises(RuntimeError, match="cancelled"):
        run(broken())


def test_reader_stops_reading_when_the_handler_has_gone():
    reads = []

    def endless():
        while True:
            reads.append(1)
            yield chunk(0.1)

    with ChunkReader(endless(), idle_timeout_s=5, max_wall_s=60) as reader:
        next(iter(reader))
    time.sleep(0.5)
    count = len(reads)
    time.sleep(0.5)
    assert len(reads) == count  # blocked on its full queue, then stopped
