"""Checks an exported (e.g. int8) module against the eager fp32 model on validation data:
argmax agreement and the macro-F1 drop, both reported; refuses when either misses its bound."""

from __future__ import annotations

from pathlib import Path

from export.torchscript import ExportError
from training.scorers import score_texts


def agreement_report(reference_scores, candidate_scores, allowed_mask, labels) -> dict:
    from training.metrics import multiclass_metrics

    agreement = float((reference_scores.argmax(1) == candidate_scores.argmax(1)).mean())
    ref_f1 = multiclass_metrics(reference_scores, allowed_mask, labels)["macro_f1"]
    new_f1 = multiclass_metrics(candidate_scores, allowed_mask, labels)["macro_f1"]
    return {"rows": len(reference_scores), "argmax_agreement": agreement,
            "macro_f1_reference": ref_f1, "macro_f1_exported": new_f1, "macro_f1_drop": ref_f1 - new_f1}


def check_agreement(reference, candidate, tokenizer, data_dir: Path, labels, max_length: int,
                    min_agreement: float, max_f1_drop: float, normalization: str = "none") -> dict:
    from training.categories import load_categories
    from training.data import allowed_masks, load_split

    categories = load_categories()
    if list(categories.names) != list(labels):
        raise ExportError(f"validation needs the default categories {categories.names}, model has {labels}")
    rows = load_split(data_dir, categories, "val")
    if not rows:
        raise ExportError(f"no validation files in {data_dir}")
    from contract.normalization import normalizer

    normalize = normalizer(normalization)  # as the gateway will serve it
    texts = [normalize(row.text) for row in rows]
    report = agreement_report(score_texts(reference, tokenizer, texts, max_length),
                              score_texts(candidate, tokenizer, texts, max_length), allowed_masks(rows, len(labels)),
                              labels)
    if report["argmax_agreement"] < min_agreement or report["macro_f1_drop"] > max_f1_drop:
        raise ExportError(
            f"exported model disagrees with eager: argmax agreement {report['argmax_agreement']:.3f} "
            f"(need >= {min_agreement}), macro-F1 drop {report['macro_f1_drop']:.3f} (allowed <= {max_f1_drop})"
        )
    return report
