"""Triton's model-control lock: which of its protocols need a key only the gateway holds.

Triton 2.51 restricts protocol groups with `--grpc-restricted-protocol=<groups>:<key>=<value>`
(and `--http-restricted-api=` likewise); a gRPC call in a restricted group must carry the
metadata `triton-grpc-protocol-<key>: <value>`, else Triton answers UNAVAILABLE "This protocol
is restricted" (checked against the binary in nvidia-pytriton 0.7.0). Restricted here: loading
and unloading models (whose `model.py` the python backend would run), model configuration,
shared memory, tracing and logging. Inference, health, metadata and statistics stay open: the
gateway's data path needs only those, and they change nothing.
"""

from __future__ import annotations

KEY_NAME = "moderation-control-key"
GRPC_HEADER = f"triton-grpc-protocol-{KEY_NAME}"
HTTP_HEADER = KEY_NAME
RESTRICTED_GROUPS = ("model-repository", "model-config", "shared-memory", "trace", "logging")


def restriction_args(key: str, http: bool) -> list[str]:
    """tritonserver flags that lock the restricted groups behind `key`."""
    if not key:
        return []
    groups = ",".join(RESTRICTED_GROUPS)
    args = [f"--grpc-restricted-protocol={groups}:{KEY_NAME}={key}"]
    if http:
        args.append(f"--http-restricted-api={groups}:{KEY_NAME}={key}")
    return args


def control_headers(key: str) -> dict[str, str] | None:
    """The gRPC metadata for a restricted call (tritonclient's `headers=`); None without a key."""
    return {GRPC_HEADER: key} if key else None
