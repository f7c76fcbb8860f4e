from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListModelVersionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelVersionInfo(_message.Message):
    __slots__ = ("version", "state", "reason", "active", "categories")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    version: str
    state: str
    reason: str
    active: bool
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., active: _Optional[bool] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("model_name", "active_version", "previous_version", "versions")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    active_version: str
    previous_version: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionInfo]
    def __init__(self, model_name: _Optional[str] = ..., active_version: _Optional[str] = ..., previous_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionInfo, _Mapping]]] = ...) -> None: ...

class ActivateVersionRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActivationResult(_message.Message):
    __slots__ = ("active_version", "previous_version", "categories", "load_ms", "switch_ms")
    ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    SWITCH_MS_FIELD_NUMBER: _ClassVar[int]
    active_version: str
    previous_version: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    load_ms: float
    switch_ms: float
    def __init__(self, active_version: _Optional[str] = ..., previous_version: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., load_ms: _Optional[float] = ..., switch_ms: _Optional[float] = ...) -> None: ...

class ReloadPolicyRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class PolicyInfo(_message.Message):
    __slots__ = ("source", "default_threshold", "thresholds")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    source: str
    default_threshold: float
    thresholds: _containers.ScalarMap[str, float]
    def __init__(self, source: _Optional[str] = ..., default_threshold: _Optional[float] = ..., thresholds: _Optional[_Mapping[str, float]] = ...) -> None: ...
