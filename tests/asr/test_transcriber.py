"""Real Whisper (the packaged tiny.en) on real speech from espeak-ng, in every codec."""

from __future__ import annotations

import difflib
import os
import re

import numpy as np
import pytest

from asr import (
    WHISPER_SAMPLE_RATE_HZ,
    ModelUnavailable,
    TranscriberOptions,
    Transcript,
    create_transcriber,
    decode_audio,
)
from tests.asr.speech import CODECS

pytestmark = pytest.mark.integration  # every test here loads a real Whisper model


def _contains_all(transcript: Transcript, key_words) -> bool:
    text = transcript.text.lower()
    return all(word in text for word in key_words)


def _assert_segments_inside_clip(transcript: Transcript) -> None:
    previous_start = 0.0
    for segment in transcript.segments:
        assert 0.0 <= segment.start_s <= segment.end_s <= transcript.duration_s
        assert segment.start_s >= previous_start
        assert segment.avg_logprob <= 0.0 and 0.0 <= segment.no_speech_prob <= 1.0
        previous_start = segment.start_s


@pytest.fixture(scope="session")
def codec_transcripts(encoded_toxic, transcriber) -> dict[str, Transcript]:
    """The toxic clip transcribed once per codec."""
    transcripts = {}
    for name, clip in encoded_toxic.items():
        audio = decode_audio(clip.data, format_hint=clip.codec.format_hint, sample_rate_hz=clip.codec.sample_rate_hz)
        transcripts[name] = transcriber.transcribe(audio)
    return transcripts


@pytest.mark.parametrize("codec_name", [codec.name for codec in CODECS])
def test_every_codec_gives_the_key_words(encoded_toxic, codec_transcripts, codec_name):
    clip, transcript = encoded_toxic[codec_name], codec_transcripts[codec_name]

    assert _contains_all(transcript, clip.key_words), f"{codec_name}: {transcript.text!r}"
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(clip.duration_s, abs=0.15)
    assert transcript.segments
    _assert_segments_inside_clip(transcript)


def test_every_codec_gives_the_same_words(codec_transcripts):
    # Lossy codecs may change punctuation ("idiot!" / "idiot,"), so compare words, with a little
    # slack for CPUs whose int8 kernels round differently.
    reference = _words(codec_transcripts["wav_s16"])
    for name, transcript in codec_transcripts.items():
        similarity = difflib.SequenceMatcher(a=reference, b=_words(transcript)).ratio()
        assert similarity >= 0.8, f"{name}: {transcript.text!r} vs {' '.join(reference)!r}"


def _words(transcript: Transcript) -> list[str]:
    return re.findall(r"[a-z']+", transcript.text.lower())


def test_clean_sentence_is_transcribed(clean_speech, transcriber):
    transcript = transcriber.transcribe(decode_audio(clean_speech.path.read_bytes()))

    assert _contains_all(transcript, clean_speech.key_words), transcript.text
    assert "idiot" not in transcript.text.lower()


def test_segments_say_where_each_sentence_was_spoken(toxic_speech, clean_speech, transcriber):
    toxic = decode_audio(toxic_speech.path.read_bytes())
    gap = np.zeros(int(2.5 * WHISPER_SAMPLE_RATE_HZ), dtype=np.float32)  # VAD splits at 2 s silences
    audio = np.concatenate([toxic, gap, decode_audio(clean_speech.path.read_bytes())])

    transcript = transcriber.transcribe(audio)

    _assert_segments_inside_clip(transcript)
    text = transcript.text.lower()
    assert text.index("idiot") < text.index("match"), transcript.text
    match_segment = next(s for s in transcript.segments if "match" in s.text.lower())
    assert match_segment.start_s >= len(toxic) / WHISPER_SAMPLE_RATE_HZ + 1.0, transcript.segments
    assert match_segment.end_s <= transcript.duration_s


@pytest.fixture(scope="module")
def short_window_transcriber():
    """tiny.en encoding the clip plus 1 s, at least 7 s, as the gateway runs it."""
    transcriber = create_transcriber(TranscriberOptions(encoder_window_s=7.0, cpu_threads=1))
    yield transcriber
    transcriber.close()


def test_short_window_keeps_the_words_and_times(toxic_speech, clean_speech, short_window_transcriber, transcriber):
    for speech in (toxic_speech, clean_speech):
        audio = decode_audio(speech.path.read_bytes())
        short, full = short_window_transcriber.transcribe(audio), transcriber.transcribe(audio)

        assert _contains_all(short, speech.key_words), short.text
        _assert_segments_inside_clip(short)
        assert difflib.SequenceMatcher(a=_words(full), b=_words(short)).ratio() >= 0.8, (short.text, full.text)
        assert short.segments[-1].end_s == pytest.approx(full.segments[-1].end_s, abs=0.5)


def test_a_batch_gives_each_clip_its_own_transcript(toxic_speech, clean_speech, silent_wav, short_window_transcriber,
                                                   monkeypatch):
    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    silence = decode_audio(silent_wav.read_bytes())
    empty = np.zeros(0, dtype=np.float32)

    with monkeypatch.context() as patch:  # the batch must not fall back to faster-whisper's own loop
        patch.setattr(short_window_transcriber._model, "transcribe", _must_not_run)
        batch = short_window_transcriber.transcribe_batch([toxic, silence, empty, clean])

    alone = [short_window_transcriber.transcribe(audio) for audio in (toxic, clean)]
    assert [t.text for t in (batch[0], batch[3])] == [t.text for t in alone]
    assert batch[1].text == "" and batch[1].segments == [] and batch[1].duration_s == pytest.approx(3.0)
    assert batch[2].text == "" and batch[2].duration_s == 0.0
    for transcript in (batch[0], batch[3]):
        _assert_segments_inside_clip(transcript)
        assert transcript.language == "en"
    assert batch[0].duration_s == pytest.approx(toxic_speech.duration_s, abs=0.15)


def _must_not_run(*args, **kwargs):
    raise AssertionError("WhisperModel.transcribe ran: the clip was not decoded in the batch")


def test_a_clip_longer_than_one_window_in_a_batch_is_decoded_in_full(toxic_speech, clean_speech,
                                                                    short_window_transcriber):
    toxic, clean = decode_audio(toxic_speech.path.read_bytes()), decode_audio(clean_speech.path.read_bytes())
    long_clip = np.concatenate([toxic, clean] * 6)  # over 30 s of speech: faster-whisper's own loop

    long_transcript, short_transcript = short_window_transcriber.transcribe_batch([long_clip, clean])

    assert long_transcript.duration_s > 30
    assert long_transcript.segments[-1].end_s > 30, long_transcript.segments
    # The speech after the first 30 s window was transcribed too. (Not a count of repeats: on this
    # repeated audio faster-whisper falls back to sampling at higher temperatures, and in one CI run
    # the first window came out as a single garbled line.)
    words = toxic_speech.key_words + clean_speech.key_words
    late = [segment for segment in long_transcript.segments if segment.start_s >= 28.0]
    assert any(word in segment.text.lower() for segment in late for word in words), long_transcript.segments
    assert _contains_all(short_transcript, clean_speech.key_words), short_transcript.text


def test_short_window_encodes_fewer_frames(toxic_speech, short_window_transcriber):
    model = short_window_transcriber._model
    seen = []
    original = model.model.encode

    def counting_encode(features, *args, **kwargs):
        seen.append(features.shape[-1])
        return original(features, *args, **kwargs)

    model.model = _EncodeSpy(model.model, counting_encode)
    try:
        short_window_transcriber.transcribe(decode_audio(toxic_speech.path.read_bytes()))
    finally:
        model.model = model.model.inner
    assert seen and all(700 <= frames < 3000 for frames in seen), seen


class _EncodeSpy:
    """CTranslate2's Whisper with `encode` observed; everything else passes through."""

    def __init__(self, inner, encode):
        self.inner = inner
        self.encode = encode

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_silence_gives_an_empty_transcript(silent_wav, transcriber):
    transcript = transcriber.transcribe(decode_audio(silent_wav.read_bytes()))

    assert transcript.text == "" and transcript.segments == []
    assert transcript.duration_s == pytest.approx(3.0)


def test_empty_array_gives_an_empty_transcript(transcriber):
    transcript = transcriber.transcribe(np.zeros(0, dtype=np.float32))

    assert transcript.text == "" and transcript.segments == [] and transcript.duration_s == 0.0


def test_audio_must_be_decoded_float32(transcriber):
    with pytest.raises(ValueError, match="float32"):
        transcriber.transcribe(np.zeros(16_000, dtype=np.int16))
    with pytest.raises(ValueError, match="1-D"):
        transcriber.transcribe(np.zeros((2, 16_000), dtype=np.float32))


def test_language_is_checked_per_call(transcriber):
    with pytest.raises(ValueError, match="language"):
        transcriber.transcribe(np.zeros(16_000, dtype=np.float32), language="English")


@pytest.mark.gpu
def test_cuda_float16_transcribes(toxic_speech):
    ctranslate2 = pytest.importorskip("ctranslate2")
    if ctranslate2.get_cuda_device_count() == 0:
        pytest.skip("no CUDA device visible to CTranslate2")
    gpu = create_transcriber(TranscriberOptions(device="cuda"))

    transcript = gpu.transcribe(decode_audio(toxic_speech.path.read_bytes()))

    assert gpu.options.compute_type == "float16"
    assert all(word in transcript.text.lower() for word in toxic_speech.key_words), transcript.text


# --- The optional openai-whisper backend ------------------------------------------------------


def test_openai_backend_transcribes_when_a_checkpoint_is_available(toxic_speech):
    # MODERATION_OPENAI_WHISPER_MODEL may name a local .pt checkpoint; "tiny.en" is found in
    # whisper's download directory when someone has it there.
    model = os.environ.get("MODERATION_OPENAI_WHISPER_MODEL", "tiny.en")
    try:
        openai = create_transcriber(TranscriberOptions(backend="openai-whisper", model=model))
    except ModelUnavailable as err:
        pytest.skip(f"openai-whisper cannot run here: {err}")

    transcript = openai.transcribe(decode_audio(toxic_speech.path.read_bytes()))

    assert all(word in transcript.text.lower() for word in toxic_speech.key_words), transcript.text
    _assert_segments_inside_clip(transcript)
