"""decode_audio on real files from ffmpeg: every accepted codec, and every way a clip can be bad."""

from __future__ import annotations

import numpy as np
import pytest

from asr import (
    WHISPER_SAMPLE_RATE_HZ,
    AudioError,
    AudioLimits,
    AudioTooLarge,
    AudioTooLong,
    EmptyAudio,
    InvalidSampleRate,
    UndecodableAudio,
    UnsupportedFormat,
    decode_audio,
)
from tests.asr.speech import CODECS, ffmpeg, ffmpeg_to_bytes

DURATION_TOLERANCE_S = 0.15  # codec priming and padding (AAC in ADTS adds ~60 ms)


def _decode(clip, **kwargs) -> np.ndarray:
    return decode_audio(clip.data, format_hint=clip.codec.format_hint, sample_rate_hz=clip.codec.sample_rate_hz,
                        **kwargs)


def _assert_whisper_ready(audio: np.ndarray, expected_s: float) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() <= 1.0
    assert len(audio) / WHISPER_SAMPLE_RATE_HZ == pytest.approx(expected_s, abs=DURATION_TOLERANCE_S)


@pytest.mark.parametrize("codec_name", [codec.name for codec in CODECS])
def test_every_codec_decodes_to_16khz_mono_float(encoded_toxic, codec_name):
    clip = encoded_toxic[codec_name]

    audio = _decode(clip)

    _assert_whisper_ready(audio, clip.duration_s)
    rms = float(np.sqrt(np.mean(audio**2)))
    assert 0.02 < rms < 0.5, f"{codec_name}: rms {rms:.3f} is not speech at a normal level"


def test_codecs_agree_sample_for_sample_where_lossless(encoded_toxic):
    reference = _decode(encoded_toxic["wav_s16"])
    for name in ("wav_s24", "wav_s32", "wav_f32", "flac", "pcm16_22k"):
        audio = _decode(encoded_toxic[name])
        assert np.allclose(audio, reference, atol=1e-4), name


def test_raw_pcm16_is_scaled_to_plus_minus_one():
    samples = np.array([0, 16384, -32768, 32767] * 4000, dtype="<i2")

    audio = decode_audio(samples.tobytes(), format_hint="pcm16", sample_rate_hz=WHISPER_SAMPLE_RATE_HZ)

    assert audio[:4].tolist() == pytest.approx([0.0, 0.5, -1.0, 32767 / 32768])


def test_loud_float_wav_is_clipped_into_range(toxic_speech, tmp_path):
    loud = ffmpeg(toxic_speech.path, tmp_path / "loud.wav", "-af", "volume=4", "-c:a", "pcm_f32le")

    audio = decode_audio(loud.read_bytes())

    assert np.abs(audio).max() == pytest.approx(1.0)


def test_format_hint_accepts_mime_types_and_extensions(encoded_toxic):
    data = encoded_toxic["ogg_opus"].data
    for hint in ("ogg", ".OGG", "audio/ogg", "audio/ogg; codecs=opus", ""):
        assert len(decode_audio(data, format_hint=hint)) > 0


def test_zero_bytes_are_empty_audio():
    with pytest.raises(EmptyAudio, match="0 bytes"):
        decode_audio(b"")


def test_random_bytes_are_undecodable():
    with pytest.raises(UndecodableAudio, match="could not be decoded"):
        decode_audio(np.random.default_rng(0).bytes(4096))


def test_garbage_never_escapes_as_another_exception():
    rng = np.random.default_rng(1)
    for size in (1, 2, 3, 44, 512, 4096, 40_000):
        with pytest.raises(AudioError):
            decode_audio(rng.bytes(size))


@pytest.mark.parametrize("codec_name", ["ogg_opus", "webm_opus", "mp3", "flac", "m4a_aac", "wav_s16"])
def test_file_cut_inside_its_header_is_undecodable(encoded_toxic, codec_name):
    with pytest.raises(UndecodableAudio):
        decode_audio(encoded_toxic[codec_name].data[:40])


@pytest.mark.parametrize("codec_name", ["flac", "m4a_aac", "aac_adts"])
def test_file_cut_midway_is_undecodable_where_ffmpeg_notices(encoded_toxic, codec_name):
    data = encoded_toxic[codec_name].data
    with pytest.raises(UndecodableAudio, match="corrupt|truncated|could not"):
        decode_audio(data[: len(data) // 2])


def test_wav_cut_midway_decodes_the_part_that_is_there(encoded_toxic):
    # A WAV has no checksums or frame structure: FFmpeg cannot tell a cut file from a short one.
    clip = encoded_toxic["wav_s16"]

    audio = decode_audio(clip.data[: len(clip.data) // 2])

    assert len(audio) / WHISPER_SAMPLE_RATE_HZ == pytest.approx(clip.duration_s / 2, abs=0.05)


def test_too_many_bytes_are_refused_before_parsing():
    with pytest.raises(AudioTooLarge, match="2000 bytes; the limit is 1000 bytes"):
        decode_audio(b"\0" * 2000, limits=AudioLimits(max_bytes=1000))


@pytest.mark.parametrize("codec_name", ["wav_s16", "ogg_opus", "mp3", "m4a_aac", "pcm16_22k"])
def test_clip_over_max_audio_s_is_too_long(encoded_toxic, codec_name):
    with pytest.raises(AudioTooLong, match="the limit is 1 s"):
        _decode(encoded_toxic[codec_name], limits=AudioLimits(max_audio_s=1.0))


def test_clip_without_declared_duration_is_stopped_while_decoding(toxic_speech):
    piped_webm = ffmpeg_to_bytes(toxic_speech.path, "-c:a", "libopus", "-f", "webm")

    assert len(decode_audio(piped_webm)) > 0
    with pytest.raises(AudioTooLong, match=r"at least 1\.\d+ s long; the limit is 1 s"):
        decode_audio(piped_webm, limits=AudioLimits(max_audio_s=1.0))


def test_pcm16_needs_a_sample_rate():
    with pytest.raises(InvalidSampleRate, match="needs its sample rate"):
        decode_audio(b"\0\0" * 1600, format_hint="pcm16")


def test_pcm16_sample_rate_must_be_plausible():
    with pytest.raises(InvalidSampleRate, match="8000-192000 Hz"):
        decode_audio(b"\0\0" * 1600, format_hint="pcm16", sample_rate_hz=100)


def test_pcm16_with_an_odd_byte_count_is_undecodable():
    with pytest.raises(UndecodableAudio, match="even number of bytes"):
        decode_audio(b"\0" * 3201, format_hint="pcm16", sample_rate_hz=16_000)


def test_unknown_format_hint_is_unsupported(encoded_toxic):
    with pytest.raises(UnsupportedFormat, match="'amr'"):
        decode_audio(encoded_toxic["wav_s16"].data, format_hint="amr")


def test_container_outside_the_accepted_list_is_unsupported(toxic_speech, tmp_path):
    aiff = ffmpeg(toxic_speech.path, tmp_path / "clip.aiff")

    with pytest.raises(UnsupportedFormat, match="accepted: WAV"):
        decode_audio(aiff.read_bytes())


@pytest.mark.parametrize("suffix, video_args", [
    ("mp4", ("-c:v", "mpeg4", "-c:a", "aac")),
    ("mkv", ("-c:v", "mpeg4", "-c:a", "libopus")),
    ("mp3", ("-c:v", "mjpeg", "-c:a", "libmp3lame", "-disposition:v", "attached_pic")),
], ids=["mp4-video", "matroska-video", "mp3-cover-picture"])
def test_a_file_with_a_video_stream_is_refused(toxic_speech, tmp_path, suffix, video_args):
    """Issue 15, part 6: voice endpoints take audio only, whatever else the container carries."""
    clip = ffmpeg(toxic_speech.path, tmp_path / f"clip.{suffix}", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=5",
                  "-map", "1:v", "-map", "0:a", "-shortest", *video_args)

    with pytest.raises(UnsupportedFormat, match="video stream; accepted: WAV"):
        decode_audio(clip.read_bytes())


def test_a_decoder_outside_the_list_is_refused_by_name(toxic_speech, tmp_path):
    mulaw = ffmpeg(toxic_speech.path, tmp_path / "clip.wav", "-c:a", "pcm_mulaw")

    with pytest.raises(UnsupportedFormat, match="'pcm_mulaw' is not supported; accepted: WAV"):
        decode_audio(mulaw.read_bytes())


def test_codec_outside_the_accepted_list_is_unsupported(toxic_speech, tmp_path):
    alac = ffmpeg(toxic_speech.path, tmp_path / "clip.m4a", "-c:a", "alac")

    with pytest.raises(UnsupportedFormat, match="'alac'"):
        decode_audio(alac.read_bytes())


def test_audio_errors_are_value_errors():
    # Callers that only know ValueError still treat bad audio as bad input.
    assert issubclass(AudioError, ValueError)


def test_limits_are_checked_when_built():
    with pytest.raises(ValueError, match="max_audio_s"):
        AudioLimits(max_audio_s=0)


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_a_stream_of_pcm16_chunks_decodes_as_the_whole_does(rate):
    """One resampler per stream: chunk boundaries leave no trace (issue 15, part 5)."""
    from asr import Pcm16Stream

    tone = np.sin(np.arange(rate) * 2 * np.pi * 440 / rate) * 0.5
    pcm = (tone * 32767).astype("<i2").tobytes()
    whole = decode_audio(pcm, format_hint="pcm16", sample_rate_hz=rate)
    stream, step = Pcm16Stream(rate), int(0.1 * rate) * 2
    pieces = [stream.decode(pcm[offset : offset + step]) for offset in range(0, len(pcm), step)]
    streamed = np.concatenate(pieces + [stream.flush()])
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_a_pcm16_stream_checks_its_rate_and_whole_samples():
    from asr import Pcm16Stream

    with pytest.raises(InvalidSampleRate):
        Pcm16Stream(4000)
    with pytest.raises(UndecodableAudio, match="even number"):
        Pcm16Stream(16000).decode(b"\0\0\0")
