"""Real tritonserver + real gateway on free loopback ports, started once per session."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest

from contract import tensors

REPO_DIR = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = Path(os.environ.get("MODERATION_TEST_MODEL_REPOSITORY", REPO_DIR / "model_repository"))


def _has_version(model_repository: Path) -> bool:
    model_dir = model_repository / tensors.MODEL_NAME
    return model_dir.is_dir() and any(p.name.isdigit() for p in model_dir.iterdir())


def start_triton(log_dir: Path, model_repository: Path = MODEL_REPOSITORY, **kwargs):
    from gateway.triton_process import TritonProcess

    triton = TritonProcess(model_repository, log_path=log_dir / "triton.log", **kwargs)
    triton.start()
    try:
        triton.wait_until_ready(timeout_s=180)
    except BaseException:
        triton.stop()
        raise
    return triton


@pytest.fixture(scope="session")
def triton(tmp_path_factory):
    pytest.importorskip("pytriton", reason="nvidia-pytriton (tritonserver) is not installed")
    if not _has_version(MODEL_REPOSITORY):
        pytest.skip(f"no model version in {MODEL_REPOSITORY}")
    server = start_triton(tmp_path_factory.mktemp("triton"))
    yield server
    server.stop(grace_s=10)


def wait_serving(gateway, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gateway.monitor.check_once():
            return
        time.sleep(0.2)
    raise AssertionError("gateway never saw a ready model")


class RunningGateway:
    def __init__(self, gateway, port: int):
        self.gateway = gateway
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address)
        from contract.pb import moderation_pb2_grpc

        self.stub = moderation_pb2_grpc.ModerationStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.gateway.stop(0)


def start_gateway(triton, control_key: str | None = None, **overrides) -> RunningGateway:
    """control_key: Triton's model-control key handed over (default: the one `triton` was started with)."""
    from gateway.server import create_server
    from gateway.settings import Settings

    overrides.setdefault("admin_listen_address", "")  # only the lifecycle tests use the admin API
    overrides.setdefault("voice_enabled", False)  # only the session gateway loads Whisper
    overrides.setdefault("metrics_listen_address", "127.0.0.1:0")  # a free port: gateways here run side by side
    settings = Settings(listen_address="127.0.0.1:0", triton_url=triton.grpc_url,
                        model_repository=str(triton.model_repository), health_poll_s=0.2, **overrides)
    gateway, port = create_server(settings, triton_control_key=triton.control_key if control_key is None else control_key)
    gateway.start()
    wait_serving(gateway)
    return RunningGateway(gateway, port)


@pytest.fixture(scope="session")
def gateway(triton):
    running = start_gateway(triton, voice_enabled=True)
    yield running
    running.close()


@pytest.fixture(scope="session")
def stub(gateway):
    return gateway.stub


def pytest_collection_modifyitems(config, items):
    """Every test here starts real servers: one without the marker would slip into `-m "not integration"`."""
    here = Path(__file__).parent
    unmarked = [item.nodeid for item in items
                if here in Path(item.path).parents and item.get_closest_marker("integration") is None]
    if unmarked:
        raise pytest.UsageError(f"tests/integration tests need @pytest.mark.integration: {', '.join(unmarked)}")
