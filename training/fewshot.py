"""`moderation-fewshot`: the reference story's few-shot scenario, own samples with and without
public data.

    moderation-fewshot --max-public-rows 3000 --epochs 1 --threads 2

The operator's own ~100 labelled samples are simulated by N rows with an exact (one-category)
label drawn from the validation files, stratified by category with a fixed seed, and removed from
the evaluation rows. Two models are trained with moderation-train's recipe (training/experiments.py):

- own_only: the N rows alone, for --own-epochs (default 10: one pass over 100 rows is only 4
  optimizer steps at batch 32, which would compare against a barely trained model);
- own_plus_public: the N rows plus the public training files (de-duplicated against every
  validation row, optionally capped by --max-public-rows), for --epochs.

Both are evaluated on the same remaining validation rows. The output directory gets report.json
and report.md: macro-F1 on exact-label rows, binary toxic-vs-non_toxic P/R/F1/AUC (toxic score =
1 - score(non_toxic)) and per-category F1, per approach. Dataset texts are never printed.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from training.data import Example
from training.train import TrainOptions

logger = logging.getLogger(__name__)

APPROACHES = ("own_only", "own_plus_public")


@dataclass(frozen=True)
class FewShotOptions:
    data_dir: str = TrainOptions.data_dir
    categories: str = ""  # empty: the shipped default_categories.toml
    base_model: str = ""  # empty: the packaged MiniLM-L6
    output_dir: str = "runs/fewshot"
    own_rows: int = 100  # N: the simulated operator samples
    epochs: float = TrainOptions.epochs  # own_plus_public
    own_epochs: float = 10.0  # own_only
    max_steps: int = -1  # caps each training run; -1: run the epochs
    max_public_rows: int = 0  # 0: every public training row
    max_eval_rows: int = 0  # 0: every remaining validation row
    learning_rate: float = TrainOptions.learning_rate
    batch_size: int = TrainOptions.batch_size
    max_length: int = TrainOptions.max_length  # tokens
    min_rows_per_category: int = TrainOptions.min_rows_per_category  # scaled to the rows used
    threads: int = 0  # torch CPU threads; 0: torch's default
    seed: int = 13

    def __post_init__(self) -> None:
        if self.own_rows < 1:
            raise ValueError(f"own_rows must be >= 1, got {self.own_rows}")
        if self.epochs <= 0 or self.own_epochs <= 0:
            raise ValueError("--epochs and --own-epochs must be > 0")
        if min(self.max_public_rows, self.max_eval_rows, self.threads, self.min_rows_per_category) < 0:
            raise ValueError("--max-public-rows, --max-eval-rows, --threads and --min-rows-per-category must be >= 0")
        if self.batch_size < 1 or self.max_length < 8 or self.max_steps == 0:
            raise ValueError("need --batch-size >= 1, --max-length >= 8 and --max-steps -1 or >= 1")


HELP = {
    "own_rows": "N exact-label rows drawn from the validation files as the operator's own samples",
    "epochs": "epochs for own_plus_public",
    "own_epochs": "epochs for own_only (100 rows are ~4 steps per epoch)",
    "max_steps": "cap on optimizer steps for each model; -1: run the epochs",
    "max_public_rows": "seeded random cap on public training rows; 0: all",
    "max_eval_rows": "seeded random cap on the evaluation rows; 0: all remaining validation rows",
    "min_rows_per_category": "moderation-train's oversampling target, scaled to the share of public rows used",
}


@dataclass(frozen=True)
class FewShotData:
    own: list[Example]
    eval_rows: list[Example]
    public: list[Example]  # after the cap, before oversampling
    public_available: int  # public rows before the cap


def main(argv=None) -> None:
    from training.experiments import parse_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(FewShotOptions, "moderation-fewshot", __doc__, HELP, argv)
    report = run_fewshot(options)
    print(report_markdown(report))


def run_fewshot(options: FewShotOptions) -> dict:
    """Trains and evaluates both approaches; writes report.json and report.md; returns the report."""
    import torch

    from training.categories import DEFAULT_CATEGORIES_PATH, load_categories
    from training.experiments import fit_classifier, oversample_scaled

    if options.threads:
        torch.set_num_threads(options.threads)
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    categories = load_categories(options.categories or DEFAULT_CATEGORIES_PATH)
    data = load_fewshot_data(options, categories)
    training_sets = {
        "own_only": (data.own, options.own_epochs),
        "own_plus_public": (data.own + data.public, options.epochs),
    }
    approaches = {}
    for name, (rows, epochs) in training_sets.items():
        rows = oversample_scaled(rows, data.public_available, options.min_rows_per_category, options.seed)
        fitted = fit_classifier(_train_options(options, epochs, out_dir / name), categories.names, rows, out_dir / name)
        approaches[name] = {"epochs": epochs, "train": fitted.summary(),
                            "metrics": _evaluate(fitted, data.eval_rows, categories, options)}
    report = {"options": asdict(options), "data": _data_section(data, categories), "approaches": approaches,
              "margin": _margin(approaches["own_only"]["metrics"], approaches["own_plus_public"]["metrics"])}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")
    logger.info("wrote %s", out_dir)
    return report


def load_fewshot_data(options: FewShotOptions, categories) -> FewShotData:
    from training.data import deduplicate, load_split
    from training.experiments import cap_rows

    data_dir = Path(options.data_dir)
    if not data_dir.is_dir():
        raise SystemExit(f"data directory not found: {data_dir} (pass --data-dir)")
    val_rows = load_split(data_dir, categories, "val")
    if not val_rows:
        raise SystemExit(f"no validation files in {data_dir}: the own samples are drawn from them")
    own, rest = draw_own_rows(val_rows, options.own_rows, options.seed)
    public = deduplicate(load_split(data_dir, categories, "train"), exclude=val_rows)
    logger.info("own rows %d, evaluation rows %d, public rows %d", len(own), len(rest), len(public))
    return FewShotData(own, cap_rows(rest, options.max_eval_rows, options.seed, "fewshot-eval"),
                       cap_rows(public, options.max_public_rows, options.seed, "fewshot-public"), len(public))


def draw_own_rows(rows: list[Example], n: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Draws n exact-label rows, stratified by category; returns (drawn, every other row).

    Each category gets its proportional share of n among the exact-label rows (largest
    remainder), and at least one row when n allows. Both lists keep the input order.
    """
    by_category: dict[int, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if row.exact is not None:
            by_category[row.exact].append(index)
    quotas = proportional_quotas({c: len(indices) for c, indices in by_category.items()}, n)
    rng = random.Random(f"fewshot-own|{seed}")
    chosen = set()
    for category in sorted(quotas):
        chosen.update(rng.sample(by_category[category], quotas[category]))
    drawn = [row for i, row in enumerate(rows) if i in chosen]
    return drawn, [row for i, row in enumerate(rows) if i not in chosen]


def proportional_quotas(counts: dict[int, int], n: int) -> dict[int, int]:
    """Splits n over categories in proportion to counts (largest remainder), at least 1 each
    when n >= the number of categories, never more than a category has."""
    total = sum(counts.values())
    if n > total:
        raise ValueError(f"cannot draw {n} exact-label rows: the validation files have {total}")
    shares = {c: n * k / total for c, k in counts.items()}
    least = 1 if n >= len(counts) else 0
    quotas = {c: min(counts[c], max(least, math.floor(share))) for c, share in shares.items()}
    while sum(quotas.values()) > n:  # the minimum of one row overshot n: take from the largest
        quotas[max(quotas, key=lambda c: (quotas[c], -c))] -= 1
    by_remainder = sorted(counts, key=lambda c: (-(shares[c] - math.floor(shares[c])), -counts[c], c))
    while sum(quotas.values()) < n:
        for c in by_remainder:
            if sum(quotas.values()) < n and quotas[c] < counts[c]:
                quotas[c] += 1
    return quotas


def _train_options(options: FewShotOptions, epochs: float, run_dir: Path) -> TrainOptions:
    return TrainOptions(data_dir=options.data_dir, categories=options.categories, base_model=options.base_model,
                        output_dir=str(run_dir), epochs=epochs, learning_rate=options.learning_rate,
                        batch_size=options.batch_size, max_length=options.max_length,
                        max_steps=options.max_steps, seed=options.seed, threads=options.threads)


def _evaluate(fitted, rows: list[Example], categories, options: FewShotOptions) -> dict:
    from training.data import allowed_masks
    from training.metrics import evaluate_predictions
    from training.train import predict_probs

    probs = predict_probs(fitted.model, fitted.tokenizer, [row.text for row in rows], options.max_length)
    return evaluate_predictions(probs, allowed_masks(rows, len(categories.names)), categories.names,
                                [row.source for row in rows])


def _data_section(data: FewShotData, categories) -> dict:
    from training.data import summarize

    return {
        "own_rows": len(data.own),
        "own_per_category": dict(sorted(Counter(categories.names[row.exact] for row in data.own).items())),
        "own_per_source": dict(sorted(Counter(row.source for row in data.own).items())),
        "eval_rows": len(data.eval_rows),
        "eval_summary": summarize(data.eval_rows, categories),
        "public_rows": len(data.public),
        "public_rows_available": data.public_available,
    }


def _margin(own: dict, augmented: dict) -> dict:
    """own_plus_public minus own_only."""
    return {
        "macro_f1": augmented["multiclass"]["macro_f1"] - own["multiclass"]["macro_f1"],
        **{f"binary_{k}": augmented["binary"][k] - own["binary"][k] for k in ("precision", "recall", "f1", "auc")},
    }


def report_markdown(report: dict) -> str:
    from training.experiments import category_table, metrics_table, num

    data, approaches, margin = report["data"], report["approaches"], report["margin"]
    extra = {"train rows": lambda a: str(a["train"]["rows"]), "epochs": lambda a: f"{a['epochs']:g}",
             "steps": lambda a: str(a["train"]["steps"]), "train s": lambda a: f"{a['train']['seconds']:.0f}"}
    lines = [
        "# Few-shot: own samples with and without public data", "",
        f"- Own samples: {data['own_rows']} exact-label validation rows, stratified by category "
        f"({', '.join(f'{k} {v}' for k, v in data['own_per_category'].items())}); kept out of evaluation.",
        f"- Public rows: {data['public_rows']} of {data['public_rows_available']} (de-duplicated against "
        "every validation row).",
        f"- Evaluation: the same {data['eval_rows']} remaining validation rows for both; binary metrics use "
        "rows of known toxicity, toxic score = 1 - score(non_toxic).", "",
    ]
    lines += metrics_table(approaches, extra) + [""] + category_table(approaches) + [""]
    lines.append(f"Augmentation margin (own_plus_public - own_only): macro-F1 {margin['macro_f1']:+.3f}, "
                 f"binary F1 {margin['binary_f1']:+.3f}, AUC {margin['binary_auc']:+.3f} "
                 f"(own_only macro-F1 {num(approaches['own_only']['metrics']['multiclass']['macro_f1'])}, "
                 f"own_plus_public {num(approaches['own_plus_public']['metrics']['multiclass']['macro_f1'])}).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
