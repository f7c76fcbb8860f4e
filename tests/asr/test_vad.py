"""The streaming Silero VAD gives exactly the probabilities of one pass over the whole stream."""

import numpy as np
import pytest

from asr.vad import FRAME_SAMPLES, FrameBuffer, StreamingSileroVad


@pytest.fixture(scope="module")
def speech(audio_tools):
    from loadtest.speech import speak_audio

    spoken = speak_audio("shut up you stupid idiot, your team is trash")
    return np.concatenate([np.zeros(8000, np.float32), spoken, np.zeros(16000, np.float32)])


def whole_clip_probabilities(audio):
    from faster_whisper.vad import get_vad_model

    padded = np.pad(audio, (0, -len(audio) % FRAME_SAMPLES))
    return np.asarray(get_vad_model()(padded)).reshape(-1)


@pytest.mark.parametrize("chunk_samples", [320, 512, 1600, 7777])
def test_chunked_probabilities_equal_one_pass(speech, chunk_samples):
    vad = StreamingSileroVad()
    pieces = [vad.feed(speech[i : i + chunk_samples]) for i in range(0, len(speech), chunk_samples)]
    streamed = np.concatenate(pieces + [vad.flush()])
    expected = whole_clip_probabilities(speech)
    assert streamed.shape == expected.shape
    np.testing.assert_allclose(streamed, expected, atol=1e-5)
    assert (streamed > 0.5).sum() > 20  # it heard the sentence


def test_silence_is_not_speech():
    vad = StreamingSileroVad()
    probabilities = vad.feed(np.zeros(16000, np.float32))
    assert len(probabilities) == 16000 // FRAME_SAMPLES and probabilities.max() < 0.5


def test_frame_buffer_keeps_the_unfinished_frame():
    buffer = FrameBuffer(4)
    assert buffer.frames(np.arange(3, dtype=np.float32)).shape == (0, 4)
    assert buffer.frames(np.arange(3, 9, dtype=np.float32)).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert buffer.rest().tolist() == [[8, 0, 0, 0]]
    assert buffer.rest().shape == (0, 4)
