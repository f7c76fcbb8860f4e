"""`python -m training.normalization_speed`: microseconds per message of each text normalisation.

    python -m training.normalization_speed --data-dir ../shared/data --file conda_val.csv

The gateway normalises every message before tokenising it, so a scheme must stay cheap. Times
each scheme (and the game scheme with offsets) over the file's texts, best of --repeats passes,
single thread; prints numbers only, never texts.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from contract.normalization import SCHEMES, normalizer, offset_normalizer

SEPARATOR = " [SEPA] "  # CONDA's line join; the gateway sees those lines as one message with newlines


def read_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["text"].replace(SEPARATOR, "\n") for row in csv.DictReader(handle)]


def time_per_message_us(function, texts: list[str], repeats: int) -> float:
    """Best-of-`repeats` mean microseconds per text."""
    function("warm up")  # the game scheme builds its confusables table on first use
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for text in texts:
            function(text)
        best_s = min(best_s, time.perf_counter() - started)
    return 1e6 * best_s / max(len(texts), 1)


def main(argv=None) -> None:
    from training.data import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="python -m training.normalization_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--file", default="conda_val.csv")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    texts = read_texts(Path(args.data_dir) / args.file)
    timings = {scheme: time_per_message_us(normalizer(scheme), texts, args.repeats) for scheme in SCHEMES}
    timings["game+offsets"] = time_per_message_us(offset_normalizer("game"), texts, args.repeats)
    changed = sum(normalizer("game")(text) != text for text in texts)
    result = {"file": args.file, "messages": len(texts), "mean_chars": round(sum(map(len, texts)) / max(len(texts), 1), 1),
              "us_per_message": {name: round(value, 1) for name, value in timings.items()},
              "changed_by_game": changed}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
