"""The operator's policy: scores and list matches -> toxic flag, severity and action.

- `toxic` is true when toxic_score = 1 - score(non_toxic) reaches `toxic_threshold`, or any
  category reaches its own threshold: a message split between insult and threat is still toxic.
- Severity is the highest level reached by any band (overall bands on toxic_score, optional
  per-category bands on a category's score, a blocklist entry's severity), at least "low" when
  toxic; the action is the policy's action for that severity.
- A blocklist match flags its category and forces at least its severity; a message made only of
  allowlisted phrases (and no blocklist match) is allowed whatever the model says. See
  gateway/lists.py for how matching survives obfuscation.

gateway/policy_file.py reads and checks the TOML file (and defines PolicyError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from contract.tensors import NEGATIVE_CATEGORY
from gateway.lists import BLOCKLIST, ListEntry, ListMatch, find_matches, matching_key, only_allowlisted
from gateway.policy_file import DEFAULT_ACTIONS, DEFAULT_BANDS, SEVERITIES, PolicyError, read_policy

__all__ = ["DEFAULT_POLICY_PATH", "Decision", "Evidence", "Policy", "PolicyError", "load_policy"]

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")
LIST_WEIGHT = 1.0  # Evidence.weight of a list match


@dataclass(frozen=True)
class Evidence:
    start: int  # character offsets into the text as sent, [start, end)
    end: int
    category: str
    weight: float
    source: str  # "model", "blocklist" or "allowlist"


@dataclass(frozen=True)
class Decision:
    top_category: str
    toxic: bool
    flagged: tuple[str, ...]  # most likely first; blocklist categories the model missed last
    toxic_score: float = 0.0
    severity: str = "none"
    action: str = "allow"
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Policy:
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.5
    source: str = "built-in"
    toxic_threshold: float = 0.5  # on toxic_score
    bands: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BANDS))  # severity -> lowest score
    category_bands: dict[str, dict[str, float]] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    blocklist: tuple[ListEntry, ...] = ()
    allowlist: tuple[ListEntry, ...] = ()

    def threshold(self, category: str) -> float:
        return self.thresholds.get(category, self.default_threshold)

    def decide(self, scores, categories: list[str], text: str = "") -> Decision:
        """scores: one float per category, in `categories` order (non_toxic first); text: the
        message as sent, for the operator lists (empty: no list matching)."""
        top = max(range(len(categories)), key=lambda i: scores[i])
        toxic_score = 1.0 - float(scores[categories.index(NEGATIVE_CATEGORY)])
        over = [i for i, name in enumerate(categories)
                if name != NEGATIVE_CATEGORY and scores[i] >= self.threshold(name)]
        over.sort(key=lambda i: -scores[i])
        flagged = [categories[i] for i in over]
        levels = [_level(toxic_score, self.bands)]
        levels += [_level(scores[i], self.category_bands[name]) for i, name in enumerate(categories)
                   if name in self.category_bands]
        blocked, allowed = self._list_matches(text)
        for match in blocked:
            levels.append(match.entry.severity)
            if match.entry.category not in flagged:
                flagged.append(match.entry.category)
        toxic = bool(flagged) or toxic_score >= self.toxic_threshold
        if toxic and not flagged:  # toxic overall only: name the most likely toxic category
            flagged.append(max(categories[1:], key=lambda name: scores[categories.index(name)]))
        if allowed and not blocked and only_allowlisted(text, allowed):
            toxic, flagged, levels = False, [], ["none"]
        elif toxic:
            levels.append("low")
        severity = max(levels, key=SEVERITIES.index)
        evidence = tuple(_evidence(m) for m in sorted(blocked + allowed, key=lambda m: (m.start, m.end)))
        return Decision(categories[top], toxic, tuple(flagged), toxic_score, severity, self.actions[severity], evidence)

    def _list_matches(self, text: str) -> tuple[list[ListMatch], list[ListMatch]]:
        if not text or not (self.blocklist or self.allowlist):
            return [], []
        key = matching_key(text)  # normalised once for both lists
        return find_matches(key, self.blocklist), find_matches(key, self.allowlist)

    def named_categories(self) -> set[str]:
        return set(self.thresholds) | set(self.category_bands) | {e.category for e in self.blocklist}

    def check_categories(self, categories: list[str]) -> None:
        """A policy naming a category the model lacks is a mistake worth stopping for."""
        unknown = sorted(self.named_categories() - set(categories))
        if unknown:
            raise PolicyError(
                f"{self.source}: thresholds, bands or blocklist entries for unknown categories {unknown}; "
                f"the model has {', '.join(categories)}"
            )


def _level(score: float, bands: dict[str, float]) -> str:
    """The highest severity whose band starts at or below the score."""
    reached = [level for level, start in bands.items() if score >= start]
    return max(reached, key=SEVERITIES.index, default="none")


def _evidence(match: ListMatch) -> Evidence:
    entry = match.entry
    category = entry.category if entry.source == BLOCKLIST else NEGATIVE_CATEGORY
    return Evidence(match.start, match.end, category, LIST_WEIGHT, entry.source)


def load_policy(path: str | Path = "") -> Policy:
    """Reads and validates a policy file (empty: the shipped default); raises PolicyError."""
    return Policy(**read_policy(Path(path) if path else DEFAULT_POLICY_PATH))
