"""Speech recognition for voice moderation: audio bytes -> 16 kHz mono float32 -> Whisper -> Transcript.

This package knows nothing of gRPC or Triton; the gateway calls it:

    audio = decode_audio(clip, format_hint="ogg", limits=AudioLimits(max_audio_s=30))
    options = TranscriberOptions()
    executor = WorkerProcessExecutor(options)  # or InProcessExecutor(create_transcriber(options))
    queue = SpeechQueue(executor, max_waiting=4, max_batch=2)  # once, at start-up
    with queue.reserve() as place:  # AsrOverloaded when full, before any decoding
        transcript = place.transcribe(decode_audio(clip), expires_at=time.monotonic() + 5)
"""

from asr.audio import WHISPER_SAMPLE_RATE_HZ, AudioLimits, Pcm16Stream, decode_audio
from asr.backends import create_transcriber
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
from asr.executors import InProcessExecutor, WorkerProcessExecutor
from asr.speech_queue import Place, SpeechQueue
from asr.transcriber import Segment, Transcriber, TranscriberOptions, Transcript

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
    "InProcessExecutor",
    "InvalidSampleRate",
    "ModelUnavailable",
    "Pcm16Stream",
    "Place",
    "Segment",
    "SpeechQueue",
    "Transcriber",
    "TranscriberOptions",
    "Transcript",
    "UndecodableAudio",
    "UnsupportedFormat",
    "WorkerProcessExecutor",
    "create_transcriber",
    "decode_audio",
]
