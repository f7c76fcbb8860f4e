"""Slow-loris probe of a running gateway (issue 15): idle HTTP/2 streams, then normal calls.

    python -m loadtest.slowloris --address 127.0.0.1:50051 --streams 80 --connections 1 --calls 40

Opens `--connections` connections from each `--source-host` address that each send HEADERS for
`--streams` calls of `--method` (ClassifyText; or the health Check or Watch, or reflection) and
never any DATA, then makes `--calls` normal calls (4 at a time, each followed by a health check)
from another connection, and prints how many succeeded. Needs the `h2` package (load extra).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc

CLASSIFY_TEXT = "/moderation.v1.Moderation/ClassifyText"
METHODS = {"ClassifyText": CLASSIFY_TEXT, "Check": "/grpc.health.v1.Health/Check",
           "Watch": "/grpc.health.v1.Health/Watch",
           "ServerReflectionInfo": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}


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


def normal_calls(address: str, count: int, timeout_s: float = 20.0,
                 health_s: list[float] | None = None, api_key: str = "") -> tuple[Counter, Counter]:
    """Status codes of `count` ClassifyText calls and of the health check after each, 4 at a time;
    each health check's seconds are appended to `health_s` if given."""
    with grpc.insecure_channel(address) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def one(index: int) -> tuple[str, str]:
            try:
                stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=f"gg wp {index}"), timeout=timeout_s,
                                  metadata=[("x-api-key", api_key)] if api_key else None)
                call = "OK"
            except grpc.RpcError as err:
                call = err.code().name
            started = time.monotonic()
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s).status
                checked = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
            except grpc.RpcError as err:
                checked = err.code().name
            if health_s is not None:
                health_s.append(time.monotonic() - started)
            return call, checked

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(one, range(count)))
    return Counter(call for call, _ in results), Counter(checked for _, checked in results)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.slowloris", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--streams", type=int, default=80, help="idle streams per connection")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--source-host", default="127.0.0.1",
                        help="local address(es) the idle connections come from, comma-separated: --connections from each")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--method", choices=sorted(METHODS), default="ClassifyText", help="the idle streams' method")
    parser.add_argument("--api-key", default="", help="the normal calls' key (the idle streams send none)")
    args = parser.parse_args(argv)
    hosts = args.source_host.split(",")
    attackers = [SlowLoris(args.address, args.streams, METHODS[args.method], host)
                 for host in hosts for _ in range(args.connections)]
    try:
        time.sleep(1.0)  # let the server refuse what it refuses
        health_s: list[float] = []  # kubelet's probes give up after 1 s
        calls, health = normal_calls(args.address, args.calls, health_s=health_s, api_key=args.api_key)
        held = sum(a.held for a in attackers)
    finally:
        for attacker in attackers:
            attacker.close()
    print(f"idle {args.method} streams sent {args.streams * len(attackers)} from {len(hosts)} address(es), "
          f"still held {held}")
    print(f"normal calls: {dict(calls)} ({calls['OK']}/{args.calls} OK)")
    slowest = max(health_s, default=float("nan"))
    print(f"health checks: {dict(health)} ({health['SERVING']}/{args.calls} SERVING), slowest {slowest:.3f} s")


if __name__ == "__main__":
    main()
