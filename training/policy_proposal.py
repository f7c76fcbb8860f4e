"""The whole gateway policy file proposed from validation scores (`--propose-thresholds`).

The gateway's `toxic` flag is "toxic_score >= toxic_threshold, or any category >= its own
threshold" (toxic_score = 1 - score(non_toxic)). Per-category thresholds come from
training.thresholds (a target precision); the overall threshold is then chosen for the served
flag as a whole:

- objective: binary macro-F1 of the served flag computed per source (sources with both toxic and
  clean rows: on an all-toxic set macro-F1 is degenerate), then averaged with weights,
  the game-chat source (`conda`) weighted `game_chat_weight` (2: game chat is the product's
  domain, yet one source of modest size, so the public sets still hold most of the weight and
  keep one small set from deciding alone). Averaging per source, not pooling, keeps a large
  source (Davidson, Jigsaw) from drowning the others.
- candidates: a grid over toxic_score; the best single threshold (toxic_score alone, no category
  thresholds) on the same objective is reported next to it, and a gap over one point is a warning.

Severity bands: low at the overall threshold; high where toxic_score (above low) reaches
`block_precision` on the rows of known toxicity (pooled), left out when it never does; medium
where it reaches `target_precision`, or halfway between low and high when that is not in between. Actions and the operator lists are not learned: the
actions are the gateway's defaults and the lists are copied from a template policy file.
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.metrics import binary_labels
from training.thresholds import ThresholdProposal, precision_curve, threshold_lines

logger = logging.getLogger(__name__)

GAME_CHAT_SOURCE = "conda"
GRID_STEP = 0.005  # toxic_score candidates for the overall threshold
MACRO_F1_TOLERANCE = 0.01  # the served flag must be within one point of the best single threshold
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "gateway" / "default_policy.toml"
DEFAULT_ACTIONS = {"none": "allow", "low": "review", "medium": "review", "high": "block"}


@dataclass(frozen=True)
class OverallProposal:
    toxic_threshold: float
    objective: float  # weighted per-source macro-F1 of the served flag at toxic_threshold
    best_single_threshold: float
    best_single_objective: float  # the same objective for toxic_score alone at its best threshold
    bands: dict[str, float]
    source_weights: dict[str, float]
    per_source: dict[str, dict] = field(default_factory=dict)  # served flag vs argmax, per source


def served_flags(probs, toxic_threshold: float, category_thresholds: dict[int, float]) -> np.ndarray:
    """What the gateway flags: toxic_score over its threshold, or any category over its own."""
    probs = np.asarray(probs, dtype=np.float64)
    flags = (1.0 - probs[:, 0]) >= toxic_threshold
    for index, threshold in category_thresholds.items():
        flags |= probs[:, index] >= threshold
    return flags


def weighted_macro_f1(truth, predicted, sources, weights: dict[str, float]) -> float:
    """Binary macro-F1 per source, averaged with `weights` (rows of unknown toxicity left out)."""
    total = weight_sum = 0.0
    for source, weight in weights.items():
        keep = (sources == source) & (truth >= 0)
        if keep.any():
            total += weight * _macro_f1(truth[keep], predicted[keep])
            weight_sum += weight
    return total / weight_sum if weight_sum else float("nan")


def propose_overall(probs, masks, names, sources, proposals: list[ThresholdProposal], *,
                    target_precision: float, block_precision: float, game_chat_weight: float) -> OverallProposal:
    probs, sources = np.asarray(probs, dtype=np.float64), np.asarray(sources)
    truth = binary_labels(np.asarray(masks))
    weights = {s: (game_chat_weight if s == GAME_CHAT_SOURCE else 1.0) for s in sorted(set(sources.tolist()))
               if len(np.unique(truth[(sources == s) & (truth >= 0)])) == 2}  # all-toxic: macro-F1 degenerate
    categories = {list(names).index(p.category): p.threshold for p in proposals}
    grid = np.round(np.arange(GRID_STEP, 1.0, GRID_STEP), 6)
    served = [weighted_macro_f1(truth, served_flags(probs, t, categories), sources, weights) for t in grid]
    single = [weighted_macro_f1(truth, served_flags(probs, t, {}), sources, weights) for t in grid]
    best, best_single = _middle_of_best(served), _middle_of_best(single)
    if single[best_single] - served[best] > MACRO_F1_TOLERANCE:
        logger.warning("the served flag's macro-F1 %.3f is more than %.0f point below the best single threshold's "
                       "%.3f: the category thresholds flag too much", served[best], 100 * MACRO_F1_TOLERANCE,
                       single[best_single])
    threshold = float(grid[best])
    bands = _bands(probs, truth, threshold, target_precision, block_precision)
    per_source = _per_source(probs, truth, sources, served_flags(probs, threshold, categories))
    return OverallProposal(threshold, float(served[best]), float(grid[best_single]), float(single[best_single]),
                           bands, weights, per_source)


def _middle_of_best(values: list[float]) -> int:
    """The median grid index among the best: a threshold at the edge of a tie would sit right on
    the scores of the validation rows, and fit new chat less well."""
    values = np.nan_to_num(np.asarray(values), nan=-1.0)
    ties = np.flatnonzero(values >= values.max() - 1e-12)
    return int(ties[len(ties) // 2])


def _macro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Binary macro-F1 (toxic and non_toxic F1 averaged), as sklearn's, without its per-call cost."""
    predicted = predicted.astype(bool)
    positive = truth == 1
    scores = []
    for actual, guess in ((positive, predicted), (~positive, ~predicted)):
        hits, denominator = int((actual & guess).sum()), int(actual.sum() + guess.sum())
        scores.append(2 * hits / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _bands(probs, truth, low: float, target_precision: float, block_precision: float) -> dict[str, float]:
    known = truth >= 0
    thresholds, precisions = precision_curve(1.0 - probs[known, 0], truth[known])

    def reaching(precision: float) -> float | None:
        starts = thresholds[(precisions >= precision) & (thresholds > low)]
        return float(np.ceil(starts.min() * 1000) / 1000) if len(starts) else None

    high = reaching(block_precision)
    if high is None or high > 1.0:
        logger.warning("severity high: no toxic_score above %.3f reaches precision %.2f; band left out",
                       low, block_precision)
        high = None
    medium = reaching(target_precision)
    top = high if high is not None else 1.0
    at_low = precisions[thresholds >= low][-1] if (thresholds >= low).any() else 0.0
    if medium is None or at_low >= target_precision or not low < medium < top:
        medium = round((low + top) / 2, 3)  # reached at low already (or not before high): halfway
    bands = {"low": low, "medium": medium, "high": high}
    return {level: start for level, start in bands.items() if start is not None and (level == "low" or start > low)}


def _per_source(probs, truth, sources, flags) -> dict[str, dict]:
    """Precision and recall of the served flag and of the argmax (top category not non_toxic)."""
    argmax = probs.argmax(axis=1) != 0
    result = {}
    for source in ["all", *sorted(set(sources.tolist()))]:
        keep = (truth >= 0) & ((sources == source) if source != "all" else True)
        result[source] = {"rows": int(keep.sum()), "served": _pr(truth[keep], flags[keep]),
                          "argmax": _pr(truth[keep], argmax[keep])}
    return result


def _pr(truth, predicted) -> dict:
    hits, flagged, positives = int((predicted & (truth == 1)).sum()), int(predicted.sum()), int((truth == 1).sum())
    macro = _macro_f1(truth, predicted) if len(truth) else float("nan")
    return {"precision": hits / flagged if flagged else None, "recall": hits / positives if positives else None,
            "macro_f1": macro}


def format_whole_policy(overall: OverallProposal, proposals: list[ThresholdProposal], *, default_threshold: float,
                        template: Path | None = DEFAULT_TEMPLATE, comment: str = "") -> str:
    """A complete policy file: overall threshold, category thresholds, bands, actions, lists."""
    lists = _template_lists(template)
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += [
        "# Proposed by `moderation-evaluate --propose-thresholds` (see thresholds.json).",
        f"# Served-flag macro-F1 averaged over sources (weights {overall.source_weights}): "
        f"{overall.objective:.3f}; best single toxic_score threshold {overall.best_single_threshold:g}: "
        f"{overall.best_single_objective:.3f}.",
        "",
        f"toxic_threshold = {overall.toxic_threshold!r}",
        f"default_threshold = {default_threshold!r}",
        "",
        "[thresholds]",
    ]
    lines += threshold_lines(proposals)
    lines += ["", "[severity]"] + [f"{level} = {start!r}" for level, start in overall.bands.items()]
    lines += ["", "[actions]"] + [f"{k} = {_string(v)}" for k, v in lists.get("actions", DEFAULT_ACTIONS).items()]
    for entry in lists.get("blocklist", []):
        lines += ["", "[[blocklist]]"] + [f"{k} = {_string(v)}" for k, v in entry.items()]
    phrases = lists.get("allowlist", {}).get("phrases", [])
    lines += ["", "[allowlist]", "phrases = [" + ", ".join(_string(p) for p in phrases) + "]"]
    return "\n".join(lines) + "\n"


def _template_lists(template: Path | None) -> dict:
    """The actions and operator lists of a template policy file; none when it is missing."""
    if template is None or not Path(template).is_file():
        logger.warning("no template policy at %s: the proposed policy has empty lists", template)
        return {}
    raw = tomllib.loads(Path(template).read_text(encoding="utf-8"))
    return {key: raw[key] for key in ("actions", "blocklist", "allowlist") if key in raw}


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
