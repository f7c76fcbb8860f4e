"""ClassifyVoice and StreamVoice's speech step: clip -> decode (asr) -> Whisper via the speech queue.

The whole transcript and every segment are classified in ONE batched model call, so moderators
see where in the clip something was said. A clip with no speech gets a non_toxic verdict, an
empty transcript and `speech_detected` false: there is nothing to moderate, and no model call is
made. Speech that Whisper could not transcribe, even after asr's full-window retry, gets the same
scores but `speech_detected` true and the action UNTRANSCRIBED_SPEECH_ACTION (issue 14, part 11).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext

from gateway.errors import BackendTimeout, GatewayStartError, InvalidInput
from gateway.settings import Settings

logger = logging.getLogger(__name__)

# Whatever the policy says for the non_toxic scores: a client acting on `action` must not wave
# through speech that nobody, human or model, has understood.
UNTRANSCRIBED_SPEECH_ACTION = "review"


def heard_speech(transcript) -> bool:
    """The VAD found speech in the clip, or Whisper wrote words."""
    return transcript.speech_detected or bool(transcript.text.strip())


class VoicePipeline:
    """Decoding limits and the speech queue in front of Whisper (asr.SpeechQueue)."""

    def __init__(self, settings: Settings, executor=None):
        """executor: where Whisper runs (an asr executor); None builds the one settings describe."""
        from asr import (
            AudioLimits,
            InProcessExecutor,
            SpeechQueue,
            TranscriberOptions,
            WorkerProcessExecutor,
            create_transcriber,
        )

        self.settings = settings
        self.metrics = None  # gateway.metrics.GatewayMetrics, set by the server: observes the asr stage
        self.limits = AudioLimits(max_bytes=settings.max_audio_bytes, max_audio_s=settings.max_audio_s)
        options = TranscriberOptions(model=settings.whisper_model, device=settings.whisper_device,
                                     beam_size=settings.asr_beam_size, language=settings.default_language or None,
                                     cpu_threads=settings.asr_threads, num_workers=settings.asr_workers,
                                     encoder_window_s=settings.asr_window_s)
        started = time.perf_counter()
        if executor is None and settings.asr_process:
            executor = WorkerProcessExecutor(options)
        elif executor is None:
            executor = InProcessExecutor(create_transcriber(options))
        self.queue = SpeechQueue(executor, max_waiting=settings.asr_queue, max_batch=settings.asr_batch)
        logger.info("voice: whisper %s on %s loaded in %.1f s (%d worker(s)%s, batches of up to %d, capacity %d)",
                    settings.whisper_model, settings.whisper_device, time.perf_counter() - started,
                    settings.asr_workers, " in processes" if settings.asr_process else "", settings.asr_batch,
                    self.queue.capacity)

    @contextmanager
    def admitted(self):
        """One clip's place in the speech queue, taken before the clip is decoded, so clips past
        the queue's capacity cost no decoding.

        Raises:
          asr.AsrOverloaded: every place is taken (the error boundary answers RESOURCE_EXHAUSTED).
        """
        with self.queue.reserve() as place:
            yield place

    def check_size(self, request) -> None:
        """The checks that need no decoding, made before a clip takes its place: a request that can
        never succeed gets INVALID_ARGUMENT even when the gateway is busy, not a retry hint."""
        self.check_language(request.language)
        if not request.audio:
            raise InvalidInput("audio is empty")
        if len(request.audio) > self.limits.max_bytes:
            raise InvalidInput(f"audio rejected: audio is {len(request.audio)} bytes; the limit is "
                               f"{self.limits.max_bytes} bytes")

    def check_language(self, language: str) -> None:
        """An unknown language code is the caller's mistake: INVALID_ARGUMENT listing the codes, not a
        failure inside Whisper (issue 15, part 4)."""
        from asr.transcriber import check_language
        from gateway.inputs import accepted_languages
        from gateway.inputs import check_language as check_accepted

        check_accepted(language, accepted_languages(self.settings.whisper_model))  # e.g. tiny.en: English only
        try:
            check_language(language or None)
        except ValueError as err:
            raise InvalidInput(f"{err}; or leave language empty for the gateway's default") from None

    def decode(self, request):
        """The clip -> 16 kHz float32 samples; `check_size` has passed. asr's AudioError becomes
        INVALID_ARGUMENT at the error boundary."""
        import asr

        return asr.decode_audio(request.audio, format_hint=request.format,
                                sample_rate_hz=request.sample_rate_hz or None, limits=self.limits)

    def pcm16_stream(self, sample_rate_hz: int):
        """A decoder for one stream's PCM16 chunks (asr.Pcm16Stream): one resampler per stream."""
        import asr

        return asr.Pcm16Stream(sample_rate_hz)

    def open_stream(self, log):
        """The input side of one StreamVoice call (gateway.voice_stream.StreamInput), with its own VAD state."""
        from asr.utterances import UtteranceSegmenter
        from asr.vad import StreamingSileroVad
        from gateway.voice_stream import StreamInput, StreamLimits

        # 0.3 s of silence ends an utterance: verdicts come soon after the player stops speaking
        segmenter = UtteranceSegmenter(StreamingSileroVad(), min_silence_s=0.3, pad_s=0.1)
        return StreamInput(self, StreamLimits.from_settings(self.settings), segmenter, log)

    def transcribe(self, audio, language: str, remaining_s: float | None, place=None):
        """Runs Whisper through the speech queue, in `place` (from `admitted`) or a place of its own;
        waits at most the caller's remaining time or asr_timeout_s."""
        timeout_s = self.settings.asr_timeout_s if remaining_s is None else min(remaining_s, self.settings.asr_timeout_s)
        if timeout_s <= 0:
            raise BackendTimeout("deadline exceeded before speech recognition")
        language = language or self.settings.default_language or None
        started = time.perf_counter()
        with self.admitted() if place is None else nullcontext(place) as held:
            transcript = held.transcribe(audio, language, expires_at=time.monotonic() + timeout_s)
        if self.metrics is not None:  # queue wait + Whisper: what a caller waits for speech recognition
            self.metrics.observe_stage("asr", time.perf_counter() - started)
        return transcript

    def close(self) -> None:
        self.queue.close()


def create_voice_pipeline(settings: Settings) -> VoicePipeline | None:
    """The voice pipeline, or None when voice is off.

    Raises:
      GatewayStartError: voice is enabled but Whisper cannot be loaded; the reason is in the message,
        since a gateway that silently served without voice would fail every voice call instead.
    """
    if not settings.voice_enabled:
        return None
    try:
        return VoicePipeline(settings)
    except ImportError as err:
        raise GatewayStartError(_refusal(f"the asr extra is not installed ({err}); pip install "
                                    "'moderation-gateway[asr]'")) from err
    except Exception as err:
        raise GatewayStartError(_refusal(f"the speech model failed to load ({type(err).__name__}: {err})")) from err


def _refusal(reason: str) -> str:
    return f"voice is enabled but cannot start: {reason}; or start the gateway with --voice-enabled false"
