"""Runs the real `tritonserver` shipped in the `nvidia-pytriton` wheel as a child process.

The wheel carries the server binary, the python backend and one python-backend stub per CPython
version. The stub must sit in the backend's directory, so the backends are copied once into a
cache directory with the stub for this interpreter (the wheel's own files stay untouched). Our
own python-based backends (triton_backends/<name>/model.py, run by the python backend for every
model whose config names them) are copied in beside it at every start. The stub imports
torch/numpy from the environment found first on PATH, so PATH starts with this interpreter's
bin/, and LD_LIBRARY_PATH holds its libpython.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway import processes
from gateway.model_version import numbered_versions
from gateway.secrets_files import generate_secret, without_secrets
from gateway.triton_access import control_headers, restriction_args

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 40  # shown when start-up fails
POLL_INTERVAL_S = 0.25
STUB_GRACE_S = 3.0  # python-backend stubs left after Triton exits get this long before SIGKILL
OUR_BACKENDS_DIR = Path(__file__).resolve().parents[1] / "triton_backends"
GPU_CONFIG_NAME = "gpu"  # <model>/configs/gpu.pbtxt: libtorch on CUDA


class TritonStartError(RuntimeError):
    """Triton did not become ready; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pytriton_server_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonStartError("nvidia-pytriton is not installed: pip install nvidia-pytriton")
    server_dir = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (server_dir / "bin" / "tritonserver").exists():
        raise TritonStartError(f"no tritonserver binary under {server_dir}")
    return server_dir


def prepare_backends(server_dir: Path, cache_dir: Path, our_backends: Path = OUR_BACKENDS_DIR) -> Path:
    """A backends directory whose python backend has this interpreter's stub beside it, and
    our python-based backends next to it."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"nvidia-pytriton has no python-backend stub for Python {version}")
    backends = cache_dir / f"backends-py{version}"
    marker = backends / ".source"
    if not marker.exists() or marker.read_text() != str(server_dir):
        staging = cache_dir / f".backends-staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(server_dir / "backends", staging)
        shutil.copy2(stub, staging / "python" / "triton_python_backend_stub")
        (staging / ".source").write_text(str(server_dir))
        shutil.rmtree(backends, ignore_errors=True)
        os.rename(staging, backends)
    _install_our_backends(our_backends, backends)
    return backends


def _install_our_backends(source: Path, backends: Path) -> None:
    found = sorted(p for p in source.glob("*/model.py")) if source.is_dir() else []
    if not found:
        raise TritonStartError(f"no python-based backend (<name>/model.py) under {source}")
    for model_py in found:
        target = backends / model_py.parent.name
        target.mkdir(exist_ok=True)
        staging = target / f".model.py.{os.getpid()}"
        shutil.copyfile(model_py, staging)
        os.replace(staging, target / "model.py")  # a Triton starting beside us never reads half a file


def child_environment(server_dir: Path) -> dict[str, str]:
    env = without_secrets(dict(os.environ))  # Triton and its python stubs never see the admin token
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # The wheel's shared libraries (libcudart, ...) are found through an RPATH relative to the
    # stub's original place; the copied stub needs them on LD_LIBRARY_PATH instead.
    wheel_libs = server_dir.parent.parent / "nvidia_pytriton.libs"
    libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(wheel_libs)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs + [env.get("LD_LIBRARY_PATH", "")] if d)
    return env


@dataclass
class TritonProcess:
    """One tritonserver child in explicit model-control mode, bound to one host address."""

    model_repository: Path
    models: tuple[str, ...] = ("toxicity",)
    host: str = "127.0.0.1"
    grpc_port: int = 0  # 0: pick a free port
    http_port: int = 0
    metrics_port: int = 0
    log_path: Path | None = None
    config_name: str = ""  # e.g. "gpu" -> <model>/configs/gpu.pbtxt
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "moderation-gateway")
    extra_args: tuple[str, ...] = ()
    # Model control (load/unload, configs) needs this key (gateway/triton_access.py); generated
    # per start unless given (a remote gateway reads it from --triton-control-key-file).
    control_key: str = field(default_factory=generate_secret, repr=False)
    http_enabled: bool = False  # the gateway speaks gRPC only; HTTP is one more door to lock
    metrics_host: str = ""  # Prometheus' address; empty: the same as `host`
    _process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.model_repository = Path(self.model_repository).resolve()
        self.grpc_port = self.grpc_port or free_port(self.host)
        self.http_port = (self.http_port or free_port(self.host)) if self.http_enabled else 0  # 0 in logs: off
        self.metrics_host = self.metrics_host or self.host
        self.metrics_port = self.metrics_port or free_port(self.metrics_host)
        self.log_path = Path(self.log_path or self.cache_dir / f"triton-{self.grpc_port}.log")

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_host}:{self.metrics_port}/metrics"

    @property
    def control_headers(self) -> dict[str, str] | None:
        """Metadata for this server's restricted calls (tritonclient's `headers=`)."""
        return control_headers(self.control_key)

    def command(self, backends: Path, server_dir: Path) -> list[str]:
        args = [
            str(server_dir / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--model-control-mode=explicit",
            *(f"--load-model={name}" for name in self.models),
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            *([f"--http-address={self.host}", f"--http-port={self.http_port}"] if self.http_enabled
              else ["--allow-http=false"]),
            f"--metrics-address={self.metrics_host}", f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false",
            "--strict-readiness=true", "--exit-on-error=true", "--log-verbose=0",
        ]
        if self.config_name:
            args.append(f"--model-config-name={self.config_name}")
        args += restriction_args(self.control_key, self.http_enabled)
        return args + list(self.extra_args)

    def start(self) -> None:
        """Starts tritonserver in a process group of its own (its python-backend stubs join it),
        killed by the kernel if the thread calling this dies.

        Raises:
          TritonStartError: a port is taken (a second stack must not share or answer for the
            first one's Triton), or the binary or our backends are missing.
        """
        if self.running:
            return
        if self._process is not None:  # exited on its own: no zombie, no stubs left behind
            self.reap()
        self.check_versions()
        self.check_ports_free()
        server_dir = pytriton_server_dir()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        backends = prepare_backends(server_dir, self.cache_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        logger.info("starting tritonserver grpc=%s http=%d metrics=%d log=%s",
                    self.grpc_url, self.http_port, self.metrics_port, self.log_path)
        try:
            self._process = subprocess.Popen(
                self.command(backends, server_dir), stdout=log, stderr=subprocess.STDOUT,
                env=child_environment(server_dir), start_new_session=True,
                preexec_fn=processes.die_with_parent_hook(),
            )
        finally:
            log.close()

    def check_versions(self) -> None:
        """Refuses a GPU config whose latest version has CPU-only dynamic-int8 kernels."""
        if self.config_name != GPU_CONFIG_NAME:
            return
        for model in self.models:
            model_dir = self.model_repository / model
            numbered = numbered_versions(model_dir)
            info_path = model_dir / numbered[-1] / "export.json" if numbered else None
            if info_path and info_path.exists() and json.loads(info_path.read_text()).get("precision") == "int8":
                raise TritonStartError(
                    f"{info_path.parent} is dynamic-int8 (CPU-only kernels): publish a version exported with "
                    "`moderation-export --precision fp16 --device cuda` for the GPU config")

    def check_ports_free(self) -> None:
        for name, port in (("gRPC", self.grpc_port), ("HTTP", self.http_port), ("metrics", self.metrics_port)):
            if processes.port_taken(self.host, port):
                raise TritonStartError(
                    f"Triton's {name} port {self.host}:{port} is already in use (another stack or Triton?); "
                    f"stop it or choose another --triton-{name.lower()}-port")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Started and not exited (an exited Triton is not reaped here: see reap())."""
        return self._process is not None and not processes.exited_unreaped(self._process.pid)

    def reap(self, stub_grace_s: float = STUB_GRACE_S) -> int | None:
        """After Triton exited: ends its leftover stubs, then reaps it (no zombie).
        Returns its exit status (negative: killed by that signal)."""
        process, self._process = self._process, None
        if process is None:
            return None
        processes.end_group(process.pid, stub_grace_s)
        return process.wait()

    def check_own_listener(self) -> None:
        """Raises TritonStartError unless our process, and only it, listens on the gRPC port."""
        if not processes.ON_LINUX or self._process is None:
            return
        ours, foreign = processes.foreign_listeners(self._process.pid, self.grpc_port)
        if foreign or not ours:
            raise TritonStartError(
                f"port {self.grpc_port} is answered by {'another process as well as' if ours else 'another process, not'} "
                f"the tritonserver we started (pid {self._process.pid}); refusing to use it")

    def wait_until_ready(self, timeout_s: float = 120.0) -> None:
        """Waits for the server and every model to be ready; raises with the log tail if not."""
        import tritonclient.grpc as grpcclient

        from gateway.triton_classifier import default_channel_args

        deadline = time.monotonic() + timeout_s
        # short reconnect backoff: the channel is made before Triton listens
        with grpcclient.InferenceServerClient(self.grpc_url, channel_args=default_channel_args()) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    raise TritonStartError(f"tritonserver exited during start-up\n{self.log_tail()}")
                try:
                    ready = client.is_server_ready() and all(client.is_model_ready(m) for m in self.models)
                except Exception:  # not listening yet
                    ready = False
                if ready:
                    self.check_own_listener()
                    logger.info("tritonserver ready at %s (pid %d)", self.grpc_url, self._process.pid)
                    return
                time.sleep(POLL_INTERVAL_S)
        raise TritonStartError(f"tritonserver not ready after {timeout_s:.0f} s\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGINT (Triton drains in-flight requests), SIGKILL to its whole group after grace_s;
        then any stub left gets SIGTERM, then SIGKILL; then Triton is reaped."""
        process = self._process
        if process is None:
            return
        if not processes.exited_unreaped(process.pid):
            process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + grace_s
            while not processes.exited_unreaped(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not processes.exited_unreaped(process.pid):
                logger.warning("tritonserver ignored SIGINT for %.0f s; killing its process group", grace_s)
                processes.signal_group(process.pid, signal.SIGKILL)
        self.reap()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> TritonProcess:
        self.start()
        try:
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
