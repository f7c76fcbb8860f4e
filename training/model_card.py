"""Writes MODEL_CARD.md next to a trained checkpoint: data, mapping, recipe, time, metrics."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path


def write_model_card(model_dir: Path, *, options, categories, summary, report, base_model) -> Path:
    lines = [
        "# Toxicity classifier (single-stage)",
        "",
        f"Categories, in output order: {', '.join(f'`{n}`' for n in categories.names)}.",
        "Softmax over all categories; toxic score = 1 - score(non_toxic).",
        "",
        "## Recipe",
        f"- Base model: `{base_model}`",
        "- Trained by `moderation-train` (Hugging Face `Trainer`, partial-label loss: a source label "
        "that names several categories asks only that the probability lands in that set).",
        "- Options: " + ", ".join(f"{k}={v!r}" for k, v in asdict(options).items()),
        f"- Training time: {report['train_seconds'] / 60:.1f} min on {report['torch_threads']} CPU threads.",
        "",
        "## Data (rows per source and label after mapping, capping and de-duplication)",
        "",
    ]
    for split, sources in summary.items():
        for source, counts in sources.items():
            lines.append(f"- {split} `{source}`: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    lines += ["", "Mapping: see the categories file (`training/default_categories.toml`).", ""]
    lines += _metrics_section(report, categories)
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _metrics_section(report: dict, categories) -> list[str]:
    multi, binary = report["multiclass"], report["binary"]
    lines = [
        "## Validation metrics (shared validation files)",
        "",
        f"Multi-class, rows with an exact label ({multi['rows']}): macro-F1 {multi['macro_f1']:.3f}, "
        f"weighted-F1 {multi['weighted_f1']:.3f}, accuracy {multi['accuracy']:.3f}.",
        "",
        "| category | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in categories.names:
        m = multi["per_category"][name]
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += [
        "",
        "Binary toxic vs non_toxic (toxic = top category is not non_toxic):",
        "",
        "| data | rows | precision | recall | F1 | macro-F1 | AUC |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _binary_row("pooled", binary),
    ]
    for source, metrics in report.get("per_source", {}).items():
        lines.append(_binary_row(source, metrics["binary"]))
    return lines


def _binary_row(name: str, m: dict) -> str:
    return (
        f"| {name} | {m['rows']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
        f"| {m['macro_f1']:.3f} | {m['auc']:.3f} |"
    )
