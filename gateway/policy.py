"""The operator's policy: per-category thresholds that turn scores into a verdict."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from contract.tensors import NEGATIVE_CATEGORY

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")


class PolicyError(ValueError):
    """The policy file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Decision:
    top_category: str
    toxic: bool
    flagged: tuple[str, ...]  # most likely first


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.5
    source: str = "built-in"

    def threshold(self, category: str) -> float:
        return self.thresholds.get(category, self.default_threshold)

    def decide(self, scores, categories: list[str]) -> Decision:
        """scores: one float per category, in `categories` order (non_toxic first)."""
        top = max(range(len(categories)), key=lambda i: scores[i])
        over = [
            i for i, name in enumerate(categories)
            if name != NEGATIVE_CATEGORY and scores[i] >= self.threshold(name)
        ]
        over.sort(key=lambda i: -scores[i])
        flagged = tuple(categories[i] for i in over)
        return Decision(categories[top], bool(flagged), flagged)

    def check_categories(self, categories: list[str]) -> None:
        """A policy naming a category the model lacks is a mistake worth stopping for."""
        unknown = sorted(set(self.thresholds) - set(categories))
        if unknown:
            raise PolicyError(
                f"{self.source}: thresholds for unknown categories {unknown}; "
                f"the model has {', '.join(categories)}"
            )


def load_policy(path: str | Path = "") -> Policy:
    path = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyError(f"{path}: cannot read the policy file: {err}") from None
    default = _threshold(path, "default_threshold", raw.get("default_threshold", 0.5))
    table = raw.get("thresholds", {})
    if not isinstance(table, dict):
        raise PolicyError(f"{path}: [thresholds] must be a table of category = number")
    if NEGATIVE_CATEGORY in table:
        raise PolicyError(f"{path}: {NEGATIVE_CATEGORY!r} cannot have a threshold (it is never flagged)")
    thresholds = {name: _threshold(path, name, value) for name, value in table.items()}
    return Policy(thresholds, default, str(path))


def _threshold(path: Path, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise PolicyError(f"{path}: threshold {name!r} must be a number in (0, 1], got {value!r}")
    return float(value)
