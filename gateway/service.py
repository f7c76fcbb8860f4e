"""The Moderation servicer: a thin layer over the encoder, the Triton classifier and the policy.

Every RPC goes through gateway.boundary (`@rpc`): errors raised here become status codes there,
and each request gets one INFO log line with its id, kind, size, per-stage latency, verdict and
status, never the text itself.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from contract.pb import moderation_pb2, moderation_pb2_grpc
from gateway.boundary import RequestLog, rpc
from gateway.classifier import Classifier
from gateway.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    Overloaded,
    Unimplemented,
)
from gateway.inputs import is_invisible
from gateway.model_version import ServingModel
from gateway.policy import Policy
from gateway.settings import Settings
from gateway.text_scoring import ScoringOptions, score_texts
from gateway.voice import UNTRANSCRIBED_SPEECH_ACTION, heard_speech

logger = logging.getLogger(__name__)

MIN_MODEL_CALL_S = 0.001  # less time than this left: fail fast instead of calling Triton


class ModelHolder:
    """The version currently serving, swapped atomically, with a count of requests per version
    so a switch can wait for the old version's in-flight requests before unloading it."""

    def __init__(self, on_change=None):
        self._on_change = on_change  # called with each newly set model (e.g. to check the policy)
        self._model: ServingModel | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._idle = threading.Condition(self._lock)

    def current(self) -> ServingModel:
        model = self._model
        if model is None:
            raise BackendUnavailable("model not ready")
        return model

    def peek(self) -> ServingModel | None:
        return self._model

    def set(self, model: ServingModel | None) -> None:
        with self._lock:
            self._model = model
        if model is not None and self._on_change is not None:
            self._on_change(model)

    @contextmanager
    def using(self):
        """The current model, counted as in flight until the block ends."""
        with self._lock:  # choose and count under one lock: a switch then sees every user
            model = self.current()
            self._in_flight[model.version] = self._in_flight.get(model.version, 0) + 1
        try:
            yield model
        finally:
            with self._lock:
                self._in_flight[model.version] -= 1
                self._idle.notify_all()

    def wait_idle(self, version: str, timeout_s: float) -> bool:
        """Waits until no request uses `version`; False if some still do after timeout_s."""
        with self._lock:
            return self._idle.wait_for(lambda: self._in_flight.get(version, 0) == 0, timeout_s)


def check_text(text: str, limit: int, where: str = "text") -> None:
    if is_invisible(text):  # whitespace, zero-width, NUL and the like only: nothing a player sees
        raise InvalidInput(f"{where} is empty (or only invisible characters)")
    if len(text) > limit:
        raise InvalidInput(f"{where} is {len(text)} characters; the limit is {limit}")


class ModerationService(moderation_pb2_grpc.ModerationServicer):
    def __init__(self, settings: Settings, classifier: Classifier, models: ModelHolder, policy: Policy, voice=None):
        self.settings = settings
        self.classifier = classifier
        self.models = models
        self.policy = policy
        self.voice = voice  # gateway.voice.VoicePipeline, or None when voice is off
        # Streams hold a handler thread for their whole length: at most half the RPC slots, so
        # open voice streams can never starve text calls.
        self._stream_slots = threading.BoundedSemaphore(max(1, min(settings.max_streams, settings.max_in_flight // 2)))
        self._scoring = ScoringOptions(settings.window_overlap_tokens, settings.max_rows_per_call,
                                       settings.explain_max_words, settings.explain_min_weight,
                                       settings.explain_max_spans)

    # --- RPCs -----------------------------------------------------------------------------
    @rpc("text")
    def ClassifyText(self, request, context, log: RequestLog):
        log.describe(request.request_id, 1, len(request.text))
        check_text(request.text, self.settings.max_text_chars)
        return self._classify([request.text], context, log, request.explain)[0]

    @rpc("batch")
    def ClassifyTextBatch(self, request, context, log: RequestLog):
        count = len(request.texts)  # checked before the texts are copied out of the message
        log.describe(request.request_id, count, 0)
        if not count:
            raise InvalidInput("texts is empty")
        if count > self.settings.max_batch_texts:
            raise InvalidInput(f"batch has {count} texts; the limit is {self.settings.max_batch_texts}")
        texts = list(request.texts)
        log.chars = sum(map(len, texts))
        for index, text in enumerate(texts):
            check_text(text, self.settings.max_text_chars, f"texts[{index}]")
        return moderation_pb2.ClassifyTextBatchResponse(verdicts=self._classify(texts, context, log, request.explain))

    @rpc("voice")
    def ClassifyVoice(self, request, context, log: RequestLog):
        log.describe(request.request_id, 1, len(request.audio))
        return self._classify_voice(request, context, log)

    def _classify_voice(self, request, context, log: RequestLog):
        if self.voice is None:
            raise Unimplemented("voice is not enabled on this gateway")
        started = time.perf_counter()
        self.voice.check_size(request)  # the language too
        with self.voice.admitted() as place:
            audio = self.voice.decode(request)
            transcript = self.voice.transcribe(audio, request.language, context.time_remaining(), place)
        asr_ms = (time.perf_counter() - started) * 1e3
        log.stages_ms["asr"] = asr_ms
        segments = [s for s in transcript.segments if s.text.strip()]
        started = time.perf_counter()
        if transcript.text.strip():
            verdicts = self._classify([transcript.text] + [s.text for s in segments], context, log)
        else:  # no words: nothing to send to the model
            verdicts = [self._no_words_verdict(transcript, log)]
        classify_ms = (time.perf_counter() - started) * 1e3
        return moderation_pb2.VoiceVerdict(
            transcript=transcript.text, verdict=verdicts[0],
            segments=[moderation_pb2.VoiceSegment(start_s=s.start_s, end_s=s.end_s, text=s.text, verdict=v)
                      for s, v in zip(segments, verdicts[1:])],
            asr_ms=asr_ms, classify_ms=classify_ms, language=transcript.language or "",
            duration_s=transcript.duration_s, speech_detected=heard_speech(transcript),
        )

    @rpc("stream", units=("chunks", "bytes"))
    def StreamVoice(self, request_iterator, context, log: RequestLog):
        yield from self._stream_voice(request_iterator, context, log)

    def _stream_voice(self, chunks, context, log: RequestLog):
        if self.voice is None:
            raise Unimplemented("voice is not enabled on this gateway")
        if not self._stream_slots.acquire(blocking=False):
            raise Overloaded(f"overloaded: {self.settings.max_streams} voice streams are open, retry later")
        try:  # limits, VAD and utterance cutting: gateway/voice_stream.py
            stream = self.voice.open_stream(log)
            for utterance in stream.utterances(chunks):
                yield self._utterance_event(utterance, stream.language, context, log)
        finally:
            self._stream_slots.release()

    def _utterance_event(self, utterance, language: str, context, log: RequestLog):
        started = time.perf_counter()
        transcript = self.voice.transcribe(utterance.audio, language, context.time_remaining())
        transcribed = time.perf_counter()
        text = transcript.text.strip()
        if text:
            verdict = self._classify([text], context, log)[0]
            log.outcome = verdict.top_category
        else:
            verdict = self._no_words_verdict(transcript, log)
        return moderation_pb2.VoiceEvent(
            utterance=utterance.index, start_s=utterance.start_s, end_s=utterance.end_s, transcript=text,
            verdict=verdict, asr_ms=(transcribed - started) * 1e3, classify_ms=(time.perf_counter() - transcribed) * 1e3,
            speech_detected=heard_speech(transcript),
        )

    def _no_words_verdict(self, transcript, log: RequestLog):
        """non_toxic scores without a model call; for speech that Whisper could not transcribe (even
        with the full window), the action is UNTRANSCRIBED_SPEECH_ACTION, so it never reads as clean."""
        model = self.models.current()
        verdict = self._verdict([1.0] + [0.0] * (len(model.labels) - 1), model, log.request_id)
        if heard_speech(transcript):
            verdict.action = UNTRANSCRIBED_SPEECH_ACTION
            log.outcome = "untranscribed_speech"
        else:
            log.outcome = "no_speech"
        return verdict

    @rpc("info", units=())
    def GetModelInfo(self, request, context, log: RequestLog):
        model = self.models.current()
        return moderation_pb2.ModelInfo(
            model_name=model.name,
            model_version=model.version,
            categories=list(model.labels),
            thresholds={c: self.policy.threshold(c) for c in model.labels[1:]},
            max_text_chars=self.settings.max_text_chars,
            max_batch_texts=self.settings.max_batch_texts,
        )

    def check_policy(self, model: ServingModel) -> None:
        """Logs a policy that names categories the serving version lacks (likely a typo, or a
        category the new version dropped): those thresholds would silently never apply."""
        try:
            self.policy.check_categories(list(model.labels))
        except ValueError as err:
            logger.error("policy does not fit version %s: %s", model.version, err)

    # --- shared path ----------------------------------------------------------------------
    def _classify(self, texts: list[str], context, log: RequestLog, explain: bool = False) -> list:
        with self.models.using() as model:  # one version (model, tokenizer, labels) per request
            started = time.perf_counter()
            scored = score_texts(texts, model.encoder, model.labels, self._infer_for(model, context),
                                 self._scoring, explain)
            total_ms = (time.perf_counter() - started) * 1e3
        log.stages_ms.update(tokenize=total_ms - scored.model_s * 1e3, model=scored.model_s * 1e3)
        verdicts = [self._verdict(row, model, log.request_id, text) for row, text in zip(scored.scores, texts)]
        for verdict, spans in zip(verdicts, scored.evidence):
            verdict.evidence.extend(moderation_pb2.Evidence(start=s.start, end=s.end, category=s.category,
                                                            weight=s.weight, source="model") for s in spans)
        log.outcome = ",".join(v.top_category + ("!" if v.toxic else "") for v in verdicts[:4])
        return verdicts

    def _infer_for(self, model: ServingModel, context):
        """The model call for one request; each call gets the caller's remaining time."""
        def infer(input_ids, attention_mask):
            return self.classifier.infer(input_ids, attention_mask, version=model.version,
                                         timeout_s=self._model_timeout(context))
        return infer

    def _verdict(self, scores, model: ServingModel, request_id: str, text: str = ""):
        row = [float(s) for s in scores]
        decision = self.policy.decide(row, model.labels, text)  # text: for the operator lists
        return moderation_pb2.Verdict(
            scores=[moderation_pb2.CategoryScore(category=c, score=s) for c, s in zip(model.labels, row)],
            top_category=decision.top_category,
            toxic=decision.toxic,
            flagged=list(decision.flagged),
            model_version=model.version,
            request_id=request_id,
            toxic_score=decision.toxic_score,
            severity=decision.severity,
            action=decision.action,
            evidence=[moderation_pb2.Evidence(start=e.start, end=e.end, category=e.category, weight=e.weight,
                                              source=e.source) for e in decision.evidence],
        )

    def _model_timeout(self, context) -> float:
        remaining = context.time_remaining()
        if remaining is None:
            return self.settings.triton_timeout_s
        if remaining < MIN_MODEL_CALL_S:
            raise BackendTimeout("deadline exceeded before the model call")
        return min(remaining, self.settings.triton_timeout_s)
