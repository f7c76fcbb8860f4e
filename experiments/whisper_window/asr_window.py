"""What a shorter Whisper encoder window costs in transcript quality, and what it saves in time.

    python -m experiments.whisper_window.asr_window                 # about 3 minutes on 2 cores
    python -m experiments.whisper_window.asr_window --windows 30,10

Whisper pads every clip to a 30 s window, and the encoder's cost grows with the window
(an encoder-window probe, docs/decisions/0006-whisper-encoder-window.md). `TranscriberOptions.encoder_window_s` encodes only the clip plus
1 s, at least that many seconds. This speaks a set of game-chat sentences with espeak-ng (two
voices), transcribes each with tiny.en (int8, greedy, 1 thread as the gateway runs it) at every
window, and reports:
- word error rate (WER) against the sentence spoken, and how many transcripts differ from the
  30 s window's;
- recall of the key words a moderator acts on ("idiot", "kill", "trash", ...);
- median and slowest transcription time per clip (a runaway decode shows in the slowest), and the
  median for the ~5 s clips alone.
Writes asr_window.{md,json} and asr_window.png into results/ beside this file (--out-dir to change). No transcript is printed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

from asr import TranscriberOptions, create_transcriber
from loadtest import plots
from loadtest.speech import speak_audio

RESULTS_DIR = Path(__file__).with_name("results")
VOICES = ("en-us", "en")
# (sentence, key words that must survive for the verdict to be right)
SENTENCES = (
    ("shut up you stupid idiot, your team is trash and you should just uninstall the game", ("idiot", "trash")),
    ("good game everyone, that was a really fun match", ()),
    ("I will kill you", ("kill",)),
    ("nice shot", ()),
    ("can someone cover the left flank while I grab the objective, we have about two minutes left on the "
     "clock and the other team is pushing hard through the middle", ()),
    ("you are the worst player I have ever seen, go back to the tutorial you absolute moron", ("worst", "moron")),
    ("thanks for the heal", ()),
    ("meet me at the bridge after this round and bring some ammo", ()),
    ("you are so trash at this game, delete your account", ("trash", "delete")),
    ("I know where you live and I am going to find you", ("live", "find")),
    ("push middle, they only have two players left", ()),
    ("what an idiot, he walked straight into the fire", ("idiot",)),
    ("well played, see you next round", ()),
    ("stop feeding, you stupid noob, you keep dying on purpose", ("stupid", "noob")),
    ("I am going to kill every single one of you after this match", ("kill",)),
    ("does anyone want to group up for the raid tonight at eight", ()),
    ("my internet is lagging, give me a second to reconnect", ()),
    ("report this loser, he is cheating and griefing the whole team", ("loser", "cheating")),
    ("drop the flag at the base and defend it until the timer runs out", ()),
    ("nobody wants you here, just quit the game and never come back", ("quit",)),
)
SENTENCE_5S = 0  # the ~5 s sentence the voice benchmark uses


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def speak_all(folder: Path) -> list[dict]:
    clips = []
    for voice in VOICES:
        for index, (sentence, key_words) in enumerate(SENTENCES):
            clips.append({"index": index, "voice": voice, "sentence": sentence, "key_words": key_words,
                          "audio": speak_audio(sentence, voice)})
    return clips


def run_window(window_s: float, clips: list[dict], repeats: int, threads: int) -> dict:
    transcriber = create_transcriber(TranscriberOptions(encoder_window_s=window_s, cpu_threads=threads))
    errors = reference_words = keys_found = keys_total = 0
    times_ms, times_5s_ms, texts = [], [], []
    try:
        for clip in clips:
            text = transcriber.transcribe(clip["audio"]).text  # warm-up; the timed runs give the same text
            for _ in range(repeats):
                started = time.perf_counter()
                text = transcriber.transcribe(clip["audio"]).text
                elapsed_ms = (time.perf_counter() - started) * 1e3
                times_ms.append(elapsed_ms)
                if clip["index"] == SENTENCE_5S:
                    times_5s_ms.append(elapsed_ms)
            texts.append(text)
            reference, hypothesis = words(clip["sentence"]), words(text)
            errors += word_errors(reference, hypothesis)
            reference_words += len(reference)
            keys_total += len(clip["key_words"])
            keys_found += sum(key in hypothesis for key in clip["key_words"])
    finally:
        transcriber.close()
    return {"window_s": window_s, "wer": errors / reference_words, "key_word_recall": keys_found / keys_total,
            "median_ms": statistics.median(times_ms), "max_ms": max(times_ms), "median_5s_clip_ms": statistics.median(times_5s_ms),
            "texts": texts}


def summarise(runs: list[dict], clips: list[dict], threads: int) -> dict:
    baseline = next((run["texts"] for run in runs if run["window_s"] == 30.0), None)
    rows = []
    for run in runs:
        row = {key: value for key, value in run.items() if key != "texts"}
        if baseline is not None:
            row["differs_from_30s"] = sum(words(a) != words(b) for a, b in zip(run["texts"], baseline, strict=True))
        rows.append(row)
    return {"model": f"tiny.en int8, beam 1, {threads} thread(s), VAD", "clips": len(clips), "voices": list(VOICES),
            "clip_s": {"min": round(min(len(c["audio"]) for c in clips) / 16000, 1),
                       "max": round(max(len(c["audio"]) for c in clips) / 16000, 1)},
            "runs": rows}


def write_markdown(summary: dict, path: Path) -> None:
    lines = [
        "# Whisper encoder window: quality against time",
        "",
        f"`python -m experiments.whisper_window.asr_window`: {summary['model']}; {summary['clips']} espeak-ng clips "
        f"({summary['clip_s']['min']}-{summary['clip_s']['max']} s, voices {', '.join(summary['voices'])}).",
        "",
        "| encoder window | WER vs spoken text | key-word recall | transcripts unlike 30 s | median ms per clip "
        "| slowest clip ms | ~5 s clip ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["runs"]:
        lines.append(f"| {row['window_s']:g} s | {row['wer']:.3f} | {row['key_word_recall']:.2f} | "
                     f"{row.get('differs_from_30s', '-')} | {row['median_ms']:.0f} | {row['max_ms']:.0f} | "
                     f"{row['median_5s_clip_ms']:.0f} |")
    lines += ["", "A slowest clip many times the median is a runaway decode: Whisper repeating itself until "
              "its temperature fallback gives up. The gateway's default window is the smallest without one."]
    path.write_text("\n".join(lines) + "\n")


def plot(summary: dict, path: Path) -> None:
    rows = sorted(summary["runs"], key=lambda row: row["window_s"])
    windows = [row["window_s"] for row in rows]
    figure, time_axis = plots.panels(1, (6.5, 4))
    time_axis.plot(windows, [row["median_5s_clip_ms"] for row in rows], "o-", color="tab:blue", label="~5 s clip, ms")
    time_axis.set_xlabel("encoder window (s)")
    time_axis.set_ylabel("transcription ms (median)", color="tab:blue")
    wer_axis = time_axis.twinx()
    wer_axis.plot(windows, [row["wer"] for row in rows], "s--", color="tab:red", label="WER")
    wer_axis.set_ylabel("word error rate", color="tab:red")
    wer_axis.set_ylim(bottom=0)
    time_axis.set_title("Whisper tiny.en int8: encoder window vs time and WER")
    plots.save(figure, path, time_axis, wer_axis)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", default="30,15,10,7", help="encoder windows in seconds, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, choices=range(1, 11), metavar="1..10",
                        help="timed transcriptions per clip")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per transcription")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    windows = [float(value) for value in args.windows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        clips = speak_all(Path(tmp))
    runs = []
    for window_s in windows:
        run = run_window(window_s, clips, args.repeats, args.threads)
        runs.append(run)
        print(f"window {window_s:g} s: WER {run['wer']:.3f}, key words {run['key_word_recall']:.2f}, "
              f"median {run['median_ms']:.0f} ms, slowest {run['max_ms']:.0f} ms, 5 s clip {run['median_5s_clip_ms']:.0f} ms", flush=True)
    summary = summarise(runs, clips, args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "asr_window.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_markdown(summary, args.out_dir / "asr_window.md")
    plot(summary, args.out_dir / "asr_window.png")
    print(f"written to {args.out_dir}/asr_window.{{md,json,png}}")


if __name__ == "__main__":
    main()
