"""One exception hierarchy for everything `asr` raises on purpose.

The gateway maps these to gRPC status codes in one place, so every class here stands for one
kind of answer to the caller:

    AsrError
    ├── AudioError (also a ValueError)   the caller's bytes: INVALID_ARGUMENT
    │   ├── EmptyAudio                   zero bytes, or a container with no samples in it
    │   ├── AudioTooLarge                more bytes than AudioLimits.max_bytes
    │   ├── AudioTooLong                 longer than AudioLimits.max_audio_s
    │   ├── UnsupportedFormat            a format hint or container we do not accept
    │   ├── InvalidSampleRate            raw PCM without (or with an absurd) sample rate
    │   └── UndecodableAudio             random, corrupt or truncated bytes
    ├── AsrOverloaded                    the speech queue is full: RESOURCE_EXHAUSTED
    ├── AsrExpired                       the caller's deadline passed first: DEADLINE_EXCEEDED
    └── AsrUnavailable                   no model, a dead worker, or the queue is shut down: UNAVAILABLE
        └── ModelUnavailable             model files or an optional package are missing

Messages say what was wrong and, where there is one, the limit; they never contain transcripts.
"""


class AsrError(Exception):
    """Base class of every error raised on purpose by the `asr` package."""


class AudioError(AsrError, ValueError):
    """The audio the caller sent cannot be used (the caller's fault, not ours)."""


class EmptyAudio(AudioError):
    """Zero bytes, or a container that decodes to no samples."""


class AudioTooLarge(AudioError):
    """More bytes than `AudioLimits.max_bytes`; rejected before any decoding."""


class AudioTooLong(AudioError):
    """Longer than `AudioLimits.max_audio_s` (declared by the container, or found while decoding)."""


class UnsupportedFormat(AudioError):
    """An unknown format hint, or a container outside the formats we accept."""


class InvalidSampleRate(AudioError):
    """Raw PCM sent without a sample rate, or with one outside the accepted range."""


class UndecodableAudio(AudioError):
    """Bytes that no accepted decoder can read: random, corrupt or truncated data."""


class AsrOverloaded(AsrError):
    """Every place in the speech queue is taken; retry later."""


class AsrUnavailable(AsrError):
    """Transcription cannot run (no model, its worker died, or the queue was shut down)."""


class ModelUnavailable(AsrUnavailable):
    """A model's files or the package of an optional backend are not installed."""


class AsrExpired(AsrError):
    """The clip's caller stopped waiting first; a clip that had not started was never transcribed."""
