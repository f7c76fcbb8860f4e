"""Issue 15's probes of the gateway's front against the real Triton and gateway: slow-loris
lock-out, a second gateway on a taken port, malformed, oversize and compressed requests."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract.pb import moderation_pb2, moderation_pb2_grpc
from loadtest.slowloris import SlowLoris, normal_calls
from tests.front_probes import raw_call
from tests.integration.conftest import REPO_DIR, start_gateway

pytestmark = pytest.mark.integration

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NORMAL_CALLS = 40
MAX_RSS_GROWTH_MB = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def normal_calls_during(address: str, count: int = NORMAL_CALLS) -> tuple[int, int]:
    """(calls that succeeded, health checks answered SERVING), from a fresh channel."""
    calls, health = normal_calls(address, count)
    return calls["OK"], health["SERVING"]


def wait_until(condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- lock-out ---------------------------------------------------------------------------------
def test_one_connection_with_80_idle_streams_locks_nobody_out(triton):
    running = start_gateway(triton, request_read_timeout_s=120)  # the streams stay held for the whole test
    loris = SlowLoris(running.address, 80)
    try:
        assert wait_until(lambda: loris.held <= 48)  # 3/4 of max_in_flight (64) on one connection
        ok, serving = normal_calls_during(running.address)
        assert loris.held == 48  # the attack was still holding its streams
        assert ok >= 0.95 * NORMAL_CALLS, f"only {ok} of {NORMAL_CALLS} normal calls succeeded"
        assert serving == NORMAL_CALLS
    finally:
        loris.close()
        running.close()


def test_many_connections_from_one_address_get_only_its_share(triton):
    running = start_gateway(triton, request_read_timeout_s=120)
    attackers = [SlowLoris(running.address, 20, source_host="127.0.0.2") for _ in range(5)]  # 100 streams
    try:
        assert wait_until(lambda: sum(a.held for a in attackers) <= 56)  # 7/8 of max_in_flight (64)
        ok, serving = normal_calls_during(running.address)  # from 127.0.0.1
        assert sum(a.held for a in attackers) == 56
        assert ok >= 0.95 * NORMAL_CALLS, f"only {ok} of {NORMAL_CALLS} normal calls succeeded"
        assert serving == NORMAL_CALLS
    finally:
        for attacker in attackers:
            attacker.close()
        running.close()


def test_idle_streams_are_cancelled_after_the_read_timeout(triton):
    running = start_gateway(triton, request_read_timeout_s=2)
    loris = SlowLoris(running.address, 80)
    try:
        assert wait_until(lambda: loris.held == 0, timeout_s=60)
        assert wait_until(lambda: running.gateway.front.admission.in_flight == 0)
        ok, _ = normal_calls_during(running.address, 8)
        assert ok == 8
    finally:
        loris.close()
        running.close()


# --- a gateway process -------------------------------------------------------------------------
class GatewayProcess:
    """`python -m gateway.server` as a child process (voice off), its stderr in a file."""

    def __init__(self, triton, log_path: Path, *flags: str):
        self.address = f"127.0.0.1:{free_port()}"
        self.log_path = log_path
        env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.server", "--listen-address", self.address, "--triton-url",
             triton.grpc_url, "--model-repository", str(triton.model_repository), "--voice-enabled", "false",
             "--admin-listen-address", "", "--health-poll-s", "0.2", *flags],
            cwd=REPO_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_serving(self, timeout_s: float = 60.0) -> None:
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)

            def serving():
                assert self.process.poll() is None, self.text()
                try:
                    return health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    return False
            assert wait_until(serving, timeout_s), self.text()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def gateway_process(triton, tmp_path):
    process = GatewayProcess(triton, tmp_path / "gateway.log")
    try:
        process.wait_serving()
        yield process
    finally:
        process.stop()


def test_a_second_gateway_on_a_taken_port_exits_naming_it(triton, gateway_process, tmp_path):
    port = gateway_process.address.rpartition(":")[2]
    second = subprocess.run(
        [sys.executable, "-m", "gateway.server", "--listen-address", gateway_process.address, "--triton-url",
         triton.grpc_url, "--model-repository", str(triton.model_repository), "--voice-enabled", "false",
         "--admin-listen-address", ""],
        cwd=REPO_DIR, env={**os.environ, "PYTHONPATH": str(REPO_DIR)}, capture_output=True, text=True, timeout=120)
    assert second.returncode != 0
    assert f"port {port} is in use" in second.stderr
    with grpc.insecure_channel(gateway_process.address) as channel:  # the first keeps serving
        stub = moderation_pb2_grpc.ModerationStub(channel)
        assert stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg"), timeout=20).top_category
    log = gateway_process.text()
    assert log.index("health: SERVING") < log.index("ready: moderation gateway")  # "ready" only once serving


def test_a_taken_admin_port_fails_too(triton):
    admin_port = free_port()
    first = start_gateway(triton, admin_listen_address=f"127.0.0.1:{admin_port}")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "gateway.server", "--listen-address", f"127.0.0.1:{free_port()}",
             "--triton-url", triton.grpc_url, "--voice-enabled", "false",
             "--admin-listen-address", f"127.0.0.1:{admin_port}"],
            cwd=REPO_DIR, env={**os.environ, "PYTHONPATH": str(REPO_DIR)}, capture_output=True, text=True,
            timeout=120)
        assert second.returncode != 0
        assert f"port {admin_port} is in use" in second.stderr and "admin API" in second.stderr
    finally:
        first.close()


# --- bad input ---------------------------------------------------------------------------------
def _code(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


BAD_UTF8 = b"\xff\xfe"


def _malformed_requests() -> dict[str, tuple[str, bytes]]:
    def text(**fields):
        return moderation_pb2.ClassifyTextRequest(**fields).SerializeToString()
    return {
        "text not UTF-8": ("ClassifyText", b"\x0a\x02" + BAD_UTF8),
        "request_id not UTF-8": ("ClassifyText", text(text="gg") + b"\x12\x02" + BAD_UTF8),
        "a batch text not UTF-8": ("ClassifyTextBatch", b"\x0a\x02gg\x0a\x02" + BAD_UTF8),
        "voice language not UTF-8": ("ClassifyVoice", b"\x0a\x01a\x22\x02" + BAD_UTF8),
        "truncated": ("ClassifyText", text(text="gg wp everyone")[:-3]),
        "garbage": ("GetModelInfo", b"\xff\xff\xff\xff"),
        "request_id of 100 KB": ("ClassifyText", text(text="gg", request_id="x" * 100_000)),
        "request_id forging a line": ("ClassifyText", text(text="gg", request_id="x\r\nFORGED INFO ok")),
        "zero-width text": ("ClassifyText", text(text="\u200b\u200c\u200d\u2060")),
        "NUL text": ("ClassifyText", text(text="\x00\x00\x00")),
        "text request of 1 MB": ("ClassifyText", text(text="a" * 1_000_000)),
        "2M one-character texts": ("ClassifyTextBatch",
                                   moderation_pb2.ClassifyTextBatchRequest(texts=["a"] * 2_000_000).SerializeToString()),
    }


def test_bad_requests_get_invalid_argument_with_bounded_memory(gateway_process):
    def normal_call():
        with grpc.insecure_channel(gateway_process.address) as channel:
            stub = moderation_pb2_grpc.ModerationStub(channel)
            return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text="gg wp"), timeout=20)

    normal_call()
    rss_before = gateway_process.rss_mb()
    peak = [rss_before]
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], gateway_process.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    channel = grpc.insecure_channel(gateway_process.address)
    try:
        for name, (method, payload) in _malformed_requests().items():
            code, details = _code(raw_call, channel, method, payload, timeout=30)
            assert code == INVALID, f"{name}: {code} {details}"
        bomb = moderation_pb2.ClassifyTextRequest(text="a" * 16_000_000).SerializeToString()
        assert len(gzip.compress(bomb)) < 20_000
        for _ in range(3):  # eight 16 MB gzip bombs at once, three times
            with ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(lambda _: _code(lambda: raw_call(
                    channel, "ClassifyText", bomb, timeout=60, compression=grpc.Compression.Gzip)), range(8)))
            assert all(code == INVALID and "the limit is 65536 bytes" in details for code, details in codes), codes
        clip = moderation_pb2.ClassifyVoiceRequest(audio=b"\x00" * (17 * 1024 * 1024)).SerializeToString()
        code, details = _code(lambda: raw_call(channel, "ClassifyVoice", clip, timeout=60))
        assert code == INVALID and "the limit is" in details, details
        small = _code(lambda: raw_call(channel, "ClassifyText", moderation_pb2.ClassifyTextRequest(
            text="gg wp").SerializeToString(), timeout=20, compression=grpc.Compression.Gzip))
        assert small[0] == grpc.StatusCode.OK  # gzip itself is allowed
        assert normal_call().top_category  # and a normal call is unaffected
    finally:
        sampling.set()
        sampler.join()
        channel.close()
    growth = gateway_process.rss_mb() - rss_before
    print(f"gateway RSS {rss_before:.0f} MB before, peak +{peak[0] - rss_before:.0f} MB, after +{growth:.0f} MB")
    assert growth < MAX_RSS_GROWTH_MB
    log = gateway_process.text()
    assert "Traceback" not in log and "INTERNAL" not in log
    assert not any(line.startswith("FORGED") for line in log.splitlines())
    assert "x" * 200 not in log  # the 100 KB id is neither echoed nor logged


def test_unknown_language_lists_the_accepted_ones(stub):
    code, details = _code(lambda: stub.ClassifyVoice(
        moderation_pb2.ClassifyVoiceRequest(audio=b"\x00\x01" * 8000, format="pcm16", sample_rate_hz=16000,
                                            language="xx"), timeout=60))
    assert code == INVALID
    assert "language 'xx' is not supported; accepted: en" in details
