"""Reading a policy TOML file, checking every entry before anything is swapped in.

Every mistake raises PolicyError naming the file and the entry, so a reload (admin ReloadPolicy or
SIGHUP) can refuse the file and keep the policy in force. Unknown keys are errors too: a typo such
as `toxic_treshold` would otherwise leave the default silently in place.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from contract.tensors import NEGATIVE_CATEGORY
from gateway.lists import ALLOWLIST, BLOCKLIST, compile_entry

SEVERITIES = ("none", "low", "medium", "high")  # in increasing order
ACTIONS = ("allow", "review", "block")
DEFAULT_ACTIONS = {"none": "allow", "low": "review", "medium": "review", "high": "block"}
DEFAULT_BANDS = {"low": 0.5, "medium": 0.75, "high": 0.9}  # on toxic_score
TOP_LEVEL_KEYS = ("default_threshold", "toxic_threshold", "thresholds", "severity", "category_severity",
                  "actions", "blocklist", "allowlist")
BAND_LEVELS = SEVERITIES[1:]  # "none" is where no band is reached


class PolicyError(ValueError):
    """The policy file is malformed; the message names the file and the entry."""


def read_policy(path: Path) -> dict:
    """The keyword arguments of gateway.policy.Policy, every value checked."""
    raw = _read_toml(path)
    where = str(path)
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise PolicyError(f"{where}: unknown keys {unknown}; known: {', '.join(TOP_LEVEL_KEYS)}")
    table = _table(where, raw, "thresholds")
    if NEGATIVE_CATEGORY in table:
        raise PolicyError(f"{where}: {NEGATIVE_CATEGORY!r} cannot have a threshold (it is never flagged)")
    category_bands = _table(where, raw, "category_severity")
    if NEGATIVE_CATEGORY in category_bands:
        raise PolicyError(f"{where}: {NEGATIVE_CATEGORY!r} cannot have severity bands")
    return dict(
        thresholds={name: _fraction(where, f"threshold {name!r}", value) for name, value in table.items()},
        default_threshold=_fraction(where, "threshold 'default_threshold'", raw.get("default_threshold", 0.5)),
        source=where,
        toxic_threshold=_fraction(where, "threshold 'toxic_threshold'", raw.get("toxic_threshold", 0.5)),
        bands=_bands(where, "[severity]", raw["severity"]) if "severity" in raw else dict(DEFAULT_BANDS),
        category_bands={name: _bands(where, f"[category_severity.{name}]", bands)
                        for name, bands in category_bands.items()},
        actions=_actions(where, _table(where, raw, "actions")),
        blocklist=_blocklist(where, raw.get("blocklist", [])),
        allowlist=_allowlist(where, _table(where, raw, "allowlist")),
    )


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(f"{path}: cannot read the policy file: {err}") from None


def _table(where: str, raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: [{name}] must be a table")
    return value


def _fraction(where: str, what: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise PolicyError(f"{where}: {what} must be a number in (0, 1], got {value!r}")
    return float(value)


def _bands(where: str, what: str, bands) -> dict[str, float]:
    """Severity -> lowest score; levels may be left out, those given must increase."""
    if not isinstance(bands, dict):
        raise PolicyError(f"{where}: {what} must be a table of low/medium/high = number")
    unknown = sorted(set(bands) - set(BAND_LEVELS))
    if unknown:
        raise PolicyError(f"{where}: {what} has unknown severities {unknown}; known: {', '.join(BAND_LEVELS)}")
    result = {level: _fraction(where, f"{what} {level}", bands[level]) for level in BAND_LEVELS if level in bands}
    starts = list(result.values())
    if any(a >= b for a, b in zip(starts, starts[1:])):
        raise PolicyError(f"{where}: {what} bands must increase from low to high, got {result}")
    return result


def _actions(where: str, table: dict) -> dict[str, str]:
    unknown = sorted(set(table) - set(SEVERITIES))
    if unknown:
        raise PolicyError(f"{where}: [actions] has unknown severities {unknown}; known: {', '.join(SEVERITIES)}")
    actions = {**DEFAULT_ACTIONS, **table}
    for severity, action in actions.items():
        if action not in ACTIONS:
            raise PolicyError(f"{where}: [actions] {severity} = {action!r} is not one of {', '.join(ACTIONS)}")
    return actions


def _blocklist(where: str, entries) -> tuple:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise PolicyError(f"{where}: blocklist must be an array of tables ([[blocklist]])")
    compiled = []
    for index, entry in enumerate(entries):
        what = f"[[blocklist]] #{index + 1}"
        unknown = sorted(set(entry) - {"term", "pattern", "category", "severity"})
        if unknown:
            raise PolicyError(f"{where}: {what} has unknown keys {unknown}")
        if ("term" in entry) == ("pattern" in entry):
            raise PolicyError(f"{where}: {what} needs exactly one of term and pattern")
        text = entry.get("term", entry.get("pattern"))
        category, severity = entry.get("category"), entry.get("severity")
        if not isinstance(text, str) or not isinstance(category, str) or not category:
            raise PolicyError(f"{where}: {what} needs a string term or pattern and a category")
        if category == NEGATIVE_CATEGORY:
            raise PolicyError(f"{where}: {what} cannot block into {NEGATIVE_CATEGORY!r}")
        if severity not in BAND_LEVELS:
            raise PolicyError(f"{where}: {what} ({text!r}) severity must be one of {', '.join(BAND_LEVELS)}, "
                              f"got {severity!r}")
        compiled.append(_compile(where, what, BLOCKLIST, text, pattern="pattern" in entry,
                                 category=category, severity=severity))
    return tuple(compiled)


def _allowlist(where: str, table: dict) -> tuple:
    unknown = sorted(set(table) - {"phrases"})
    if unknown:
        raise PolicyError(f"{where}: [allowlist] has unknown keys {unknown} (known: phrases)")
    phrases = table.get("phrases", [])
    if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
        raise PolicyError(f"{where}: [allowlist] phrases must be a list of strings")
    return tuple(_compile(where, f"[allowlist] phrase {p!r}", ALLOWLIST, p) for p in phrases)


def _compile(where: str, what: str, source: str, text: str, **options):
    try:
        return compile_entry(source, text, **options)
    except (ValueError, re.error) as err:
        raise PolicyError(f"{where}: {what} {text!r} cannot be used: {err}") from None
