"""PNG figures of an evaluation: confusion matrix, ROC and precision-recall curves, reliability.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot), so nothing here
needs a display or changes matplotlib's global backend for the rest of the process.

Like training.metrics: the confusion matrix uses rows with an exact label; the binary curves use
every row whose toxicity is known, with toxic score = 1 - score(non_toxic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

from training.metrics import binary_labels, exact_labels

DPI = 110  # dots per inch of every PNG
CALIBRATION_BINS = 10  # equal-width bins of the toxic score
POOLED = "pooled"


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return Path(path)


def plot_confusion_matrix(probs, allowed_mask, names, path: Path, title: str = "") -> Path:
    """Rows: true category (exact-label rows only), normalised per row; cells also show counts."""
    exact = exact_labels(np.asarray(allowed_mask))
    keep = exact >= 0
    labels = list(range(len(names)))
    counts = np.zeros((len(names), len(names)), dtype=int)
    if keep.any():  # sklearn refuses empty input
        counts = confusion_matrix(exact[keep], np.asarray(probs)[keep].argmax(axis=1), labels=labels)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    size = 1.1 * len(names) + 2.5
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true row")
    for i in labels:
        for j in labels:
            colour = "white" if shares[i, j] > 0.6 else "black"
            axes.text(j, i, f"{shares[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(labels, labels=names, rotation=35, ha="right")
    axes.set_yticks(labels, labels=[f"{n} ({int(t)})" for n, t in zip(names, totals[:, 0])])
    axes.set_xlabel("predicted (top category)")
    axes.set_ylabel("true category (rows)")
    axes.set_title(title or f"Confusion matrix, {int(keep.sum())} exact-label rows")
    return _save(figure, path)


def _binary_groups(probs, allowed_mask, sources) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, y_true, toxic score) for the pooled rows and, when there are several sources, for
    each source; only groups that hold both classes (a curve needs both)."""
    truth = binary_labels(np.asarray(allowed_mask))
    toxic = 1.0 - np.asarray(probs)[:, 0]
    known = truth >= 0
    groups = [(POOLED, known)]
    if sources is not None and len(set(sources)) > 1:
        sources = np.asarray(sources)
        groups += [(name, known & (sources == name)) for name in sorted(set(sources.tolist()))]
    return [(name, truth[keep], toxic[keep]) for name, keep in groups if len(np.unique(truth[keep])) == 2]


def _no_curve_note(axes, groups) -> None:
    if not groups:
        axes.text(0.5, 0.5, "no rows with both toxic and non_toxic labels", ha="center", va="center")


def plot_roc(probs, allowed_mask, sources, path: Path) -> Path:
    """ROC of toxic vs non_toxic: pooled (thick) and one line per source that has both classes."""
    figure = Figure(figsize=(6.5, 5.5))
    axes = figure.add_subplot()
    groups = _binary_groups(probs, allowed_mask, sources)
    for name, y_true, score in groups:
        fpr, tpr, _ = roc_curve(y_true, score)
        area = auc(fpr, tpr)
        axes.plot(fpr, tpr, lw=2.5 if name == POOLED else 1.2, label=f"{name} (AUC {area:.3f}, n={len(y_true)})")
    _no_curve_note(axes, groups)
    axes.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01),
             title="ROC, toxic vs non_toxic (toxic score = 1 - p(non_toxic))")
    axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def plot_precision_recall(probs, allowed_mask, sources, path: Path) -> Path:
    """Precision-recall of toxic vs non_toxic, pooled and per source; AP in the legend."""
    figure = Figure(figsize=(6.5, 5.5))
    axes = figure.add_subplot()
    groups = _binary_groups(probs, allowed_mask, sources)
    for name, y_true, score in groups:
        precision, recall, _ = precision_recall_curve(y_true, score)
        ap = average_precision_score(y_true, score)
        axes.plot(recall, precision, lw=2.5 if name == POOLED else 1.2,
                  label=f"{name} (AP {ap:.3f}, toxic {y_true.mean():.0%})")
    _no_curve_note(axes, groups)
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01),
             title="Precision-recall, toxic vs non_toxic")
    if groups:
        axes.legend(loc="lower left", fontsize=8)
    return _save(figure, path)


def plot_calibration(probs, allowed_mask, sources, path: Path) -> Path:
    """Reliability diagram of the toxic score (observed toxic share per score bin) + histogram."""
    figure = Figure(figsize=(6.5, 7))
    curve, histogram = figure.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    groups = _binary_groups(probs, allowed_mask, sources)
    for name, y_true, score in groups:
        observed, predicted = calibration_curve(y_true, score, n_bins=CALIBRATION_BINS, strategy="uniform")
        curve.plot(predicted, observed, marker="o", ms=3, lw=2.5 if name == POOLED else 1.2, label=name)
        if name == POOLED:
            histogram.hist(score, bins=CALIBRATION_BINS, range=(0, 1), color="grey")
    _no_curve_note(curve, groups)
    curve.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfectly calibrated")
    curve.set(ylabel="observed share toxic", xlim=(0, 1), ylim=(0, 1.01),
              title="Reliability of the toxic score (1 - p(non_toxic))")
    curve.legend(loc="upper left", fontsize=8)
    histogram.set(xlabel="toxic score", ylabel="rows (pooled)")
    return _save(figure, path)


def write_all(probs, allowed_mask, names, sources, out_dir: Path) -> dict[str, str]:
    """Writes every figure into out_dir; returns {figure: file name}."""
    out_dir = Path(out_dir)
    paths = {
        "confusion_matrix": plot_confusion_matrix(probs, allowed_mask, names, out_dir / "confusion_matrix.png"),
        "roc": plot_roc(probs, allowed_mask, sources, out_dir / "roc.png"),
        "precision_recall": plot_precision_recall(probs, allowed_mask, sources, out_dir / "precision_recall.png"),
        "calibration": plot_calibration(probs, allowed_mask, sources, out_dir / "calibration.png"),
    }
    return {name: path.name for name, path in paths.items()}
