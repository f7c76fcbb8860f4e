"""ClassifyVoice: clip -> decode (asr) -> Whisper in a bounded pool -> the text path.

The whole transcript and every segment are classified in ONE batched model call, so moderators
see where in the clip something was said. A clip with no speech gets a non_toxic verdict and an
empty transcript: there is nothing to moderate, and no model call is made.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager

from gateway.errors import BackendTimeout, BackendUnavailable, InvalidInput, Overloaded
from gateway.settings import Settings

logger = logging.getLogger(__name__)


class VoicePipeline:
    """Decoding limits, the Whisper model and its bounded worker pool."""

    def __init__(self, settings: Settings):
        from asr import AudioLimits, IsolatedTranscriber, TranscriberOptions, TranscriptionPool, create_transcriber

        self.settings = settings
        self.limits = AudioLimits(max_bytes=settings.max_audio_bytes, max_audio_s=settings.max_audio_s)
        options = TranscriberOptions(model=settings.whisper_model, device=settings.whisper_device,
                                     beam_size=settings.asr_beam_size, language=settings.default_language or None,
                                     cpu_threads=settings.asr_threads, num_workers=settings.asr_workers,
                                     encoder_window_s=settings.asr_window_s)
        started = time.perf_counter()
        if settings.asr_process:  # Whisper at a lower priority in its own process: text keeps the CPU
            self.transcriber = IsolatedTranscriber(options, niceness=settings.asr_nice, max_batch=settings.asr_batch)
            running = settings.asr_workers * settings.asr_batch  # enough callers to fill every batch
        else:
            self.transcriber = create_transcriber(options)
            running = settings.asr_workers
        self.pool = TranscriptionPool(self.transcriber, workers=running, max_queued=settings.asr_queue)
        # taken before a clip is decoded: past saturation the excess clips are turned away before
        # they cost the gateway a decode (about 15 ms of CPU for 5 s of WAV)
        self._clip_slots = threading.BoundedSemaphore(self.pool.capacity)
        logger.info("voice: whisper %s on %s loaded in %.1f s (%d worker(s)%s, queue %d)", settings.whisper_model,
                    settings.whisper_device, time.perf_counter() - started, settings.asr_workers,
                    f" in processes at nice +{settings.asr_nice}, batches of up to {settings.asr_batch}"
                    if settings.asr_process else "", settings.asr_queue)

    @contextmanager
    def admitted(self):
        """One ClassifyVoice clip's place, held while it is decoded and transcribed.

        Raises:
          Overloaded: as many clips as the pool holds are already in progress.
        """
        if not self._clip_slots.acquire(blocking=False):
            raise Overloaded("overloaded: speech recognition queue is full, retry later")
        try:
            yield
        finally:
            self._clip_slots.release()

    def check_size(self, request) -> None:
        """The checks that need no decoding, made before a clip takes its slot: a request that can
        never succeed gets INVALID_ARGUMENT even when the gateway is busy, not a retry hint."""
        if not request.audio:
            raise InvalidInput("audio is empty")
        if len(request.audio) > self.limits.max_bytes:
            raise InvalidInput(f"audio rejected: audio is {len(request.audio)} bytes; the limit is "
                               f"{self.limits.max_bytes} bytes")

    def decode(self, request):
        """The clip -> 16 kHz float32 samples; `check_size` has passed."""
        import asr

        try:
            return asr.decode_audio(request.audio, format_hint=request.format,
                                    sample_rate_hz=request.sample_rate_hz or None, limits=self.limits)
        except asr.AudioError as err:
            raise InvalidInput(f"audio rejected: {err}") from None

    def decode_pcm16(self, data: bytes, sample_rate_hz: int):
        """One stream chunk -> 16 kHz float32 samples."""
        import asr

        if len(data) % 2:
            raise InvalidInput(f"a PCM16 chunk must hold whole samples; got {len(data)} bytes")
        try:
            return asr.decode_audio(data, format_hint="pcm16", sample_rate_hz=sample_rate_hz, limits=self.limits)
        except asr.AudioError as err:
            raise InvalidInput(f"audio chunk rejected: {err}") from None

    def transcribe(self, audio, language: str, remaining_s: float | None):
        """Runs Whisper in the pool; waits at most the caller's remaining time or asr_timeout_s."""
        import asr

        timeout_s = self.settings.asr_timeout_s if remaining_s is None else min(remaining_s, self.settings.asr_timeout_s)
        if timeout_s <= 0:
            raise BackendTimeout("deadline exceeded before speech recognition")
        try:  # past the deadline a clip still waiting for a worker is dropped, not decoded for nobody
            future = self.pool.submit(audio, language or self.settings.default_language or None,
                                      expires_at=time.monotonic() + timeout_s)
        except asr.AsrOverloaded:
            raise Overloaded("overloaded: speech recognition queue is full, retry later") from None
        except asr.AsrUnavailable as err:
            raise BackendUnavailable(f"speech recognition unavailable: {err}") from None
        try:
            return future.result(timeout=timeout_s)
        except (FutureTimeout, asr.AsrExpired):
            future.cancel()  # if still queued, it never runs
            raise BackendTimeout("deadline exceeded during speech recognition") from None
        except asr.AudioError as err:
            raise InvalidInput(f"audio rejected: {err}") from None
        except asr.AsrUnavailable as err:
            raise BackendUnavailable(f"speech recognition unavailable: {err}") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_queued=True)
        self.transcriber.close()


def create_voice_pipeline(settings: Settings) -> VoicePipeline | None:
    if not settings.voice_enabled:
        return None
    try:
        return VoicePipeline(settings)
    except ImportError as err:
        logger.warning("voice disabled: the asr extra is not installed (%s)", err)
    except Exception:
        logger.exception("voice disabled: the speech model failed to load")
    return None
