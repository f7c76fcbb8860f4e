"""The public service registered with parsers that never raise, so a malformed request is the caller's error.

gRPC Python parses each request with the method's deserializer before any handler runs; when
that raises (a truncated protobuf, invalid UTF-8 in a string field, bytes that are no protobuf
at all) gRPC answers INTERNAL "Exception deserializing request!" and logs a traceback per call
(issue 15, part 4; found again by fuzz/). Here the parser returns a MalformedRequest instead, and
the handler answers it with INVALID_ARGUMENT and one log line; a malformed message inside a
request stream ends the stream the same way through the error boundary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from contract.pb import moderation_pb2
from gateway.errors import InvalidInput

logger = logging.getLogger(__name__)

SERVICE = moderation_pb2.DESCRIPTOR.services_by_name["Moderation"]


@dataclass(frozen=True)
class MalformedRequest:
    type_name: str
    size: int

    def message(self) -> str:
        return (f"malformed request: {self.size} bytes are not a valid {self.type_name} message "
                "(truncated, wrong field types, or a string field that is not UTF-8)")


def _parser(message_class):
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError, RuntimeError):  # upb raises DecodeError; older runtimes others
            return MalformedRequest(message_class.DESCRIPTOR.name, len(data))

    return parse


def _unary_request(behaviour, method_name: str):
    def handle(request, context):
        if isinstance(request, MalformedRequest):
            logger.info("rpc method=%s status=INVALID_ARGUMENT bytes=%d error=malformed request",
                        method_name, request.size)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message())
        return behaviour(request, context)

    return handle


def _streamed_requests(behaviour):
    def handle(requests, context):
        return behaviour(_checked(requests), context)

    return handle


def _checked(requests):
    for request in requests:
        if isinstance(request, MalformedRequest):
            raise InvalidInput(request.message())
        yield request


def add_moderation_servicer(service, server: grpc.Server) -> None:
    """Registers `service` (a ModerationServicer) like moderation_pb2_grpc.add_ModerationServicer_to_server,
    but with parsers that turn a malformed request into INVALID_ARGUMENT."""
    handlers = {}
    for method in SERVICE.methods:
        request_class = getattr(moderation_pb2, method.input_type.name)
        response_class = getattr(moderation_pb2, method.output_type.name)
        behaviour = getattr(service, method.name)
        codec = {"request_deserializer": _parser(request_class),
                 "response_serializer": response_class.SerializeToString}
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(_streamed_requests(behaviour), **codec)
        elif method.client_streaming:
            handlers[method.name] = grpc.stream_unary_rpc_method_handler(_streamed_requests(behaviour), **codec)
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _unary_request(behaviour, method.name), **codec)
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary_request(behaviour, method.name), **codec)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
