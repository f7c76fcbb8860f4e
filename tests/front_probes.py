"""Probes of the gateway's front for tests (issue 15): a slow-loris client and raw-bytes calls."""

from __future__ import annotations

import socket
import threading

import grpc
import h2.config
import h2.connection
import h2.events

CLASSIFY_TEXT = "/moderation.v1.Moderation/ClassifyText"


class SlowLoris:
    """One HTTP/2 connection that opens `streams` gRPC calls with HEADERS and never sends DATA.

    A reader thread answers the server's SETTINGS and pings and counts what it does to the streams.
    """

    def __init__(self, address: str, streams: int, path: str = CLASSIFY_TEXT, source_host: str = "127.0.0.1"):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source_host, 0))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.lock = threading.Lock()
        self.reset: set[int] = set()  # streams the server refused or cancelled
        self.ended: set[int] = set()  # streams the server answered (trailers)
        self.closed = threading.Event()
        self.opened: list[int] = []
        headers = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", address),
                   ("content-type", "application/grpc"), ("te", "trailers")]
        self.conn.initiate_connection()
        for _ in range(streams):  # all sent before the server's SETTINGS are read: its stream limit is ignored
            stream_id = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream_id, headers)  # no DATA, no END_STREAM: the call waits
            self.opened.append(stream_id)
        self.sock.sendall(self.conn.data_to_send())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                with self.lock:
                    for event in self.conn.receive_data(data):
                        if isinstance(event, h2.events.StreamReset):
                            self.reset.add(event.stream_id)
                        elif isinstance(event, h2.events.StreamEnded):
                            self.ended.add(event.stream_id)
                    self.sock.sendall(self.conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed.set()

    @property
    def held(self) -> int:
        """Streams still open on the server's side."""
        with self.lock:
            return len([s for s in self.opened if s not in self.reset and s not in self.ended])

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)


def raw_call(channel: grpc.Channel, method: str, payload: bytes, **kwargs):
    """Sends `payload` as the request message of /moderation.v1.Moderation/<method>, unparsed."""
    call = channel.unary_unary(f"/moderation.v1.Moderation/{method}")  # no serializers: bytes go as they are
    return call(payload, **kwargs)
