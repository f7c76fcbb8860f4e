"""`python -m training.obfuscate`: a seeded, obfuscated copy of the validation CSVs.

    python -m training.obfuscate --data-dir ../shared/data --out-dir runs/obfuscated-val
    moderation-evaluate --model model_repository/toxicity/2 --data-dir runs/obfuscated-val --normalization game

It measures what issue 14 part 6 asks of the `game` normalisation: how much recall a model loses
when players disguise words. In every row, toxic or clean, a share of the words (`--word-rate`)
gets one disguise an abusive player uses: look-alike letters (Cyrillic, Greek, fullwidth,
mathematical bold), spaced letters, leetspeak, a symbol inside the word, a stretched letter or a
zero-width space. The choice is made by a random generator seeded with (seed, file, row), so the
copy is the same on every run and does not depend on which files are present. Files keep their
columns; only `text` changes, and joins such as CONDA's ` [SEPA] ` are kept. A text repeated in
the files is copied once (its first row), as evaluation de-duplicates the clean files, so the clean
and the obfuscated scores are over the same rows. The copy holds dataset text: write it under runs/
(ignored by git), never commit it. Texts are never printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from training.categories import DEFAULT_CATEGORIES_PATH, SourceMapping, load_categories
from training.data import Example, dedup_key, message_text

DEFAULT_WORD_RATE = 0.5  # share of eligible words disguised in each row
WORD = re.compile(r"[A-Za-z]{2,}")  # eligible: a run of two or more Latin letters
PROTECTED_WORDS = frozenset(["SEPA"])  # CONDA's line-join marker ([SEPA]) stays as it is
# What players type instead of Latin letters (the attacker's side, so written out here).
LOOKALIKES = {"a": "аɑα", "c": "сϲ", "e": "еє", "i": "іι", "o": "оοσ", "p": "рρ", "s": "ѕ", "x": "хχ", "y": "уγ",
              "j": "ј", "h": "һ", "k": "κ", "v": "ν", "u": "υ", "n": "η", "t": "т",
              "A": "АΑ", "B": "ВΒ", "C": "С", "E": "ЕΕ", "H": "НΗ", "I": "ІΙ", "K": "КΚ", "M": "МΜ", "O": "ОΟ",
              "P": "РΡ", "T": "ТΤ", "X": "ХΧ", "Y": "УΥ", "Z": "Ζ", "N": "Ν"}
LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "l": "1|"}
INNER_SYMBOLS = "._~^#"
SPACERS = "  .-_"  # a space twice as likely as the others
ZERO_WIDTH = "\u200b\u200c\u200d\u2060"


def disguise_lookalike(word: str, rng: random.Random) -> str:
    """Some letters through Cyrillic/Greek look-alikes, or the whole word fullwidth or bold."""
    style = rng.random()
    if style < 0.2:
        return "".join(chr(ord(c) + 0xFEE0) for c in word)  # fullwidth forms
    if style < 0.35:
        return "".join(_math_bold(c) for c in word)
    letters = [i for i, c in enumerate(word) if c in LOOKALIKES]
    if not letters:
        return "".join(chr(ord(c) + 0xFEE0) for c in word)
    chosen = set(rng.sample(letters, max(1, len(letters) // 2)))
    return "".join(rng.choice(LOOKALIKES[c]) if i in chosen else c for i, c in enumerate(word))


def _math_bold(char: str) -> str:
    base = 0x1D41A if char.islower() else 0x1D400  # MATHEMATICAL BOLD SMALL A / CAPITAL A
    return chr(base + ord(char.lower()) - ord("a"))


def disguise_spacing(word: str, rng: random.Random) -> str:
    return rng.choice(SPACERS).join(word)


def disguise_leet(word: str, rng: random.Random) -> str:
    letters = [i for i, c in enumerate(word) if c.lower() in LEET]
    if not letters:
        return disguise_repeat(word, rng)
    chosen = set(rng.sample(letters, max(1, (len(letters) + 1) // 2)))
    return "".join(rng.choice(LEET[c.lower()]) if i in chosen else c for i, c in enumerate(word))


def disguise_symbol(word: str, rng: random.Random) -> str:
    at = rng.randrange(1, len(word))
    return word[:at] + rng.choice(INNER_SYMBOLS) + word[at:]


def disguise_repeat(word: str, rng: random.Random) -> str:
    at = rng.randrange(len(word))
    return word[:at] + word[at] * rng.randint(3, 6) + word[at + 1 :]


def disguise_zero_width(word: str, rng: random.Random) -> str:
    at = rng.randrange(1, len(word))
    return word[:at] + rng.choice(ZERO_WIDTH) + word[at:]


DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "lookalike": disguise_lookalike, "spacing": disguise_spacing, "leet": disguise_leet,
    "symbol": disguise_symbol, "repeat": disguise_repeat, "zero_width": disguise_zero_width,
}


def obfuscate_text(text: str, rng: random.Random, word_rate: float, counts: Counter | None = None) -> str:
    """`text` with about `word_rate` of its eligible words disguised, one disguise each."""

    def rewrite(match: re.Match) -> str:
        word = match.group(0)
        if word in PROTECTED_WORDS or rng.random() >= word_rate:
            return word
        name = rng.choice(sorted(DISGUISES))
        if counts is not None:
            counts[name] += 1
        return DISGUISES[name](word, rng)

    return WORD.sub(rewrite, text)


def obfuscated_copies(examples: list[Example], fraction: float, seed: int) -> list[Example]:
    """Disguised copies of a seeded `fraction` of the training examples, toxic and clean alike, so
    the model learns a disguise as noise rather than as a sign of abuse.

    Returns the copies with their originals' labels and sources, in the originals' order.
    """
    rng = random.Random(f"obfuscate|{seed}")
    chosen = rng.sample(range(len(examples)), round(len(examples) * fraction)) if fraction > 0 else []
    return [replace(examples[i], text=obfuscate_text(examples[i].text, rng, DEFAULT_WORD_RATE))
            for i in sorted(chosen)]


def obfuscate_file(source: Path, target: Path, seed: int, word_rate: float, seen: set[str] | None = None,
                   mapping: SourceMapping | None = None) -> Counter:
    """Copies one CSV with its `text` column obfuscated; returns disguises used and rows.

    A row whose text (as evaluation reads it for `mapping`, the file's source) is in `seen` is
    left out, as evaluation leaves it out of the clean file; `seen` gains the file's texts.
    """
    counts: Counter = Counter()
    with open(source, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    if "text" not in fields:
        raise ValueError(f"{source}: no text column")
    seen = set() if seen is None else seen
    kept = []
    for index, row in enumerate(rows):
        key = dedup_key(message_text(row["text"], mapping) if mapping else row["text"])
        if key in seen:  # disguised twice, a repeat would count as two rows
            continue
        seen.add(key)
        rng = random.Random(f"{seed}|{source.name}|{index}")
        row["text"] = obfuscate_text(row["text"], rng, word_rate, counts)
        kept.append(row)
    rows = kept
    counts["rows"] = len(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return counts


def obfuscate_split(data_dir: Path, out_dir: Path, split: str = "val", seed: int = 13,
                    word_rate: float = DEFAULT_WORD_RATE) -> dict:
    """Every `<source>_<split>.csv` of data_dir, obfuscated into out_dir, plus obfuscation.json
    (seed, rate and per-file counts of each disguise; no text)."""
    files = sorted(data_dir.glob(f"*_{split}.csv"))
    if not files:
        raise FileNotFoundError(f"no *_{split}.csv files in {data_dir}")
    mappings = {f"{source.file_prefix}_{split}.csv": source
                for source in load_categories(DEFAULT_CATEGORIES_PATH).sources.values()}
    order = list(mappings)  # evaluation reads the sources in this order; the first copy of a text wins
    files.sort(key=lambda path: (order.index(path.name) if path.name in order else len(order), path.name))
    summary = {"seed": seed, "word_rate": word_rate, "split": split, "source": str(data_dir), "files": {}}
    seen: set[str] = set()
    for path in files:
        counts = obfuscate_file(path, out_dir / path.name, seed, word_rate, seen, mappings.get(path.name))
        summary["files"][path.name] = dict(sorted(counts.items()))
    (out_dir / "obfuscation.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def main(argv=None) -> None:
    from training.data import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="python -m training.obfuscate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--out-dir", default="runs/obfuscated-val")
    parser.add_argument("--split", default="val")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--word-rate", type=float, default=DEFAULT_WORD_RATE, help="share of words disguised")
    args = parser.parse_args(argv)
    if not 0.0 <= args.word_rate <= 1.0:
        parser.error("--word-rate must be in [0, 1]")
    summary = obfuscate_split(Path(args.data_dir), Path(args.out_dir), args.split, args.seed, args.word_rate)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
