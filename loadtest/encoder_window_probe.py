"""Where the time of one short clip goes in faster-whisper, and what a shorter encoder window costs.

    python -m loadtest.encoder_window_probe

Whisper's encoder always sees a 30 s window (3,000 mel frames): a 5 s clip is padded with 25 s
of silence. CTranslate2 accepts shorter inputs, so this measures the packaged tiny.en (int8, 2
threads) on an espeak-ng clip of about 5 s: the full transcription, the feature extraction, and the
encoder alone at 3,000, 1,000 and 600 frames. Writes loadtest/results/encoder_window.json.
It measures cost only; whether transcripts stay as good with a short window is not checked here.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results") / "encoder_window.json"
SENTENCE = "shut up you stupid idiot, your team is trash and you should just uninstall the game"
REPEATS = 5


def _median_ms(run, repeats: int = REPEATS) -> float:
    run()  # warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def main() -> None:
    import ctranslate2

    from asr import TranscriberOptions, create_transcriber, decode_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), SENTENCE], check=True, capture_output=True)
        audio = decode_audio(wav.read_bytes())
    transcriber = create_transcriber(TranscriberOptions())
    model = transcriber._model  # the faster_whisper.WhisperModel behind our backend
    features = model.feature_extractor(audio)
    report = {"clip_s": round(len(audio) / 16000, 2), "model": "tiny.en int8, 2 threads",
              "transcribe_ms": _median_ms(lambda: transcriber.transcribe(audio)),
              "features_ms": _median_ms(lambda: model.feature_extractor(audio)),
              "clip_frames": int(features.shape[1]), "encoder_ms": {}}
    for frames in (3000, 1000, 600):
        window = np.zeros((features.shape[0], frames), dtype=np.float32)
        used = min(frames, features.shape[1])
        window[:, :used] = features[:, :used]
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(window[None]))
        report["encoder_ms"][frames] = _median_ms(lambda v=view: model.model.encode(v))
    for key in ("transcribe_ms", "features_ms"):
        print(f"{key}: {report[key]:.1f}")
    for frames, ms in report["encoder_ms"].items():
        print(f"encoder on {frames} frames: {ms:.1f} ms")
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
