"""Voice through the real gateway: ClassifyVoice latency with concurrent callers, and how soon
StreamVoice answers after an utterance ends.

    python -m loadtest.voice_benchmark --callers 4

Clips are spoken by espeak-ng. StreamVoice is fed in real time (100 ms chunks, paced like a
microphone), and the latency of an event is its arrival time minus the wall time at which the
utterance's last sample was sent. Writes loadtest/results/voice_benchmark.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.speech import speak_pcm16

RESULTS_DIR = Path(__file__).with_name("results")
SENTENCES = (
    "shut up you stupid idiot, your team is trash",
    "good game everyone, that was a great match",
    "push mid now and defend the tower please",
)
CHUNK_S = 0.1


def wav_bytes(pcm: bytes, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def clip_of(seconds: float, pcm_sentences: list[bytes], rate: int = 16000) -> bytes:
    """Sentences with 0.4 s pauses, repeated to `seconds`."""
    gap = b"\0\0" * int(0.4 * rate)
    out = b""
    i = 0
    while len(out) < seconds * rate * 2:
        out += pcm_sentences[i % len(pcm_sentences)] + gap
        i += 1
    return out[: int(seconds * rate) * 2]


@dataclass(frozen=True)
class ClipLatency:
    """ClassifyVoice on one clip length from N callers at once."""

    callers: int
    calls: int  # answered
    errors: list[str]  # status code names of the calls that failed
    p50_ms: float
    p99_ms: float
    asr_p50_ms: float  # the gateway's own timing of Whisper (Verdict.asr_ms)
    classify_p50_ms: float  # and of the text classification (Verdict.classify_ms)


@dataclass(frozen=True)
class StreamLatency:
    """StreamVoice fed in real time: how soon each utterance's verdict came after it ended."""

    utterances: int
    events: list[dict]
    p50_after_end_ms: float | None
    max_after_end_ms: float | None


def classify_voice_latency(stub, clip: bytes, callers: int, rounds: int) -> ClipLatency:
    from contract.pb import moderation_pb2

    latencies, errors, asr_ms, classify_ms = [], [], [], []

    def caller() -> None:
        for _ in range(rounds):
            started = time.perf_counter()
            try:
                verdict = stub.ClassifyVoice(moderation_pb2.ClassifyVoiceRequest(audio=clip), timeout=60)
                latencies.append(time.perf_counter() - started)
                asr_ms.append(verdict.asr_ms)
                classify_ms.append(verdict.classify_ms)
            except Exception as err:  # recorded, the benchmark goes on
                errors.append(err.code().name if hasattr(err, "code") else repr(err))

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ms = np.array(latencies) * 1e3
    return ClipLatency(callers=callers, calls=len(latencies), errors=errors, p50_ms=float(np.percentile(ms, 50)),
                       p99_ms=float(np.percentile(ms, 99)), asr_p50_ms=float(np.percentile(asr_ms, 50)),
                       classify_p50_ms=float(np.percentile(classify_ms, 50)))


def stream_latency(stub, pcm: bytes, rate: int = 16000) -> StreamLatency:
    """Streams in real time; per utterance, the verdict's latency after the utterance's end."""
    from contract.pb import moderation_pb2

    step = int(CHUNK_S * rate) * 2
    started = {}

    def chunks():
        t0 = time.perf_counter()
        started["t0"] = t0
        for i, offset in enumerate(range(0, len(pcm), step)):
            delay = t0 + i * CHUNK_S - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield moderation_pb2.AudioChunk(pcm16=pcm[offset : offset + step], sample_rate_hz=rate if i == 0 else 0)

    events = []
    for event in stub.StreamVoice(chunks(), timeout=300):
        arrived = time.perf_counter()
        sent_end = started["t0"] + event.end_s  # the chunk holding end_s left (paced) at about this time
        events.append({"utterance": event.utterance, "end_s": event.end_s, "latency_ms": (arrived - sent_end) * 1e3,
                       "asr_ms": event.asr_ms, "toxic": event.verdict.toxic})
    latencies = [event["latency_ms"] for event in events]
    return StreamLatency(utterances=len(events), events=events,
                         p50_after_end_ms=float(np.percentile(latencies, 50)) if latencies else None,
                         max_after_end_ms=max(latencies) if latencies else None)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.voice_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    parser.add_argument("--asr-workers", type=int, help="Whisper workers (default: the gateway's)")
    parser.add_argument("--asr-threads", type=int, help="threads per transcription (default: the gateway's)")
    parser.add_argument("--asr-window-s", type=float, help="Whisper encoder window (default: the gateway's)")
    parser.add_argument("--asr-batch", type=int, help="clips a worker decodes together (default: the gateway's)")
    args = parser.parse_args(argv)
    overrides = {name: value for name in ("asr_workers", "asr_threads", "asr_window_s", "asr_batch")
                 if (value := getattr(args, name)) is not None}
    report = run(Path(args.model_repository), args.callers, args.rounds, overrides)
    command = " ".join(["python -m loadtest.voice_benchmark", f"--callers {args.callers}"]
                       + [f"--{name.replace('_', '-')} {value}" for name, value in overrides.items()])
    write_report(report, command, Path(args.out_dir))


def run(model_repository: Path, callers: int, rounds: int, overrides: dict) -> dict:
    """Triton and a gateway with voice on, then every clip length at 1 and `callers` callers, then a stream."""
    import grpc

    from contract.pb import moderation_pb2_grpc
    from gateway.server import create_server
    from gateway.settings import Settings
    from gateway.triton_process import TritonProcess

    sentences = [speak_pcm16(s) for s in SENTENCES]
    report: dict = {}
    with TritonProcess(model_repository) as triton:
        settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", triton_url=triton.grpc_url, admin_listen_address="",
                            model_repository=str(model_repository), log_level="WARNING", **overrides)
        report["asr"] = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)
                         if field.name.startswith(("whisper_model", "asr_"))}  # whatever the gateway calls them
        gateway, port = create_server(settings, triton_control_key=triton.control_key)
        gateway.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = moderation_pb2_grpc.ModerationStub(channel)
                for seconds in (3, 5, 15):
                    clip = wav_bytes(clip_of(seconds, sentences))
                    classify_voice_latency(stub, clip, 1, 1)  # warm up
                    for count in sorted({1, callers}):
                        key = f"classify_voice_{seconds}s_{count}callers"
                        report[key] = result = classify_voice_latency(stub, clip, count, rounds)
                        print(f"{key}: p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms (asr p50 "
                              f"{result.asr_p50_ms:.0f}, classify p50 {result.classify_p50_ms:.0f})", flush=True)
                gap = b"\0\0" * int(1.2 * 16000)
                report["stream"] = stream = stream_latency(stub, gap.join(sentences * 2) + gap)
                print(f"stream: {stream.utterances} utterances, verdict p50 {stream.p50_after_end_ms:.0f} ms "
                      f"after the utterance ended (max {stream.max_after_end_ms:.0f} ms)", flush=True)
        finally:
            gateway.stop(0)
    return report


def write_report(report: dict, command: str, out: Path) -> None:
    """voice_benchmark.{json,md}: the settings used, a ClipLatency per measure and the StreamLatency."""
    out.mkdir(parents=True, exist_ok=True)
    as_json = {key: value if key == "asr" else dataclasses.asdict(value) for key, value in report.items()}
    (out / "voice_benchmark.json").write_text(json.dumps(as_json, indent=2) + "\n")
    settings_used = ", ".join(f"{name}={value}" for name, value in report["asr"].items())
    lines = ["# Voice through the gateway", "", f"Command: `{command}` ({settings_used}).", "",
             "| measure | p50 ms | p99 ms | asr_ms p50 | classify_ms p50 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {key} | {value.p50_ms:.0f} | {value.p99_ms:.0f} | {value.asr_p50_ms:.0f} | {value.classify_p50_ms:.0f} |"
              for key, value in report.items() if isinstance(value, ClipLatency)]
    stream = report["stream"]
    lines += ["", f"StreamVoice: {stream.utterances} utterances; verdict p50 {stream.p50_after_end_ms:.0f} ms after "
              f"the utterance ended (max {stream.max_after_end_ms:.0f} ms)."]
    (out / "voice_benchmark.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
