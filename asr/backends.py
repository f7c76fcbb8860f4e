"""Loads the Whisper implementation `TranscriberOptions.backend` names.

A module of its own, so that the interface (`asr.transcriber`) never imports the backends that
implement it.
"""

from __future__ import annotations

from asr.transcriber import Transcriber, TranscriberOptions


def create_transcriber(options: TranscriberOptions | None = None) -> Transcriber:
    """Loads the model `options` name with its backend (slow: do it once, at start-up).

    Raises:
      ModelUnavailable: the model or the backend's package is not installed.
    """
    options = options or TranscriberOptions()
    if options.backend == "faster-whisper":
        from asr.faster_whisper_backend import FasterWhisperTranscriber

        return FasterWhisperTranscriber(options)
    from asr.openai_whisper_backend import OpenAIWhisperTranscriber

    return OpenAIWhisperTranscriber(options)
