"""The operator's category list and the per-source label mappings, read from one TOML file.

A source label maps to a *set* of categories: one for an exact label, several where the source
cannot tell them apart (a partial label), none where the row is unusable. See
`default_categories.toml` for the shipped mapping and the reasons behind it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

NEGATIVE_CATEGORY = "non_toxic"  # the first category of every model: "nothing to flag"
DEFAULT_CATEGORIES_PATH = Path(__file__).with_name("default_categories.toml")
SOURCE_FORMATS = ("single", "multilabel", "categories")


class CategoryFileError(ValueError):
    """The categories/mapping file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class SourceMapping:
    name: str
    file_prefix: str
    format: str
    # single: source label -> allowed categories; multilabel: column -> allowed categories
    labels: dict[str, frozenset[str]] = field(default_factory=dict)
    priority: tuple[str, ...] = ()  # multilabel: columns that decide the primary category
    generic: tuple[str, ...] = ()  # multilabel: columns that count only when no other column is on
    none_label: frozenset[str] = frozenset()  # multilabel: allowed set when every column is 0
    max_train_rows: dict[str, int] = field(default_factory=dict)  # per source label, train only
    line_separator: str = ""  # how the source joins one player's consecutive lines; read as a newline


@dataclass(frozen=True)
class Categories:
    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    sources: dict[str, SourceMapping]

    def index(self, name: str) -> int:
        return self.names.index(name)

    @property
    def toxic_names(self) -> tuple[str, ...]:
        return self.names[1:]


def load_categories(path: str | Path = DEFAULT_CATEGORIES_PATH) -> Categories:
    """Reads and validates a categories file. Raises CategoryFileError naming what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CategoryFileError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise CategoryFileError(f"{path}: not valid TOML: {err}") from None
    names, descriptions = _parse_category_list(path, raw.get("category"))
    sources = {
        name: _parse_source(path, name, entry, set(names))
        for name, entry in (raw.get("sources") or {}).items()
    }
    return Categories(tuple(names), tuple(descriptions), sources)


def _parse_category_list(path: Path, entries) -> tuple[list[str], list[str]]:
    if not entries:
        raise CategoryFileError(f"{path}: no [[category]] entries")
    names = [str(entry.get("name", "")).strip() for entry in entries]
    if names[0] != NEGATIVE_CATEGORY:
        raise CategoryFileError(
            f"{path}: the first category must be {NEGATIVE_CATEGORY!r}, got {names[0]!r}"
        )
    for position, name in enumerate(names, start=1):
        if not name or not name.replace("_", "").isalnum():
            raise CategoryFileError(
                f"{path}: category #{position} has an invalid name {name!r} "
                "(use letters, digits and underscores)"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CategoryFileError(f"{path}: duplicate categories: {', '.join(duplicates)}")
    if len(names) < 2:
        raise CategoryFileError(f"{path}: need {NEGATIVE_CATEGORY!r} and at least one more")
    return names, [str(entry.get("description", "")) for entry in entries]


def _parse_source(path: Path, name: str, entry: dict, known: set[str]) -> SourceMapping:
    where = f"{path}: [sources.{name}]"
    fmt = entry.get("format")
    if fmt not in SOURCE_FORMATS:
        raise CategoryFileError(f"{where}: format must be one of {SOURCE_FORMATS}, got {fmt!r}")
    table = entry.get("columns" if fmt == "multilabel" else "labels") or {}
    labels = {
        label: _category_set(f"{where} label {label!r}", targets, known)
        for label, targets in table.items()
    }
    if fmt != "categories" and not labels:
        raise CategoryFileError(f"{where}: maps no labels")
    priority, generic = (_mapped_columns(where, entry, key, labels) for key in ("priority", "generic"))
    return SourceMapping(
        name=name,
        file_prefix=str(entry.get("file_prefix", name)),
        format=fmt,
        labels=labels,
        priority=priority,
        generic=generic,
        none_label=_category_set(f"{where} none", entry.get("none", []), known),
        max_train_rows={str(k): int(v) for k, v in (entry.get("max_train_rows") or {}).items()},
        line_separator=str(entry.get("line_separator", "")),
    )


def _mapped_columns(where: str, entry: dict, key: str, labels: dict) -> tuple[str, ...]:
    columns = tuple(entry.get(key, ()))
    unknown = [column for column in columns if column not in labels]
    if unknown:
        raise CategoryFileError(f"{where}: {key} names unmapped columns {unknown}")
    return columns


def _category_set(where: str, targets, known: set[str]) -> frozenset[str]:
    if not isinstance(targets, list):
        raise CategoryFileError(f"{where}: expected a list of categories, got {targets!r}")
    unknown = [target for target in targets if target not in known]
    if unknown:
        raise CategoryFileError(
            f"{where}: unknown categories {unknown}; known: {', '.join(sorted(known))}"
        )
    return frozenset(targets)
