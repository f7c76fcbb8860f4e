"""A real in-process gateway for fuzzing: the servicer, the error boundary, the request parsers and
the audio decoder as they ship; only the two model calls are stand-ins, so 10,000 cases take
minutes instead of hours.

- The classifier is a fake (uniform scores for every row): the fuzz is of the gRPC layer and its
  input handling, not of Triton.
- Whisper is a fake executor behind the real speech queue: every clip is still decoded by
  asr.decode_audio (PyAV/FFmpeg) and every stream still goes through the real limits and the real
  Silero VAD; the fake only "hears" words in audio with some energy.
Calls are sent as raw bytes (no client-side serializer), so a case can be any byte string.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from contract.pb import moderation_pb2

REPO_DIR = Path(__file__).resolve().parents[1]
SERVICE_PATH = "/" + moderation_pb2.DESCRIPTOR.services_by_name["Moderation"].full_name
UNARY_METHODS = ("ClassifyText", "ClassifyTextBatch", "ClassifyVoice", "GetModelInfo")
STREAM_METHODS = ("StreamVoice",)
# the other services on the public port, by the names the fuzz cases use
OTHER_PATHS = {"Health.Check": "/grpc.health.v1.Health/Check", "Health.Watch": "/grpc.health.v1.Health/Watch",
               "Reflection": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}
CALL_TIMEOUT_S = 30.0  # generous: a slow case is a finding, a client-side timeout is counted apart


class UniformClassifier:
    """The Classifier protocol with equal scores for every category."""

    def __init__(self, version: str, n_labels: int):
        self.version, self.n_labels = version, n_labels

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        return np.full((len(input_ids), self.n_labels), 1.0 / self.n_labels, dtype=np.float32)

    def ready_versions(self):
        return [self.version]

    def is_ready(self, version=""):
        return version in ("", self.version)

    def version_states(self):
        return {self.version: ("READY", "")}

    def load_versions(self, versions):
        pass

    def close(self):
        pass


class EchoWhisper:
    """An asr executor that transcribes any audio with energy as "good game", else nothing; like the
    real one, it fails a clip whose language Whisper does not know."""

    slots = 2

    def run(self, slot, clips):
        from asr import Transcript
        from asr.transcriber import check_language

        out = []
        for audio, language in clips:
            try:
                check_language(language)  # as the real transcriber does first
            except ValueError as err:
                out.append(err)
                continue
            heard = bool(len(audio)) and float(np.sqrt(np.mean(np.square(audio)))) > 0.01
            out.append(Transcript(text="good game" if heard else "", language=language or "en",
                                  duration_s=len(audio) / 16000, speech_detected=heard))
        return out

    def close(self):
        pass


def _serving_version(model_repository: Path) -> tuple[str, int]:
    model_dir = model_repository / "toxicity"
    version = max((p.name for p in model_dir.iterdir() if p.name.isdigit()), key=int)
    labels = (model_dir / version / "labels.txt").read_text(encoding="utf-8").split()
    return version, len(labels)


def start_fuzz_server(model_repository: Path = REPO_DIR / "model_repository", **settings_changes):
    """The gateway with the stand-ins above, started on 127.0.0.1:0 with its model loaded; (gateway, port)."""
    from gateway.server import create_server
    from gateway.settings import Settings
    from gateway.voice import VoicePipeline

    version, n_labels = _serving_version(model_repository)
    settings_changes.setdefault("stream_idle_timeout_s", 5.0)
    settings = Settings(listen_address="127.0.0.1:0", model_repository=str(model_repository), health_poll_s=3600,
                        admin_listen_address="", coalesce_wait_us=0, asr_process=False, **settings_changes)
    voice = VoicePipeline(settings, executor=EchoWhisper())
    gateway, port = create_server(settings, classifier=UniformClassifier(version, n_labels), voice=voice)
    gateway.start()
    deadline = time.monotonic() + 60
    while not gateway.monitor.check_once():
        if time.monotonic() > deadline:
            gateway.stop(0)
            raise RuntimeError("the fuzz gateway never loaded its model")
        time.sleep(0.1)
    return gateway, port


class FuzzClient:
    """Raw-bytes calls to a fuzz gateway on `port`."""

    def __init__(self, port: int):
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self._unary = {m: self.channel.unary_unary(f"{SERVICE_PATH}/{m}") for m in UNARY_METHODS}
        self._unary["Health.Check"] = self.channel.unary_unary(OTHER_PATHS["Health.Check"])
        self._stream = {m: self.channel.stream_stream(f"{SERVICE_PATH}/{m}") for m in STREAM_METHODS}
        self._stream["Reflection"] = self.channel.stream_stream(OTHER_PATHS["Reflection"])
        self._watch = self.channel.unary_stream(OTHER_PATHS["Health.Watch"])

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method: str, payload) -> tuple[str, str]:
        """Sends raw bytes (a list of them for a stream); returns (status code name, details)."""
        try:
            if method == "Health.Watch":  # a stream that stays open: its first answer is the result
                call = self._watch(payload, timeout=CALL_TIMEOUT_S)
                next(call)
                call.cancel()
            elif method in self._stream:
                list(self._stream[method](iter(payload), timeout=CALL_TIMEOUT_S))
            else:
                self._unary[method](payload, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            return err.code().name, err.details() or ""
        return "OK", ""

    def healthy(self) -> bool:
        """A normal call still gets its verdict."""
        request = moderation_pb2.ClassifyTextRequest(text="good game").SerializeToString()
        return self.call("ClassifyText", request)[0] == "OK"

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        self.channel.close()


class FuzzGateway(FuzzClient):
    """The fuzz gateway in this process (for the CI corpus)."""

    def __init__(self, **settings_changes):
        self.gateway, port = start_fuzz_server(**settings_changes)
        super().__init__(port)

    def close(self) -> None:
        super().close()
        self.gateway.stop(0)


class GatewayProcess(FuzzClient):
    """The fuzz gateway in a child process, so its memory is measured apart from hypothesis's and a
    crash of the server (FFmpeg, onnxruntime) shows as a dead process instead of killing the run."""

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_DIR), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen([sys.executable, "-m", "loadtest.fuzz_harness"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("port "):
            self.process.kill()
            raise RuntimeError(f"the fuzz gateway process did not start (exit {self.process.wait()})")
        super().__init__(int(line.split()[1]))

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory_mb(self) -> tuple[float, float]:
        """(resident now, highest resident so far) of the gateway process."""
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
        return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)

    def close(self) -> None:
        super().close()
        if self.process.poll() is None:
            self.process.stdin.close()  # the server's signal to stop
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serve() -> None:
    """Child-process entry: serves until stdin closes."""
    logging.basicConfig(level=logging.WARNING)  # one INFO line per case would be most of the run's cost
    gateway, port = start_fuzz_server()
    print(f"port {port}", flush=True)
    sys.stdin.read()
    gateway.stop(0)


if __name__ == "__main__":
    _serve()
