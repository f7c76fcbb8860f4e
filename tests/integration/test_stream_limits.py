"""StreamVoice limits on the real gateway (issue 15, part 5): the probes that once held a stream
slot or burned CPU now end the stream with a clear status, and the slot comes back."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from contract.pb import moderation_pb2

pytestmark = pytest.mark.integration

RATE = 16000


def silence(seconds: float, first: bool = False) -> moderation_pb2.AudioChunk:
    pcm = np.zeros(int(seconds * RATE), dtype="<i2").tobytes()
    return moderation_pb2.AudioChunk(pcm16=pcm, sample_rate_hz=RATE if first else 0)


def stream_status(stub, chunks, timeout_s: float = 60) -> tuple[grpc.StatusCode, str]:
    try:
        list(stub.StreamVoice(chunks, timeout=timeout_s))
    except grpc.RpcError as err:
        return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def reader_threads() -> int:
    return sum(thread.name == "stream-reader" for thread in threading.enumerate())


def wait_for_no_readers(timeout_s: float = 15) -> int:
    deadline = time.monotonic() + timeout_s
    while reader_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    return reader_threads()


def test_two_byte_chunks_are_refused(stub):
    chunks = [moderation_pb2.AudioChunk(pcm16=b"\0\0", sample_rate_hz=RATE)] + [
        moderation_pb2.AudioChunk(pcm16=b"\0\0")] * 1000
    code, details = stream_status(stub, iter(chunks))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "20 ms" in details


def test_audio_far_faster_than_real_time_is_refused(stub):
    code, details = stream_status(stub, iter([silence(2.0, first=True)] + [silence(2.0)] * 60))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "real time" in details


def test_an_idle_stream_ends_with_deadline_exceeded_and_frees_its_slot(gateway, stub):
    settings = gateway.gateway.service.settings
    hang_up = threading.Event()

    def stalls():
        yield silence(0.5, first=True)
        hang_up.wait(120)  # the client says nothing more and never closes its side

    started = time.monotonic()
    code, details = stream_status(stub, stalls(), timeout_s=120)
    hang_up.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "no audio" in details
    assert time.monotonic() - started < settings.stream_idle_timeout_s + 30
    assert wait_for_no_readers() == 0
    streams = settings.max_streams  # every slot is free again: as many silent streams as slots pass
    results = []

    def one_stream():
        results.append(stream_status(stub, iter([silence(0.5, first=True), silence(0.5)]))[0])

    threads = [threading.Thread(target=one_stream) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [grpc.StatusCode.OK] * streams


def test_a_client_that_cancels_leaves_no_reader_behind(stub):
    def slow():
        yield silence(0.5, first=True)
        while True:
            time.sleep(0.25)
            yield silence(0.25)

    call = stub.StreamVoice(slow(), timeout=60)
    time.sleep(1.0)
    call.cancel()
    with pytest.raises(grpc.RpcError) as caught:
        list(call)
    assert caught.value.code() == grpc.StatusCode.CANCELLED
    assert wait_for_no_readers() == 0


# --- the input probes of issue 15 that reach the speech path (parts 4 and 6) ----------------------

def test_an_unknown_language_is_invalid_argument_not_internal(stub, toxic_speech):
    request = moderation_pb2.ClassifyVoiceRequest(audio=toxic_speech.path.read_bytes(), language="xx")
    with pytest.raises(grpc.RpcError) as caught:
        stub.ClassifyVoice(request, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'xx'" in caught.value.details() and "en" in caught.value.details()
    first = moderation_pb2.AudioChunk(pcm16=b"\0\0" * 1600, sample_rate_hz=RATE, language="klingon")
    code, details = stream_status(stub, iter([first]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "klingon" in details


def test_a_clip_with_video_is_refused_naming_what_is_accepted(stub, toxic_speech, tmp_path):
    from tests.asr.speech import ffmpeg

    clip = ffmpeg(toxic_speech.path, tmp_path / "clip.mp4", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5",
                  "-map", "1:v", "-map", "0:a", "-shortest", "-c:v", "mpeg4", "-c:a", "aac")
    with pytest.raises(grpc.RpcError) as caught:
        stub.ClassifyVoice(moderation_pb2.ClassifyVoiceRequest(audio=clip.read_bytes()), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "video stream; accepted: WAV" in caught.value.details()


def test_malformed_protobuf_is_invalid_argument(gateway):
    truncated = moderation_pb2.ClassifyVoiceRequest(audio=b"\0" * 100, language="en").SerializeToString()[:-2]
    call = gateway.channel.unary_unary("/moderation.v1.Moderation/ClassifyVoice")
    with pytest.raises(grpc.RpcError) as caught:
        call(truncated, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed request" in caught.value.details()
