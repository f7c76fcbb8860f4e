"""StreamVoice's VAD cost: CPU seconds per second of streamed audio, as utterances grow longer.

Issue 15, part 5: the segmenter used to re-concatenate its buffer and re-run Silero over all of
it (up to 15 s) every 0.1 s of new audio, so one long utterance cost quadratic time. The
incremental segmenter (asr.utterances + asr.vad) runs Silero once over each new frame with its
state carried. Both run here on the same espeak-ng speech (no pauses long enough to end an
utterance), cut to 1..15 s and followed by 1 s of silence, fed in chunks as a client sends them.
The old path is a copy kept only in this file, to measure against.

    python -m loadtest.stream_vad_benchmark            # prints a table, writes JSON + PNG
    python -m loadtest.stream_vad_benchmark --chunk-ms 20 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).parent / "results"
SAMPLE_RATE_HZ = 16_000
LENGTHS_S = (1, 2, 5, 10, 15)  # 15: the gateway's longest utterance before a forced cut
MIN_SILENCE_S = 0.3  # as the gateway configures StreamVoice
PAD_S = 0.1
OLD_CHECK_EVERY_S = 0.1  # how often the old path re-ran the VAD
# No commas or full stops: espeak-ng pauses at them, and a pause would end the utterance early.
SPEECH = ("push the middle lane now and keep the shields up nice shot on the sniper you saved the whole team "
          "let us regroup at the base and buy armor before the timer runs out then we rush the tower together "
          "watch the left flank they have two players hiding behind the wall with rockets")


@dataclass
class Row:
    path: str
    utterance_s: float
    chunk_ms: float
    audio_s: float
    cpu_s: float
    cpu_s_per_audio_s: float
    max_chunk_ms: float  # the slowest single feed: what the last chunk of a long utterance waits
    utterances: int


class OldSegmenter:
    """The segmenter before issue 15 (asr/utterances.py at 303b8bc), kept only to measure against."""

    def __init__(self, min_silence_s: float, check_every_s: float, max_utterance_s: float = 15.0,
                 keep_before_s: float = 0.5):
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        options = VadOptions(min_silence_duration_ms=int(min_silence_s * 1000), speech_pad_ms=int(PAD_S * 1000))
        self.detect = lambda audio: [(s["start"], s["end"]) for s in get_speech_timestamps(audio, options)]
        self.min_silence = int(min_silence_s * SAMPLE_RATE_HZ)
        self.check_every = int(check_every_s * SAMPLE_RATE_HZ)
        self.max_utterance = int(max_utterance_s * SAMPLE_RATE_HZ)
        self.keep_before = int(keep_before_s * SAMPLE_RATE_HZ)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._unchecked = 0

    def feed(self, samples: np.ndarray) -> list:
        self._buffer = np.concatenate([self._buffer, samples])
        self._unchecked += len(samples)
        if self._unchecked < self.check_every:
            return []
        self._unchecked = 0
        return self._cut(final=False)

    def finish(self) -> list:
        return self._cut(final=True)

    def _cut(self, final: bool) -> list:
        spans = self.detect(self._buffer) if len(self._buffer) else []
        done, cut_at = [], None
        for start, end in spans:
            if not (final or len(self._buffer) - end >= self.min_silence or end - start >= self.max_utterance):
                break
            done.append(self._buffer[start:end].copy())
            cut_at = end
        if cut_at is not None:
            self._buffer = self._buffer[cut_at:]
        elif not spans and len(self._buffer) > self.keep_before:
            self._buffer = self._buffer[len(self._buffer) - self.keep_before:]
        return done


def new_segmenter():
    from asr.utterances import UtteranceSegmenter
    from asr.vad import StreamingSileroVad

    return UtteranceSegmenter(StreamingSileroVad(), min_silence_s=MIN_SILENCE_S, pad_s=PAD_S)


def old_segmenter():
    return OldSegmenter(MIN_SILENCE_S, OLD_CHECK_EVERY_S)


def speech_of(length_s: float) -> np.ndarray:
    """`length_s` of continuous espeak-ng speech, then 1 s of silence."""
    from loadtest.speech import speak_audio

    spoken = speak_audio(SPEECH)
    spoken = np.trim_zeros(spoken)  # espeak-ng's leading and trailing silence
    need = int(length_s * SAMPLE_RATE_HZ)
    looped = np.tile(spoken, need // len(spoken) + 1)[:need]
    return np.concatenate([looped, np.zeros(SAMPLE_RATE_HZ, dtype=np.float32)])


def measure(path: str, make, audio: np.ndarray, utterance_s: float, chunk_ms: float, repeats: int) -> Row:
    step = int(chunk_ms / 1e3 * SAMPLE_RATE_HZ)
    best = None
    for _ in range(repeats):
        segmenter = make()
        cpu_started, slowest, count = time.process_time(), 0.0, 0
        for offset in range(0, len(audio), step):
            fed = time.perf_counter()
            count += len(segmenter.feed(audio[offset : offset + step]))
            slowest = max(slowest, time.perf_counter() - fed)
        count += len(segmenter.finish())
        cpu_s = time.process_time() - cpu_started
        if best is None or cpu_s < best[0]:
            best = (cpu_s, slowest, count)
    cpu_s, slowest, count = best
    audio_s = len(audio) / SAMPLE_RATE_HZ
    return Row(path, utterance_s, chunk_ms, audio_s, cpu_s, cpu_s / audio_s, slowest * 1e3, count)


def plot(rows: list[Row], path: Path) -> Path:
    from loadtest import plots

    figure, cpu_axis, chunk_axis = plots.panels(2)
    for name, marker in (("old", "o"), ("incremental", "s")):
        mine = [r for r in rows if r.path == name]
        if not mine:
            continue
        lengths = [r.utterance_s for r in mine]
        cpu_axis.plot(lengths, [r.cpu_s_per_audio_s for r in mine], marker=marker, label=name)
        chunk_axis.plot(lengths, [r.max_chunk_ms for r in mine], marker=marker, label=name)
    cpu_axis.set(xlabel="utterance length (s)", ylabel="CPU s per s of streamed audio",
                 title=f"VAD CPU cost ({rows[0].chunk_ms:g} ms chunks)")
    chunk_axis.set(xlabel="utterance length (s)", ylabel="slowest chunk (ms)", title="Worst single chunk")
    return plots.save(figure, path, cpu_axis, chunk_axis)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.stream_vad_benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="chunk size a client sends")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point; the least CPU is kept")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS_S)), help="utterance lengths, seconds")
    parser.add_argument("--skip-old", action="store_true", help="measure only the incremental path")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "stream_vad_benchmark")
    args = parser.parse_args(argv)
    lengths = [float(x) for x in args.lengths.split(",") if x]
    paths = [("incremental", new_segmenter)] + ([] if args.skip_old else [("old", old_segmenter)])
    new_segmenter().feed(np.zeros(SAMPLE_RATE_HZ, dtype=np.float32))  # load the ONNX model outside the timing
    rows = []
    print(f"{'path':<12} {'utterance_s':>11} {'cpu_s':>8} {'cpu_s/audio_s':>14} {'max_chunk_ms':>13} {'utterances':>10}")
    for length_s in lengths:
        audio = speech_of(length_s)
        for name, make in paths:
            row = measure(name, make, audio, length_s, args.chunk_ms, args.repeats)
            rows.append(row)
            print(f"{row.path:<12} {row.utterance_s:>11g} {row.cpu_s:>8.3f} {row.cpu_s_per_audio_s:>14.4f} "
                  f"{row.max_chunk_ms:>13.1f} {row.utterances:>10d}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shown = sys.argv[1:] if argv is None else argv
    report = {"command": " ".join(["python -m loadtest.stream_vad_benchmark", *shown]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or
              platform.machine(), "chunk_ms": args.chunk_ms, "repeats": args.repeats,
              "rows": [asdict(r) for r in rows]}
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png_path = plot(rows, args.out.with_suffix(".png"))
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
