"""Metrics for a single-stage softmax classifier whose labels may be partial (sets of categories).

- Multi-class metrics use rows whose label is exactly one category.
- Binary toxic-vs-non_toxic metrics use every row whose toxicity is known (an exact non_toxic
  row, or any label set that excludes non_toxic); toxic score = 1 - score(non_toxic), and a row
  is predicted toxic when its top category is not non_toxic (the reference story's collapse).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score


def exact_labels(allowed_mask: np.ndarray) -> np.ndarray:
    """Category index per row, or -1 where the label allows several categories."""
    exact = allowed_mask.argmax(axis=1)
    exact[allowed_mask.sum(axis=1) != 1] = -1
    return exact


def binary_labels(allowed_mask: np.ndarray) -> np.ndarray:
    """1 toxic, 0 non_toxic, -1 unknown (a set holding non_toxic and something else)."""
    is_clean = (allowed_mask[:, 0] == 1) & (allowed_mask.sum(axis=1) == 1)
    is_toxic = allowed_mask[:, 0] == 0
    return np.where(is_clean, 0, np.where(is_toxic, 1, -1))


def multiclass_metrics(probs: np.ndarray, allowed_mask: np.ndarray, names) -> dict:
    exact = exact_labels(allowed_mask)
    keep = exact >= 0
    y_true, y_pred = exact[keep], probs[keep].argmax(axis=1)
    labels = list(range(len(names)))
    if not keep.any():  # no exact-label rows in this group: nothing to measure
        nan = float("nan")
        return {"rows": 0, "accuracy": nan, "macro_f1": nan, "weighted_f1": nan,
                "per_category": {n: {"precision": nan, "recall": nan, "f1": nan, "support": 0} for n in names}}
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    present = support > 0  # a category with no exact rows here says nothing about the model
    per_category = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    weights = support[present] / max(support[present].sum(), 1)
    return {
        "rows": int(keep.sum()),
        "accuracy": float((y_true == y_pred).mean()) if keep.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1[present] * weights).sum()),
        "per_category": per_category,
    }


def binary_metrics(probs: np.ndarray, allowed_mask: np.ndarray) -> dict:
    truth = binary_labels(allowed_mask)
    keep = truth >= 0
    if not keep.any():  # no row of known toxicity in this group
        nan = float("nan")
        return {"rows": 0, "precision": nan, "recall": nan, "f1": nan, "macro_f1": nan, "auc": nan}
    y_true = truth[keep]
    toxic_score = 1.0 - probs[keep, 0]
    y_pred = (probs[keep].argmax(axis=1) != 0).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="binary", pos_label=1, zero_division=0
    )
    both_classes = len(np.unique(y_true)) == 2
    return {
        "rows": int(keep.sum()),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "auc": float(roc_auc_score(y_true, toxic_score)) if both_classes else float("nan"),
    }


def category_aucs(probs: np.ndarray, allowed_mask: np.ndarray, names) -> dict[str, float]:
    """Each toxic category's score ranked one-vs-rest: positives are rows whose label is exactly
    that category, negatives rows whose label excludes it; partial labels holding it are skipped
    (they do not say whether the row is that category). NaN where a side is empty."""
    probs, allowed_mask = np.asarray(probs), np.asarray(allowed_mask)
    exact = exact_labels(allowed_mask)
    aucs = {}
    for index, name in enumerate(names[1:], start=1):
        positive, negative = exact == index, allowed_mask[:, index] == 0
        keep = positive | negative
        both = positive.any() and negative.any()
        aucs[name] = float(roc_auc_score(positive[keep], probs[keep, index])) if both else float("nan")
    return aucs


def evaluate_predictions(probs, allowed_mask, names, sources=None) -> dict:
    """Pooled metrics, and the same per source when `sources` (one name per row) is given."""
    probs, allowed_mask = np.asarray(probs), np.asarray(allowed_mask)
    report = {
        "multiclass": multiclass_metrics(probs, allowed_mask, names),
        "binary": binary_metrics(probs, allowed_mask),
        "category_auc": category_aucs(probs, allowed_mask, names),
    }
    if sources is not None:
        sources = np.asarray(sources)
        report["per_source"] = {
            source: {
                "multiclass": multiclass_metrics(probs[sources == source], allowed_mask[sources == source], names),
                "binary": binary_metrics(probs[sources == source], allowed_mask[sources == source]),
                "category_auc": category_aucs(probs[sources == source], allowed_mask[sources == source], names),
            }
            for source in sorted(set(sources.tolist()))
        }
    return report
