"""Audio bytes from a game client -> 16 kHz mono float32 in [-1, 1], the input Whisper expects.

We decode with PyAV, as faster-whisper does (`faster_whisper/audio.py`): it bundles the FFmpeg
libraries, so no ffmpeg binary is needed, and it reads every format clients send (WAV, OGG/Opus,
WebM/Opus, MP3, FLAC, M4A/AAC). Raw PCM16 has no header, so the caller must declare its rate.

Choices:
- Limits come first: the byte count before anything is parsed, the duration the container
  declares before decoding, and the decoded duration while decoding, so a bomb stops early.
- The bytes are untrusted, so FFmpeg may only probe with the demuxers we accept
  (`format_whitelist`) and open only the decoders we accept (`codec_whitelist`: probing a file's
  streams opens a decoder for each, before we see any codec name), within small probe limits
  (`probesize`, `analyzeduration`). A file with a video stream, or whose audio is in a codec
  outside `ACCEPTED_CODECS`, is UnsupportedFormat naming what is accepted (issue 15, part 6).
- Any FFmpeg error while opening or decoding is UndecodableAudio, with FFmpeg's reason. Some
  truncations cannot be seen (a WAV or MP3 cut short just ends early); those decode to the part
  that is there, which is also what a player's client would play.
- The resampler outputs float32 (`flt`) rather than s16 as faster-whisper does, which avoids a
  second quantisation; float sources can exceed 1.0, so the result is clipped to [-1, 1].
- faster-whisper calls `gc.collect()` after each decode (its issue #390, a resampler leak in old
  PyAV). With PyAV 18, 1,500 decodes kept RSS flat without it, so we skip that cost.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from asr.errors import (
    AudioError,
    AudioTooLarge,
    AudioTooLong,
    EmptyAudio,
    InvalidSampleRate,
    UndecodableAudio,
    UnsupportedFormat,
)

logger = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE_HZ = 16_000  # Whisper was trained on 16 kHz mono audio
PCM16_FULL_SCALE = 32_768.0  # int16 -> [-1, 1); unscaled samples make Whisper emit garbage
MIN_PCM_SAMPLE_RATE_HZ = 8_000  # telephony; below this speech is not intelligible
MAX_PCM_SAMPLE_RATE_HZ = 192_000  # the highest rate common audio hardware records at

# Format hints a caller may send (file extensions or MIME subtypes, case-insensitive).
RAW_PCM16_HINTS = frozenset({"pcm16", "raw", "s16le", "l16"})
CONTAINER_HINTS = frozenset({
    "wav", "wave", "x-wav", "ogg", "oga", "opus", "webm", "weba", "mp3", "mpeg",
    "flac", "x-flac", "m4a", "x-m4a", "mp4", "aac",
})
# FFmpeg demuxers that may probe the bytes (what `container.format.name` reports for our formats).
ACCEPTED_DEMUXERS = ("wav", "ogg", "matroska", "webm", "mp3", "flac", "mov", "mp4", "m4a", "aac")
ACCEPTED_CODECS = frozenset({
    "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le", "pcm_u8",
    "opus", "vorbis", "mp3", "mp3float", "flac", "aac",
})
# The FFmpeg decoders that may open while the streams are probed: the accepted codecs' own and
# the variants FFmpeg may pick for them.
ACCEPTED_DECODERS = ACCEPTED_CODECS | {"libopus", "aac_fixed"}
ACCEPTED_DESCRIPTION = "WAV (PCM), OGG/WebM (Opus, Vorbis), MP3, FLAC, M4A/AAC, or raw PCM16; audio only"
PROBE_BYTES = 64 * 1024  # FFmpeg reads at most this to recognise the format and its streams (default 5 MB)
PROBE_DURATION_US = 1_000_000  # and analyses at most 1 s of packets (default 5 s)


@dataclass(frozen=True)
class AudioLimits:
    """What one clip may cost before we refuse it."""

    # 30 s of 48 kHz stereo float32 WAV is 11.5 MB; compressed clips are far smaller.
    max_bytes: int = 16 * 1024 * 1024
    # Whisper decodes in 30 s windows; a longer clip costs a second window.
    max_audio_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")
        if not self.max_audio_s > 0:
            raise ValueError(f"max_audio_s must be > 0, got {self.max_audio_s}")


DEFAULT_LIMITS = AudioLimits()


def decode_audio(
    data: bytes,
    *,
    format_hint: str = "",
    sample_rate_hz: int | None = None,
    limits: AudioLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decodes one clip to the samples Whisper expects.

    Args:
      data: The clip's bytes: a WAV, OGG, WebM, MP3, FLAC, M4A or AAC file, or raw PCM16.
      format_hint: "pcm16" (or "raw", "s16le", "l16") for headerless little-endian 16-bit mono
        PCM; otherwise optional (an extension or MIME type such as "audio/ogg; codecs=opus"),
        since containers are recognised from their bytes.
      sample_rate_hz: The rate of raw PCM16; required for it, ignored for containers.
      limits: Byte and duration limits, checked before the expensive work.

    Returns:
      A 1-D float32 array of samples in [-1, 1] at WHISPER_SAMPLE_RATE_HZ.

    Raises:
      AudioError: a subclass saying what was wrong with the clip (see asr.errors).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"audio must be bytes, got {type(data).__name__}")
    _check_size(len(data), limits)
    hint = _normalise_hint(format_hint)
    started = time.perf_counter()
    if hint in RAW_PCM16_HINTS:
        audio = _decode_pcm16(bytes(data), sample_rate_hz, limits)
    else:
        audio = _decode_container(bytes(data), limits)
    np.clip(audio, -1.0, 1.0, out=audio)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("decoded bytes=%d hint=%s audio_s=%.2f ms=%.1f", len(data), hint or "-",
                     len(audio) / WHISPER_SAMPLE_RATE_HZ, (time.perf_counter() - started) * 1e3)
    return audio


def _check_size(n_bytes: int, limits: AudioLimits) -> None:
    if n_bytes == 0:
        raise EmptyAudio("audio is empty (0 bytes)")
    if n_bytes > limits.max_bytes:
        raise AudioTooLarge(f"audio is {n_bytes} bytes; the limit is {limits.max_bytes} bytes")


def _check_duration(duration_s: float, limits: AudioLimits, qualifier: str = "") -> None:
    if duration_s > limits.max_audio_s:
        raise AudioTooLong(f"audio is {qualifier}{duration_s:.2f} s long; the limit is {limits.max_audio_s:g} s")


def _normalise_hint(format_hint: str) -> str:
    """'audio/ogg; codecs=opus' -> 'ogg', '.WAV' -> 'wav'; raises for hints we do not know."""
    hint = (format_hint or "").split(";", 1)[0].strip().lower().removeprefix(".")
    hint = hint.rsplit("/", 1)[-1]
    if hint and hint not in RAW_PCM16_HINTS and hint not in CONTAINER_HINTS:
        raise UnsupportedFormat(
            f"unknown audio format {format_hint!r}; send a WAV, OGG, WebM, MP3, FLAC, M4A or AAC file, "
            f"or raw PCM16 with format 'pcm16' and its sample rate"
        )
    return hint


def _check_pcm_rate(sample_rate_hz: int | None) -> None:
    if sample_rate_hz is None or sample_rate_hz == 0:
        raise InvalidSampleRate("raw PCM16 audio needs its sample rate (sample_rate_hz)")
    if not MIN_PCM_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_PCM_SAMPLE_RATE_HZ:
        raise InvalidSampleRate(
            f"sample rate {sample_rate_hz} Hz is outside {MIN_PCM_SAMPLE_RATE_HZ}-{MAX_PCM_SAMPLE_RATE_HZ} Hz"
        )


class Pcm16Stream:
    """One live stream's raw PCM16 chunks -> 16 kHz float32, through one resampler for the whole
    stream: the result equals decoding all the chunks at once, where a resampler per chunk would
    leave a step at every chunk boundary."""

    def __init__(self, sample_rate_hz: int):
        _check_pcm_rate(sample_rate_hz)
        self.sample_rate_hz = sample_rate_hz
        self._resampler = None
        if sample_rate_hz != WHISPER_SAMPLE_RATE_HZ:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=WHISPER_SAMPLE_RATE_HZ)
        self._pts = 0  # input samples so far: the resampler needs continuous timestamps

    def decode(self, data: bytes) -> np.ndarray:
        """The 16 kHz samples for one chunk (a few may come with the next chunk or `flush`)."""
        if len(data) % 2:
            raise UndecodableAudio(f"raw PCM16 needs an even number of bytes, got {len(data)}")
        samples = np.frombuffer(data, dtype="<i2")
        if self._resampler is None:
            return samples.astype(np.float32) / PCM16_FULL_SCALE
        frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = self.sample_rate_hz, self._pts
        self._pts += len(samples)
        return self._collect(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples still inside the resampler, at the end of the stream."""
        return np.zeros(0, dtype=np.float32) if self._resampler is None else self._collect(self._resampler.resample(None))

    @staticmethod
    def _collect(frames) -> np.ndarray:
        chunks = [frame.to_ndarray().reshape(-1) for frame in frames]
        audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, dtype=np.float32)
        return np.clip(np.nan_to_num(audio, copy=False), -1.0, 1.0)


def _decode_pcm16(data: bytes, sample_rate_hz: int | None, limits: AudioLimits) -> np.ndarray:
    """Headerless little-endian int16 mono at a declared rate -> 16 kHz float32."""
    _check_pcm_rate(sample_rate_hz)
    if len(data) % 2:
        raise UndecodableAudio(f"raw PCM16 needs an even number of bytes, got {len(data)}")
    _check_duration(len(data) / 2 / sample_rate_hz, limits)
    samples = np.frombuffer(data, dtype="<i2")
    if sample_rate_hz == WHISPER_SAMPLE_RATE_HZ:
        return samples.astype(np.float32) / PCM16_FULL_SCALE
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate_hz
    return _resample([frame])


def _decode_container(data: bytes, limits: AudioLimits) -> np.ndarray:
    """A container file -> 16 kHz float32, refusing other formats and over-long clips early."""
    with _open_container(data) as container:
        stream = _audio_stream(container)
        _check_duration(_declared_duration_s(container, stream), limits, "declared as ")
        try:
            audio = _resample(_limited_frames(container, stream, limits))
        except av.error.FFmpegError as err:
            raise UndecodableAudio(f"audio is corrupt or truncated: {err.strerror}") from None
        except AudioError:
            raise
        except ValueError as err:  # PyAV's own checks, e.g. a stream whose layout changes midway
            raise UndecodableAudio(f"audio could not be decoded: {err}") from None
    if audio.size == 0:
        raise EmptyAudio("audio contains no samples")
    return audio


def _open_container(data: bytes) -> av.container.InputContainer:
    """Probes the bytes, letting only the demuxers and decoders we accept look at them."""
    options = {
        "format_whitelist": ",".join(ACCEPTED_DEMUXERS),
        "codec_whitelist": ",".join(sorted(ACCEPTED_DECODERS)),
        "probesize": str(PROBE_BYTES),
        "analyzeduration": str(PROBE_DURATION_US),
    }
    try:
        return av.open(io.BytesIO(data), mode="r", options=options, metadata_errors="ignore")
    except av.error.ArgumentError:  # FFmpeg's answer when the probed demuxer is not whitelisted
        raise UnsupportedFormat(f"not a supported audio format; accepted: {ACCEPTED_DESCRIPTION}") from None
    except av.error.FFmpegError as err:
        raise UndecodableAudio(f"audio could not be decoded (not audio, or corrupt): {err.strerror}") from None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    if container.streams.video:
        raise UnsupportedFormat(f"the {container.format.name} file has a video stream; accepted: "
                                f"{ACCEPTED_DESCRIPTION}")
    if not container.streams.audio:
        raise UndecodableAudio(f"the {container.format.name} file has no audio stream")
    stream = container.streams.audio[0]
    if stream.codec_context is None:  # seen with corrupted headers: a stream FFmpeg cannot decode
        raise UndecodableAudio(f"the {container.format.name} file's audio stream has no usable codec")
    codec = stream.codec_context.name
    if codec not in ACCEPTED_CODECS:
        raise UnsupportedFormat(f"audio codec {codec!r} is not supported; accepted: {ACCEPTED_DESCRIPTION}")
    return stream


def _declared_duration_s(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float:
    """The duration the header declares (0 when it declares none, as streamed WebM does)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _limited_frames(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, limits: AudioLimits
) -> Iterator[av.AudioFrame]:
    """Decoded frames, stopping with AudioTooLong as soon as the decoded audio passes the limit."""
    decoded_s = 0.0
    for frame in container.decode(stream):
        decoded_s += frame.samples / frame.sample_rate
        _check_duration(decoded_s, limits, "at least ")
        yield frame


def _resample(frames) -> np.ndarray:
    """Any rate, layout and sample format -> WHISPER_SAMPLE_RATE_HZ mono float32 (packed `flt`)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=WHISPER_SAMPLE_RATE_HZ)
    chunks = []
    for frame in frames:
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))  # flush
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.nan_to_num(np.concatenate(chunks).astype(np.float32, copy=False), copy=False)
