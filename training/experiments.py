"""Shared pieces of the comparison commands (`moderation-fewshot`, `moderation-compare-stages`).

Every model they compare is trained with `moderation-train`'s recipe: the same PartialLabelTrainer,
loss, learning rate, batch size, max length and base model (`train._make_trainer`), and is scored
with `train.predict_probs` and measured with `training.metrics`. Two things differ on purpose:

- no model selection during training: the held-out rows are what the approaches are compared on,
  so they must not also pick each model's best epoch; the weights after the last step are used;
- rare categories are oversampled in proportion to the share of the public data used, so a run
  capped to 10% of the rows oversamples to 10% of `min_rows_per_category` (a full run matches
  `moderation-train` exactly).

Reports hold counts, scores and metrics only, never dataset texts.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from training.categories import Categories
from training.data import Example, oversample_rare

logger = logging.getLogger(__name__)

TIMING_REPEATS = 3  # timed passes over the same messages; the median is reported


@dataclass(frozen=True)
class FittedModel:
    model: object
    tokenizer: object
    names: tuple[str, ...]
    rows: int  # training rows, after oversampling
    steps: int  # optimizer steps taken
    seconds: float
    train_loss: float  # mean training loss over the run (the Trainer's figure)

    def summary(self) -> dict:
        return {"rows": self.rows, "steps": self.steps, "seconds": round(self.seconds, 1),
                "train_loss": self.train_loss, "categories": list(self.names)}


def parse_options(cls, prog: str, description: str, help_text: dict[str, str], argv=None):
    """One flag per field of the frozen options dataclass `cls` (as moderation-evaluate does)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in fields(cls):
        flag = "--" + field.name.replace("_", "-")
        text = help_text.get(field.name, "")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true", help=text)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default,
                                help=f"{text} (default: %(default)r)".lstrip())
    try:
        return cls(**vars(parser.parse_args(argv)))
    except ValueError as err:
        parser.error(str(err))


def fit_classifier(train_options, names, rows: list[Example], run_dir: Path) -> FittedModel:
    """Fine-tunes the base model as a softmax classifier over `names` on `rows` (whose `allowed`
    index into `names`), with moderation-train's trainer and no model selection."""
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.base_models import resolve_base_model
    from training.train import _make_trainer

    transformers.set_seed(train_options.seed)  # the new classifier head is initialised here
    base = resolve_base_model(train_options.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, id2label=dict(enumerate(names)), label2id={name: i for i, name in enumerate(names)},
        ignore_mismatched_sizes=True,  # a base that is already a classifier gets a new head
    )
    categories = Categories(tuple(names), ("",) * len(names), {})
    trainer = _make_trainer(train_options, model, tokenizer, categories, rows, None, Path(run_dir))
    started = time.monotonic()
    result = trainer.train()
    seconds = time.monotonic() - started
    logger.info("trained %s on %d rows: %d steps in %.0f s, mean loss %.4f",
                Path(run_dir).name, len(rows), result.global_step, seconds, result.training_loss)
    return FittedModel(model.eval(), tokenizer, tuple(names), len(rows), result.global_step, seconds,
                       float(result.training_loss))


def cap_rows(rows: list, max_rows: int, seed: int, salt: str) -> list:
    """A seeded random subset of at most max_rows rows, in their original order (0: all)."""
    if not max_rows or len(rows) <= max_rows:
        return list(rows)
    keep = sorted(random.Random(f"{salt}|{seed}").sample(range(len(rows)), max_rows))
    return [rows[i] for i in keep]


def oversample_scaled(rows: list[Example], full_rows: int, min_rows_per_category: int, seed: int) -> list[Example]:
    """moderation-train's oversampling of rare exact categories, its target scaled by the share
    len(rows) / full_rows of the data a capped run uses."""
    target = round(min_rows_per_category * len(rows) / max(full_rows, 1))
    return oversample_rare(rows, target, seed) if target > 1 else list(rows)


def time_ms_per_message(predict, texts: list[str]) -> dict:
    """Wall-clock ms per message of `predict(texts)`: one warm-up call, then the median and the
    minimum of TIMING_REPEATS passes (the minimum is the least disturbed by other processes)."""
    predict(texts[: min(len(texts), 8)])
    passes = []
    for _ in range(TIMING_REPEATS):
        started = time.perf_counter()
        predict(texts)
        passes.append(1e3 * (time.perf_counter() - started) / max(len(texts), 1))
    return {"messages": len(texts), "ms_per_message": round(statistics.median(passes), 3),
            "ms_per_message_min": round(min(passes), 3), "repeats": TIMING_REPEATS}


def num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def metrics_table(approaches: dict[str, dict], extra: dict[str, Callable[[dict], str]] | None = None) -> list[str]:
    """One row per approach: exact-row macro-F1 and the binary toxic-vs-non_toxic P/R/F1/AUC.

    Args:
        approaches: name -> {"metrics": training.metrics.evaluate_predictions(...), ...}.
        extra: column title -> function(approach dict) -> cell text, appended on the right.
    """
    extra = extra or {}
    head = ["approach", "macro-F1 (exact rows)", "P", "R", "F1", "AUC"] + list(extra)
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name, approach in approaches.items():
        multi, binary = approach["metrics"]["multiclass"], approach["metrics"]["binary"]
        cells = [name, num(multi["macro_f1"])] + [num(binary[k]) for k in ("precision", "recall", "f1", "auc")]
        cells += [cell(approach) for cell in extra.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def category_table(approaches: dict[str, dict]) -> list[str]:
    """Per-category F1 (exact-label rows) with each category's support, one column per approach."""
    first = next(iter(approaches.values()))["metrics"]["multiclass"]["per_category"]
    lines = ["| category | support | " + " | ".join(f"F1 {name}" for name in approaches) + " |",
             "|---|---:" + "|---:" * len(approaches) + "|"]
    for category, stats in first.items():  # no rows of a category here: its F1 says nothing
        f1s = [num(a["metrics"]["multiclass"]["per_category"][category]["f1"] if stats["support"] else None)
               for a in approaches.values()]
        lines.append(f"| {category} | {stats['support']} | " + " | ".join(f1s) + " |")
    return lines
