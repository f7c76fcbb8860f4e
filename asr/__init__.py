"""Speech recognition for voice moderation: audio bytes -> 16 kHz mono float32 -> Whisper -> Transcript.

This package knows nothing of gRPC or Triton; the gateway calls it (see STYLE.md, section 3):

    audio = decode_audio(clip, format_hint="ogg", limits=AudioLimits(max_audio_s=30))
    transcriber = create_transcriber(TranscriberOptions())      # once, at start-up
    # or IsolatedTranscriber(TranscriberOptions(), niceness=10): the model in worker processes
    with TranscriptionPool(transcriber, workers=1, max_queued=4) as pool:
        transcript = pool.submit(audio).result()
"""

from asr.audio import WHISPER_SAMPLE_RATE_HZ, AudioLimits, decode_audio
from asr.errors import (
    AsrError,
    AsrExpired,
    AsrOverloaded,
    AsrUnavailable,
    AudioError,
    AudioTooLarge,
    AudioTooLong,
    EmptyAudio,
    InvalidSampleRate,
    ModelUnavailable,
    UndecodableAudio,
    UnsupportedFormat,
)
from asr.isolated import IsolatedTranscriber
from asr.pool import TranscriptionPool
from asr.transcriber import Segment, Transcriber, TranscriberOptions, Transcript, create_transcriber

__all__ = [
    "WHISPER_SAMPLE_RATE_HZ",
    "AsrError",
    "AsrExpired",
    "AsrOverloaded",
    "AsrUnavailable",
    "AudioError",
    "AudioLimits",
    "AudioTooLarge",
    "AudioTooLong",
    "EmptyAudio",
    "InvalidSampleRate",
    "IsolatedTranscriber",
    "ModelUnavailable",
    "Segment",
    "Transcriber",
    "TranscriberOptions",
    "Transcript",
    "TranscriptionPool",
    "UndecodableAudio",
    "UnsupportedFormat",
    "create_transcriber",
    "decode_audio",
]
