"""`moderation-compare-stages`: a two-stage cascade against one single-stage model, trained on the
same rows and evaluated on the same held-out rows (the reference story's comparison).

    moderation-compare-stages --max-train-rows 3000 --epochs 1 --threads 2

- stage 1: non_toxic vs toxic, trained on the rows whose toxicity is known (an exact non_toxic
  label, or any label set without non_toxic);
- stage 2: the toxic categories only, trained on the rows whose label set excludes non_toxic;
  partial labels (OLID `offensive`) use the same partial-label loss, restricted to those categories;
- single stage: one softmax over every category, as `moderation-train` builds it.

All three use moderation-train's recipe and row loading (validation files, or its 80/20 split;
de-duplication; seeded caps) as described in training/experiments.py.

The cascade says non_toxic unless stage 1's p_toxic >= --toxic-threshold (0.5), and then stage 2's
top category. Its score vector is [1 - p_toxic, p_toxic * stage-2 probabilities], so its binary
toxic score, 1 - score(non_toxic), is p_toxic. The top entry of that vector is not always the
cascade's decision (p_toxic 0.6 spread over four categories leaves non_toxic on top), so metrics
are computed on `decision_view`, which keeps column 0 and puts the decision on top.

Inference cost is the wall-clock ms per message to score --timing-messages held-out texts in
batches of --timing-batch-size with the same thread count: single_stage is one pass; two_stage
runs stage 1 on every message and stage 2 on the flagged ones (the cascade as it would serve),
and is also timed with stage 2 on every message (its worst case: all chat toxic).

The output directory gets report.json, report.md and scores.npz (scores, decisions, label masks,
sources; never texts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from training.categories import NEGATIVE_CATEGORY
from training.data import Example
from training.train import TrainOptions

logger = logging.getLogger(__name__)

STAGE1_NAMES = (NEGATIVE_CATEGORY, "toxic")


@dataclass(frozen=True)
class StagesOptions:
    data_dir: str = TrainOptions.data_dir
    categories: str = ""  # empty: the shipped default_categories.toml
    base_model: str = ""  # empty: the packaged MiniLM-L6
    output_dir: str = "runs/stages"
    epochs: float = TrainOptions.epochs  # for each of the three models
    max_steps: int = -1  # caps each training run; -1: run the epochs
    max_train_rows: int = 0  # seeded random cap before oversampling; 0: all
    max_eval_rows: int = 0  # seeded random cap on the held-out rows; 0: all
    learning_rate: float = TrainOptions.learning_rate
    batch_size: int = TrainOptions.batch_size
    max_length: int = TrainOptions.max_length  # tokens
    min_rows_per_category: int = TrainOptions.min_rows_per_category  # scaled to the rows used
    toxic_threshold: float = 0.5  # stage 1 flags a message at p_toxic >= this
    timing_messages: int = 256
    timing_batch_size: int = 32
    threads: int = 0  # torch CPU threads for training, evaluation and timing; 0: torch's default
    seed: int = 13

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.max_steps == 0:
            raise ValueError("need --epochs > 0 and --max-steps -1 or >= 1")
        if min(self.max_train_rows, self.max_eval_rows, self.threads, self.min_rows_per_category) < 0:
            raise ValueError("--max-train-rows, --max-eval-rows, --threads and --min-rows-per-category must be >= 0")
        if not 0.0 < self.toxic_threshold < 1.0:
            raise ValueError(f"toxic_threshold must be in (0, 1), got {self.toxic_threshold}")
        if self.timing_messages < 1 or self.timing_batch_size < 1 or self.batch_size < 1:
            raise ValueError("--timing-messages, --timing-batch-size and --batch-size must be >= 1")


HELP = {
    "epochs": "epochs for each of the three models",
    "max_steps": "cap on optimizer steps for each model; -1: run the epochs",
    "max_train_rows": "seeded random cap on training rows; 0: all",
    "max_eval_rows": "seeded random cap on the held-out rows; 0: all",
    "min_rows_per_category": "moderation-train's oversampling target, scaled to the share of rows used",
    "toxic_threshold": "stage 1 flags a message when p_toxic >= this",
    "timing_messages": "held-out messages scored to measure ms per message",
}


def main(argv=None) -> None:
    from training.experiments import parse_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(StagesOptions, "moderation-compare-stages", __doc__, HELP, argv)
    print(report_markdown(compare_stages(options)))


def stage1_rows(rows: list[Example]) -> list[Example]:
    """Rows of known toxicity, relabelled (0,) non_toxic or (1,) toxic; a set holding non_toxic
    and something else says nothing about toxicity and is dropped."""
    relabelled = []
    for row in rows:
        if 0 not in row.allowed:
            relabelled.append(replace(row, allowed=(1,)))
        elif row.allowed == (0,):
            relabelled.append(row)
    return relabelled


def stage2_rows(rows: list[Example]) -> list[Example]:
    """Rows whose label set excludes non_toxic, with indices over the toxic categories only."""
    return [replace(row, allowed=tuple(i - 1 for i in row.allowed)) for row in rows if 0 not in row.allowed]


def cascade_scores(p_toxic: np.ndarray, stage2_probs: np.ndarray) -> np.ndarray:
    """[1 - p_toxic, p_toxic * stage-2 probabilities]: a distribution over every category."""
    p_toxic = np.asarray(p_toxic, dtype=np.float64)[:, None]
    return np.hstack([1.0 - p_toxic, p_toxic * np.asarray(stage2_probs, dtype=np.float64)]).astype(np.float32)


def cascade_decisions(p_toxic: np.ndarray, stage2_probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Category index per message: 0 (non_toxic) below the threshold, else 1 + stage 2's argmax."""
    return np.where(np.asarray(p_toxic) >= threshold, 1 + np.asarray(stage2_probs).argmax(axis=1), 0)


def decision_view(scores: np.ndarray, decisions: np.ndarray) -> np.ndarray:
    """Scores for training.metrics (which decides by argmax and ranks by 1 - column 0): column 0
    is kept, the other columns are 0 except 2.0 at a toxic decision, so argmax = the decision."""
    view = np.zeros_like(scores)
    view[:, 0] = scores[:, 0]
    toxic = decisions > 0
    view[np.flatnonzero(toxic), decisions[toxic]] = 2.0
    return view


def compare_stages(options: StagesOptions) -> dict:
    """Trains the three models, evaluates both approaches, times them; writes and returns the report."""
    import torch

    from training.categories import DEFAULT_CATEGORIES_PATH, load_categories
    from training.experiments import fit_classifier

    if options.threads:
        torch.set_num_threads(options.threads)
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    categories = load_categories(options.categories or DEFAULT_CATEGORIES_PATH)
    train_rows, eval_rows, available = load_stage_data(options, categories)
    plan = {"single_stage": (categories.names, train_rows), "stage1": (STAGE1_NAMES, stage1_rows(train_rows)),
            "stage2": (categories.toxic_names, stage2_rows(train_rows))}
    fitted = {name: fit_classifier(_train_options(options, out_dir / name), names, rows, out_dir / name)
              for name, (names, rows) in plan.items()}
    approaches, arrays = _evaluate(fitted, eval_rows, categories.names, options)
    timing_texts = [row.text for row in _timing_rows(eval_rows, options)]
    timings = _time_approaches(fitted, timing_texts, options)
    approaches["single_stage"]["inference"] = timings["single_stage"]
    approaches["two_stage"]["inference"] = timings["two_stage"]
    approaches["two_stage"]["inference_stage2_on_every_message"] = timings["two_stage_all"]
    device = str(next(fitted["single_stage"].model.parameters()).device)  # cuda where Trainer found a GPU
    report = {"options": asdict(options), "threads": torch.get_num_threads(), "device": device,
              "data": {"train_rows": len(train_rows), "train_rows_available": available, "eval_rows": len(eval_rows),
                       "stage_rows": {name: len(rows) for name, (_, rows) in plan.items()}},
              "approaches": approaches}
    np.savez_compressed(out_dir / "scores.npz", **arrays)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")
    logger.info("wrote %s", out_dir)
    return report


def load_stage_data(options: StagesOptions, categories) -> tuple[list[Example], list[Example], int]:
    """(train rows, held-out rows, train rows before the cap), via moderation-train's loading."""
    from training.experiments import cap_rows, oversample_scaled
    from training.train import _load_rows

    uncapped = replace(_train_options(options, Path(options.output_dir)), min_rows_per_category=0)
    train_rows, eval_rows = _load_rows(uncapped, categories)
    available = len(train_rows)
    train_rows = cap_rows(train_rows, options.max_train_rows, options.seed, "stages-train")
    train_rows = oversample_scaled(train_rows, available, options.min_rows_per_category, options.seed)
    return train_rows, cap_rows(eval_rows, options.max_eval_rows, options.seed, "stages-eval"), available


def _train_options(options: StagesOptions, run_dir: Path) -> TrainOptions:
    return TrainOptions(data_dir=options.data_dir, categories=options.categories, base_model=options.base_model,
                        output_dir=str(run_dir), epochs=options.epochs, learning_rate=options.learning_rate,
                        batch_size=options.batch_size, max_length=options.max_length,
                        max_steps=options.max_steps, seed=options.seed, threads=options.threads)


def _probs(fitted, texts: list[str], options: StagesOptions, batch_size: int = 128) -> np.ndarray:
    from training.train import predict_probs

    return predict_probs(fitted.model, fitted.tokenizer, texts, options.max_length, batch_size)


def _evaluate(fitted: dict, rows: list[Example], names, options: StagesOptions) -> tuple[dict, dict]:
    from training.data import allowed_masks
    from training.metrics import evaluate_predictions

    texts, sources = [row.text for row in rows], [row.source for row in rows]
    masks = allowed_masks(rows, len(names))
    single = _probs(fitted["single_stage"], texts, options)
    p_toxic = _probs(fitted["stage1"], texts, options)[:, 1]
    stage2 = _probs(fitted["stage2"], texts, options)
    scores = cascade_scores(p_toxic, stage2)
    decisions = cascade_decisions(p_toxic, stage2, options.toxic_threshold)
    approaches = {
        "two_stage": {"train": {"stage1": fitted["stage1"].summary(), "stage2": fitted["stage2"].summary()},
                      "flagged_by_stage1": float((p_toxic >= options.toxic_threshold).mean()),
                      "metrics": evaluate_predictions(decision_view(scores, decisions), masks, names, sources)},
        "single_stage": {"train": {"single_stage": fitted["single_stage"].summary()},
                         "metrics": evaluate_predictions(single, masks, names, sources)},
    }
    arrays = {"single_stage": single, "two_stage": scores, "two_stage_decisions": decisions,
              "allowed_mask": masks, "sources": np.asarray(sources), "labels": np.asarray(names)}
    return approaches, arrays


def _timing_rows(rows: list[Example], options: StagesOptions) -> list[Example]:
    from training.experiments import cap_rows

    return cap_rows(rows, options.timing_messages, options.seed, "stages-timing")


def _time_approaches(fitted: dict, texts: list[str], options: StagesOptions) -> dict:
    from training.experiments import time_ms_per_message

    batch = options.timing_batch_size

    def single(chunk):
        _probs(fitted["single_stage"], chunk, options, batch)

    def cascade(chunk, every: bool = False):
        p_toxic = _probs(fitted["stage1"], chunk, options, batch)[:, 1]
        flagged = [text for text, p in zip(chunk, p_toxic) if every or p >= options.toxic_threshold]
        if flagged:
            _probs(fitted["stage2"], flagged, options, batch)

    return {"single_stage": time_ms_per_message(single, texts),
            "two_stage": time_ms_per_message(cascade, texts),
            "two_stage_all": time_ms_per_message(lambda chunk: cascade(chunk, every=True), texts)}


def report_markdown(report: dict) -> str:
    from training.experiments import category_table, metrics_table

    approaches, data = report["approaches"], report["data"]
    extra = {"train s": lambda a: f"{sum(t['seconds'] for t in a['train'].values()):.0f}",
             "ms/message": lambda a: f"{a['inference']['ms_per_message']:.2f}"}
    two_all = approaches["two_stage"]["inference_stage2_on_every_message"]
    lines = [
        "# Two-stage cascade vs single-stage model", "",
        f"- Training rows: {_train_rows(data)} "
        f"(stage 1 {data['stage_rows']['stage1']}, stage 2 {data['stage_rows']['stage2']}, "
        f"single stage {data['stage_rows']['single_stage']}); the same {data['eval_rows']} held-out rows for both.",
        "- P/R/F1: toxic vs non_toxic on rows of known toxicity; AUC on the toxic score (two-stage: p_toxic; "
        "single-stage: 1 - score(non_toxic)); macro-F1 over the categories on exact-label rows.",
        f"- Stage 1 flagged {approaches['two_stage']['flagged_by_stage1']:.0%} of the held-out rows "
        f"(threshold {report['options']['toxic_threshold']}).", "",
    ]
    lines += metrics_table(approaches, extra) + [""] + category_table(approaches) + [""]
    lines.append(f"Inference cost: {two_all['messages']} messages, batch {report['options']['timing_batch_size']}, "
                 f"{_where(report)}; median of {two_all['repeats']} passes (minimum in brackets). "
                 f"single_stage {_ms(approaches['single_stage']['inference'])}, two_stage {_ms(approaches['two_stage']['inference'])} "
                 f"(stage 2 only on flagged messages), {_ms(two_all)} with stage 2 on every message."
)
    return "\n".join(lines) + "\n"


def _where(report: dict) -> str:
    device = report.get("device", "cpu")
    return f"{report['threads']} threads" if device == "cpu" else f"on {device}"  # threads mean nothing on a GPU


def _train_rows(data: dict) -> str:
    rows, available = data["train_rows"], data["train_rows_available"]
    if rows > available:  # oversampling repeated rare categories
        return f"{rows} ({available} loaded, rare categories repeated)"
    return f"{rows} of {available}"


def _ms(timing: dict) -> str:
    return f"{timing['ms_per_message']:.2f} ms ({timing['ms_per_message_min']:.2f})"


if __name__ == "__main__":
    main()
