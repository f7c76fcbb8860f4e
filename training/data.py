"""Labelled CSVs -> examples over the operator's categories.

Texts may contain newlines inside quoted fields, so files are read with the csv module, never
line by line. Every example carries the SET of categories its source label allows (see
categories.py); an exact label is a set of one.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from training.categories import Categories, SourceMapping

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
DEFAULT_DATA_DIR = os.environ.get("MODERATION_DATA_DIR", "../shared/data")


class DataFileError(ValueError):
    """A data file cannot be used; the message names the file and, where known, the line."""


@dataclass(frozen=True)
class Example:
    text: str
    allowed: tuple[int, ...]  # sorted category indices the label allows
    source: str
    context: str = ""  # previous messages of the conversation (--context-messages), else empty

    @property
    def exact(self) -> int | None:
        """The category index when the label names exactly one category, else None."""
        return self.allowed[0] if len(self.allowed) == 1 else None


def allowed_masks(rows: list[Example], num_categories: int):
    """0/1 float32 [rows, categories]: the categories each row's label allows."""
    import numpy as np

    masks = np.zeros((len(rows), num_categories), dtype=np.float32)
    for i, row in enumerate(rows):
        masks[i, list(row.allowed)] = 1.0
    return masks


def load_source_file(path: Path, source: SourceMapping, categories: Categories,
                     contexts: dict[str, str] | None = None) -> list[Example]:
    """Reads one CSV of a source. Rows whose label maps to no category are skipped. `contexts`
    (row `id` -> text, from `previous_messages`) gives each row its conversation context."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if not header:
            raise DataFileError(f"{path}: empty file (no header row)")
        _check_columns(path, source, header)
        examples = []
        for row in reader:
            if None in row.values():  # a short row: csv fills the missing fields with None
                raise DataFileError(f"{path}:{reader.line_num}: expected {len(header)} fields ({', '.join(header)})")
            allowed = _allowed_for_row(path, reader.line_num, row, source, categories)
            if allowed:
                context = contexts.get(row["id"], "") if contexts else ""
                examples.append(Example(message_text(row["text"], source), allowed, source.name, context))
    if not examples and reader.line_num <= 1:
        raise DataFileError(f"{path}: no data rows")
    return examples


def message_text(text: str, source: SourceMapping) -> str:
    """Lines a source joined with a marker become lines of one message, as a client sends them."""
    return text.replace(source.line_separator, "\n").strip() if source.line_separator else text


def _check_columns(path: Path, source: SourceMapping, header: list[str]) -> None:
    needed = ["text"] + (list(source.labels) if source.format == "multilabel" else ["label"])
    missing = [column for column in needed if column not in header]
    if missing:
        raise DataFileError(f"{path}: missing columns {missing}; found {header}")


def _allowed_for_row(path, line, row, source: SourceMapping, categories) -> tuple[int, ...]:
    if source.format == "multilabel":
        names = _multilabel_categories(path, line, row, source)
    elif source.format == "categories":
        label = row["label"].strip()
        if label not in categories.names:
            raise DataFileError(
                f"{path}:{line}: unknown category {label!r}; known: {', '.join(categories.names)}"
            )
        names = frozenset([label])
    else:
        label = row["label"].strip()
        if label not in source.labels:
            raise DataFileError(
                f"{path}:{line}: label {label!r} is not mapped for source {source.name!r}; "
                f"mapped: {', '.join(sorted(source.labels))}"
            )
        names = source.labels[label]
    return tuple(sorted(categories.index(name) for name in names))


def _multilabel_categories(path, line, row, source: SourceMapping) -> frozenset[str]:
    on = []
    for column in source.labels:
        value = row[column].strip()
        if value not in ("0", "1"):
            raise DataFileError(f"{path}:{line}: column {column!r} must be 0 or 1, got {value!r}")
        if value == "1":
            on.append(column)
    if not on:
        return source.none_label
    for column in source.priority:  # the most severe reading decides the primary category
        if column in on:
            return source.labels[column]
    specific = [column for column in on if column not in source.generic] or on
    return frozenset().union(*(source.labels[column] for column in specific))


def multilabel_columns(path: Path, source: SourceMapping) -> dict[str, dict[str, int]]:
    """A multi-label file's raw 0/1 columns by de-duplication key of the text, for measures that
    need the source's own labels rather than the mapped categories (e.g. Jigsaw `obscene`)."""
    columns: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):  # the first row of a text, as deduplicate() keeps it
            columns.setdefault(dedup_key(message_text(row["text"], source)),
                               {column: int(row[column].strip() == "1") for column in source.labels})
    return columns


CONVERSATION_COLUMNS = ("id", "conversation_id", "chat_time", "player_slot")


def previous_messages(rows: list[dict], count: int, source: SourceMapping) -> dict[str, str]:
    """Row id -> the `count` messages before it in its conversation (ordered by `chat_time`),
    oldest first, each tagged SAME or OTHER player: the context a gateway would be sent."""
    conversations = defaultdict(list)
    for row in rows:
        conversations[row["conversation_id"]].append(row)
    context = {}
    for chat in conversations.values():
        chat.sort(key=lambda row: (float(row["chat_time"]), int(row["id"])))
        for i, row in enumerate(chat):
            context[row["id"]] = " ".join(
                ("SAME " if before["player_slot"] == row["player_slot"] else "OTHER ")
                + message_text(before["text"], source)
                for before in chat[max(0, i - count):i])
    return context


def conversation_contexts(data_dir: Path, source: SourceMapping, count: int) -> dict[str, str] | None:
    """Contexts for a source whose files carry conversations (CONDA), built from ALL its split
    files: CONDA splits a match's lines between train and val, and a gateway would see them all.
    Only texts cross splits, never labels. None for a source without those columns."""
    rows = []
    for split in SPLITS:
        path = Path(data_dir) / f"{source.file_prefix}_{split}.csv"
        if path.exists():
            with open(path, encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                if not set(CONVERSATION_COLUMNS) <= set(reader.fieldnames or ()):
                    return None
                rows.extend(reader)
    return previous_messages(rows, count, source) if rows else None


def load_split(data_dir: Path, categories: Categories, split: str, context_messages: int = 0) -> list[Example]:
    """All sources' files for one split that exist in data_dir, de-duplicated. With
    `context_messages`, rows of conversation sources carry their previous messages."""
    examples: list[Example] = []
    for source in categories.sources.values():
        path = Path(data_dir) / f"{source.file_prefix}_{split}.csv"
        if path.exists():
            contexts = conversation_contexts(data_dir, source, context_messages) if context_messages else None
            rows = load_source_file(path, source, categories, contexts)
            if split == "train":
                rows = _cap_rows(rows, source, categories)
            examples.extend(rows)
    return deduplicate(examples)


def load_extra_file(path: Path, categories: Categories) -> list[Example]:
    """A `text,label` CSV of category names (the `own` format), e.g. a studio's labelled lines.

    Returns its rows as source `<file stem>`, which must not be a source of the categories file:
    summaries would merge the two.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: extra training file not found")
    if path.stem in categories.sources:
        raise DataFileError(f"{path}: the name {path.stem!r} is a source of the categories file; rename the file")
    source = SourceMapping(name=path.stem, file_prefix=path.stem, format="categories")
    return load_source_file(path, source, categories)


def _cap_rows(rows: list[Example], source: SourceMapping, categories) -> list[Example]:
    """Sub-samples over-represented source labels (fixed seed) so one source doesn't dominate."""
    for label, cap in source.max_train_rows.items():
        allowed = tuple(sorted(categories.index(n) for n in source.labels[label]))
        matching = [i for i, row in enumerate(rows) if row.allowed == allowed]
        if len(matching) > cap:
            dropped = set(matching) - set(random.Random(f"cap|{source.name}|{label}").sample(matching, cap))
            rows = [row for i, row in enumerate(rows) if i not in dropped]
    return rows


def dedup_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def deduplicate(examples: list[Example], exclude: list[Example] = ()) -> list[Example]:
    """Keeps the first example of each text (whitespace- and case-insensitive); drops any text
    that also occurs in `exclude` (e.g. validation rows, so nothing leaks into training)."""
    seen = {dedup_key(example.text) for example in exclude}
    unique = []
    for example in examples:
        key = dedup_key(example.text)
        if key and key not in seen:
            seen.add(key)
            unique.append(example)
    return unique


def stratified_split(
    examples: list[Example], val_fraction: float = 0.2, seed: int = 13
) -> tuple[list[Example], list[Example]]:
    """A stratified train/val split (by allowed label set and source), as in the reference story."""
    groups: dict[tuple, list[Example]] = defaultdict(list)
    for example in examples:
        groups[(example.source, example.allowed)].append(example)
    train, val = [], []
    rng = random.Random(seed)
    for key in sorted(groups):
        group = groups[key][:]
        rng.shuffle(group)
        n_val = round(len(group) * val_fraction)
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, val


def oversample_rare(
    examples: list[Example], min_rows: int, seed: int = 13, fixed_sources: frozenset[str] = frozenset()
) -> list[Example]:
    """Repeats exact-label examples of categories with fewer than min_rows rows (e.g. threat).

    Rows of `fixed_sources` count toward a category's size but are never repeated: a small
    hand-written file keeps the balance between its harmless and toxic lines.
    """
    counts: Counter = Counter()
    drawable: dict[int, list[Example]] = defaultdict(list)
    for example in examples:
        if example.exact is not None:
            counts[example.exact] += 1
            if example.source not in fixed_sources:
                drawable[example.exact].append(example)
    extra = []
    rng = random.Random(seed)
    for category, rows in drawable.items():
        if rows and counts[category] < min_rows:
            extra.extend(rng.choices(rows, k=min_rows - counts[category]))
    return examples + extra


def summarize(examples: list[Example], categories: Categories) -> dict[str, dict[str, int]]:
    """Counts per source per label ('a|b' for a partial label)."""
    summary: dict[str, Counter] = defaultdict(Counter)
    for example in examples:
        label = "|".join(categories.names[i] for i in example.allowed)
        summary[example.source][label] += 1
    return {source: dict(sorted(counts.items())) for source, counts in sorted(summary.items())}


def balanced_example_weights(examples: list[Example], num_categories: int, max_weight: float = 10.0) -> list[float]:
    """Per-example loss weights that balance the exact-label categories (inverse frequency).

    A category's weight is n_exact / (k * n_c), the "balanced" rule, clipped to max_weight so a
    category with a handful of rows cannot dominate. A partial label gets the mean weight of the
    categories it allows (it is evidence for the set, not for one of them). Weights are scaled to
    average 1 over the examples, so the learning rate means the same as without weighting.
    """
    counts = Counter(example.exact for example in examples if example.exact is not None)
    present = [c for c in range(num_categories) if counts[c]]
    total = sum(counts[c] for c in present)
    per_category = [min(total / (len(present) * counts[c]), max_weight) if counts[c] else 1.0
                    for c in range(num_categories)]
    raw = [sum(per_category[c] for c in example.allowed) / len(example.allowed) for example in examples]
    scale = len(raw) / sum(raw) if raw else 1.0
    return [weight * scale for weight in raw]
