"""Calls the classifier in Triton over gRPC with one shared, thread-safe client."""

from __future__ import annotations

import json
import logging

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from contract import tensors
from gateway.errors import BackendUnavailable, translate_triton_error
from gateway.triton_access import control_headers

logger = logging.getLogger(__name__)

READINESS_TIMEOUT_S = 1.0  # health probes must not hang when Triton is wedged
# A restarted Triton is found within 2 s; gRPC's default reconnect backoff grows to 2 minutes,
# which kept a gateway failing for up to a minute after Triton was back.
RECONNECT_CHANNEL_ARGS = [("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 2000)]




def default_channel_args() -> list[tuple]:
    """tritonclient's own channel defaults plus a short reconnect backoff."""
    keepalive = grpcclient.KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        *RECONNECT_CHANNEL_ARGS,
    ]


class TritonClassifier:
    """The gateway.classifier.Classifier that calls Triton."""

    def __init__(self, url: str, model_name: str = tensors.MODEL_NAME, control_key: str = "",
                 channel_args: list | None = None, **client_options):
        """channel_args: gRPC channel options replacing tritonclient's defaults (gateway.triton_pool);
        client_options: TLS to a remote Triton (gateway.tls.triton_client_options)."""
        self.url = url
        self.model_name = model_name
        self._client = grpcclient.InferenceServerClient(
            url, channel_args=channel_args if channel_args is not None else default_channel_args(), **client_options)
        # sent only on Triton's restricted calls (repository index, configs, load/unload)
        self._control = control_headers(control_key)

    def infer(self, input_ids: np.ndarray, attention_mask: np.ndarray, *, version: str, timeout_s: float) -> np.ndarray:
        """Scores [batch, categories] for one encoded request. Raises ModerationError subclasses."""
        inputs = [
            grpcclient.InferInput(tensors.INPUT_IDS, list(input_ids.shape), tensors.TRITON_INPUT_DATATYPE),
            grpcclient.InferInput(tensors.ATTENTION_MASK, list(attention_mask.shape), tensors.TRITON_INPUT_DATATYPE),
        ]
        inputs[0].set_data_from_numpy(input_ids)
        inputs[1].set_data_from_numpy(attention_mask)
        outputs = [grpcclient.InferRequestedOutput(tensors.SCORES)]
        try:
            result = self._client.infer(
                self.model_name, inputs, model_version=version, outputs=outputs, client_timeout=timeout_s
            )
        except InferenceServerException as err:
            raise translate_triton_error(err) from err
        scores = result.as_numpy(tensors.SCORES)
        if scores is None:
            raise BackendUnavailable("model server returned no scores")
        return scores

    def ready_versions(self) -> list[str]:
        """Versions of the model Triton reports READY, lowest first (empty if unreachable)."""
        try:
            index = self._client.get_model_repository_index(headers=self._control, client_timeout=READINESS_TIMEOUT_S)
            versions = [m.version for m in index.models if m.name == self.model_name and m.state == "READY"]
        except InferenceServerException:
            versions = self._ready_versions_unrestricted()
        return sorted(versions, key=lambda v: int(v) if v.isdigit() else -1)

    def _ready_versions_unrestricted(self) -> list[str]:
        """Without the control key (or with a wrong one) the index is refused; metadata and
        readiness are open, so the read path still finds what serves."""
        try:
            metadata = self._client.get_model_metadata(self.model_name, client_timeout=READINESS_TIMEOUT_S)
        except InferenceServerException:
            return []
        return [v for v in metadata.versions if self.is_ready(v)]

    def is_ready(self, version: str = "") -> bool:
        try:
            return bool(self._client.is_model_ready(self.model_name, version, client_timeout=READINESS_TIMEOUT_S))
        except InferenceServerException:
            return False

    def version_states(self) -> dict[str, tuple[str, str]]:
        """version -> (state, reason) for every version Triton knows of this model."""
        try:
            index = self._client.get_model_repository_index(headers=self._control, client_timeout=READINESS_TIMEOUT_S)
        except InferenceServerException as err:
            raise translate_triton_error(err) from err
        return {m.version: (m.state, m.reason) for m in index.models if m.name == self.model_name and m.version}

    def load_versions(self, versions: list[str]) -> None:
        """Makes exactly these versions loaded (config override of the version policy).

        Triton loads the new versions while the already-loaded ones keep serving. Raises
        ModerationError with Triton's reason when a version fails to load.
        """
        try:
            config = self._client.get_model_config(self.model_name, headers=self._control, as_json=True)["config"]
            config["version_policy"] = {"specific": {"versions": [str(v) for v in versions]}}
            self._client.load_model(self.model_name, headers=self._control, config=json.dumps(config))
        except InferenceServerException as err:
            raise translate_triton_error(err) from err

    def close(self) -> None:
        self._client.close()
