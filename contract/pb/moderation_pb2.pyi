from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyTextRequest(_message.Message):
    __slots__ = ("text", "request_id", "explain")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    text: str
    request_id: str
    explain: bool
    def __init__(self, text: _Optional[str] = ..., request_id: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class ClassifyTextBatchRequest(_message.Message):
    __slots__ = ("texts", "request_id", "explain")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    explain: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., explain: _Optional[bool] = ...) -> None: ...

class ClassifyTextBatchResponse(_message.Message):
    __slots__ = ("verdicts",)
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "score")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("scores", "top_category", "toxic", "flagged", "model_version", "request_id", "toxic_score", "severity", "action", "evidence")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TOP_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TOXIC_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOXIC_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    top_category: str
    toxic: bool
    flagged: _containers.RepeatedScalarFieldContainer[str]
    model_version: str
    request_id: str
    toxic_score: float
    severity: str
    action: str
    evidence: _containers.RepeatedCompositeFieldContainer[Evidence]
    def __init__(self, scores: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., top_category: _Optional[str] = ..., toxic: _Optional[bool] = ..., flagged: _Optional[_Iterable[str]] = ..., model_version: _Optional[str] = ..., request_id: _Optional[str] = ..., toxic_score: _Optional[float] = ..., severity: _Optional[str] = ..., action: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[Evidence, _Mapping]]] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("start", "end", "category", "weight", "source")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    category: str
    weight: float
    source: str
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., category: _Optional[str] = ..., weight: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class ClassifyVoiceRequest(_message.Message):
    __slots__ = ("audio", "format", "sample_rate_hz", "language", "request_id")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    audio: bytes
    format: str
    sample_rate_hz: int
    language: str
    request_id: str
    def __init__(self, audio: _Optional[bytes] = ..., format: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., language: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class VoiceSegment(_message.Message):
    __slots__ = ("start_s", "end_s", "text", "verdict")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    text: str
    verdict: Verdict
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ...) -> None: ...

class VoiceVerdict(_message.Message):
    __slots__ = ("transcript", "verdict", "segments", "asr_ms", "classify_ms", "language", "duration_s", "speech_detected")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    ASR_MS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_MS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SPEECH_DETECTED_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    verdict: Verdict
    segments: _containers.RepeatedCompositeFieldContainer[VoiceSegment]
    asr_ms: float
    classify_ms: float
    language: str
    duration_s: float
    speech_detected: bool
    def __init__(self, transcript: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[VoiceSegment, _Mapping]]] = ..., asr_ms: _Optional[float] = ..., classify_ms: _Optional[float] = ..., language: _Optional[str] = ..., duration_s: _Optional[float] = ..., speech_detected: _Optional[bool] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("pcm16", "sample_rate_hz", "language", "request_id")
    PCM16_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    pcm16: bytes
    sample_rate_hz: int
    language: str
    request_id: str
    def __init__(self, pcm16: _Optional[bytes] = ..., sample_rate_hz: _Optional[int] = ..., language: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class VoiceEvent(_message.Message):
    __slots__ = ("utterance", "start_s", "end_s", "transcript", "verdict", "asr_ms", "classify_ms", "speech_detected")
    UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ASR_MS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_MS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_DETECTED_FIELD_NUMBER: _ClassVar[int]
    utterance: int
    start_s: float
    end_s: float
    transcript: str
    verdict: Verdict
    asr_ms: float
    classify_ms: float
    speech_detected: bool
    def __init__(self, utterance: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., transcript: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., asr_ms: _Optional[float] = ..., classify_ms: _Optional[float] = ..., speech_detected: _Optional[bool] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_name", "model_version", "categories", "thresholds", "max_text_chars", "max_batch_texts")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_TEXTS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    thresholds: _containers.ScalarMap[str, float]
    max_text_chars: int
    max_batch_texts: int
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., max_text_chars: _Optional[int] = ..., max_batch_texts: _Optional[int] = ...) -> None: ...
