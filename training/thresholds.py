"""Per-category policy thresholds for a target precision, written as a gateway policy file.

The gateway flags a category when its softmax score is at or over the category's threshold
(`gateway/default_policy.toml`), so each toxic category is tuned one-vs-rest on its own score:

- positives: rows whose label is exactly that category;
- negatives: rows whose label set does not contain it (an exact other category, or a partial
  label such as Davidson `offensive` = {profanity, insult_harassment} when tuning `threat`);
- skipped: partial labels that contain it (OLID `offensive` may or may not be a threat).

The proposal is the smallest threshold whose precision reaches the target, i.e. the one that
keeps the most recall. Operators care about false flags, so where no threshold reaches the
target the category gets the cap 1.0 (flag only at certainty) and a warning.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

THRESHOLD_CAP = 1.0  # the policy's largest allowed threshold: "flag only at certainty"
MIN_THRESHOLD = 1e-6  # the policy needs a threshold > 0
POLICY_DECIMALS = 6  # thresholds are written rounded down to this many decimals when that is exact


@dataclass(frozen=True)
class ThresholdProposal:
    category: str
    threshold: float  # the value written into the policy
    reached: bool  # False: no threshold reaches the target; threshold is the cap
    precision: float | None  # at `threshold` on these rows; None when nothing is flagged
    recall: float  # at `threshold`
    flagged: int  # rows at or over the threshold (positives + negatives)
    positives: int
    negatives: int
    skipped: int  # partial labels containing the category: neither positive nor negative
    best_precision: float | None  # the highest precision any threshold reaches here


def one_vs_rest(allowed_mask: np.ndarray, index: int) -> np.ndarray:
    """1 positive (label exactly this category), 0 negative (label excludes it), -1 skipped."""
    allowed_mask = np.asarray(allowed_mask)
    has = allowed_mask[:, index] > 0
    exact = has & (allowed_mask.sum(axis=1) == 1)
    return np.where(exact, 1, np.where(has, -1, 0))


def propose_thresholds(probs, allowed_mask, names, target_precision: float) -> list[ThresholdProposal]:
    """One proposal per toxic category (every name but the first, non_toxic).

    Args:
        probs: softmax scores [rows, categories], in `names` order.
        allowed_mask: 1 where a row's label allows the category [rows, categories].
        names: category names, non_toxic first.
        target_precision: in (0, 1]; the precision each threshold must reach on these rows.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    probs, allowed_mask = np.asarray(probs, dtype=np.float64), np.asarray(allowed_mask)
    proposals = []
    for index, name in enumerate(names):
        if index == 0:
            continue
        truth = one_vs_rest(allowed_mask, index)
        proposal = _propose_one(name, probs[truth >= 0, index], truth[truth >= 0], target_precision)
        proposal = ThresholdProposal(**{**asdict(proposal), "skipped": int((truth < 0).sum())})
        if not proposal.reached and not proposal.positives:
            logger.warning("%s: no row is labelled exactly %s here; using the cap %.1f", name, name, THRESHOLD_CAP)
        elif not proposal.reached:
            logger.warning(
                "%s: no threshold reaches precision %.2f on %d positives / %d negatives (best %s); "
                "using the cap %.1f, so it is flagged only at certainty",
                name, target_precision, proposal.positives, proposal.negatives,
                "n/a" if proposal.best_precision is None else f"{proposal.best_precision:.3f}", THRESHOLD_CAP,
            )
        proposals.append(proposal)
    return proposals


def _propose_one(name: str, scores: np.ndarray, truth: np.ndarray, target: float) -> ThresholdProposal:
    positives, negatives = int(truth.sum()), int((truth == 0).sum())
    thresholds, precisions = precision_curve(scores, truth)
    reaching = thresholds[precisions >= target] if positives else thresholds[:0]
    reached = len(reaching) > 0
    threshold = _policy_value(float(reaching.min()), scores) if reached else THRESHOLD_CAP
    precision, recall, flagged = _at(scores, truth, threshold)
    best = float(precisions.max()) if len(precisions) else None
    return ThresholdProposal(name, threshold, reached, precision, recall, flagged, positives, negatives, 0, best)


def precision_curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision at every distinct score used as the threshold (flag when score >= it)."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], np.cumsum(truth[order])
    last_of_tie = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    return ranked[last_of_tie], hits[last_of_tie] / (last_of_tie + 1)


def _at(scores: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float | None, float, int]:
    """Precision (None when nothing is flagged), recall and flagged count at score >= threshold."""
    over = scores >= threshold
    flagged, hits, positives = int(over.sum()), int(truth[over].sum()), int(truth.sum())
    precision = hits / flagged if flagged else None
    return precision, (hits / positives if positives else 0.0), flagged


def _policy_value(threshold: float, scores: np.ndarray) -> float:
    """A readable value that flags exactly the same rows: rounded down, unless a score lies in
    between; never below the policy's minimum."""
    rounded = math.floor(threshold * 10**POLICY_DECIMALS) / 10**POLICY_DECIMALS
    if ((scores >= rounded) & (scores < threshold)).any():
        rounded = threshold
    return max(rounded, MIN_THRESHOLD)


def format_policy(proposals: list[ThresholdProposal], *, default_threshold: float, comment: str = "") -> str:
    """TOML in the format of gateway/default_policy.toml (non_toxic never appears)."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += [
        "# Proposed by `moderation-evaluate --propose-thresholds`; per category: precision and",
        "# recall at the threshold on the evaluation rows (see thresholds.json).",
        "",
        f"default_threshold = {default_threshold!r}",
        "",
        "[thresholds]",
    ]
    return "\n".join(lines + threshold_lines(proposals)) + "\n"


def threshold_lines(proposals: list[ThresholdProposal]) -> list[str]:
    """The [thresholds] entries, each with its precision and recall as a comment."""
    lines = []
    for p in proposals:
        precision = "n/a" if p.precision is None else f"{p.precision:.3f}"
        note = "" if p.reached else "  TARGET NOT REACHED: capped"
        lines.append(f"{p.category} = {p.threshold!r}  # precision {precision}, recall {p.recall:.3f}{note}")
    return lines


def write_policy(path: Path, proposals, *, default_threshold: float = 0.5, comment: str = "") -> Path:
    if not 0.0 < default_threshold <= 1.0:
        raise ValueError(f"default threshold must be in (0, 1], got {default_threshold}")
    path = Path(path)
    path.write_text(format_policy(proposals, default_threshold=default_threshold, comment=comment), encoding="utf-8")
    return path


def proposals_to_json(proposals: list[ThresholdProposal], target_precision: float) -> dict:
    return {
        "target_precision": target_precision,
        "categories": {p.category: {k: v for k, v in asdict(p).items() if k != "category"} for p in proposals},
    }
