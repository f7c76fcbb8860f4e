"""Raw-bytes calls for tests of the gateway's front (issue 15)."""

from __future__ import annotations

import grpc


def raw_call(channel: grpc.Channel, method: str, payload: bytes, **kwargs):
    """Sends `payload` as the request message of /moderation.v1.Moderation/<method>, unparsed."""
    call = channel.unary_unary(f"/moderation.v1.Moderation/{method}")  # no serializers: bytes go as they are
    return call(payload, **kwargs)
