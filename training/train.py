"""`moderation-train`: labelled CSVs -> one fine-tuned single-stage classifier + evaluation report.

The run directory gets: config.json (every option), data_summary.json, the best checkpoint in
model/ (with the tokenizer and MODEL_CARD.md), metrics.json (pooled and per-source validation
metrics) and the Trainer's logs and resumable checkpoints in checkpoints/.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training.data import DEFAULT_DATA_DIR

logger = logging.getLogger("training.train")


@dataclass(frozen=True)
class TrainOptions:
    data_dir: str = DEFAULT_DATA_DIR
    categories: str = ""  # empty: the shipped default_categories.toml
    base_model: str = ""  # empty: the packaged MiniLM-L6
    output_dir: str = "runs/latest"
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    eval_batch_size: int = 128
    max_length: int = 64  # tokens; game chat is short and Jigsaw comments are truncated
    imbalance: str = "oversample"  # oversample | class_weight | none (see IMBALANCE_CHOICES)
    min_rows_per_category: int = 500  # with oversample: rarer exact categories are repeated to this
    normalization: str = "none"  # text normalisation scheme (contract.normalization): none | chat | game
    max_train_rows: int = 0  # 0: all; a small number for smoke runs
    max_val_rows: int = 0
    max_steps: int = -1  # -1: run the epochs
    early_stopping_patience: int = 2
    extra_train: str = ""  # a `text,label` CSV of category names added to training (e.g. your labelled chat)
    extra_train_repeat: int = 1  # times each extra row is seen per epoch
    obfuscate_fraction: float = 0.0  # share of training rows added again in disguise (training.obfuscate)
    seed: int = 13
    threads: int = 0  # torch CPU threads; 0: torch's default
    resume: bool = False
    # previous messages of the same conversation (CONDA) as a second segment; an experiment
    # (issue 14, part 3): the gateway does not send context yet
    context_messages: int = 0


IMBALANCE_CHOICES = {
    "oversample": "repeat exact rows of categories under --min-rows-per-category",
    "class_weight": "weight the loss by inverse category frequency (balanced, clipped at 10)",
    "none": "train on the rows as they come",
}


def parse_options(argv=None) -> TrainOptions:
    from contract.normalization import SCHEMES

    parser = argparse.ArgumentParser(prog="moderation-train", description=__doc__)
    choices = {"imbalance": tuple(IMBALANCE_CHOICES), "normalization": SCHEMES}
    for name, default in asdict(TrainOptions()).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(default), default=default, choices=choices.get(name))
    return TrainOptions(**vars(parser.parse_args(argv)))


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(argv)
    report = train(options)
    print(json.dumps({"macro_f1": report["multiclass"]["macro_f1"], "binary": report["binary"]}, indent=2))


def train(options: TrainOptions) -> dict:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.base_models import resolve_base_model
    from training.categories import DEFAULT_CATEGORIES_PATH, load_categories
    from training.data import summarize

    if options.threads:
        torch.set_num_threads(options.threads)
    run_dir = Path(options.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(asdict(options), indent=2))
    categories = load_categories(options.categories or DEFAULT_CATEGORIES_PATH)
    train_rows, val_rows = _load_rows(options, categories)
    summary = {"train": summarize(train_rows, categories), "val": summarize(val_rows, categories)}
    (run_dir / "data_summary.json").write_text(json.dumps(summary, indent=2))
    logger.info("data: %d train rows, %d val rows; summary in %s", len(train_rows), len(val_rows), run_dir / "data_summary.json")
    _log_summary(summary)

    base = resolve_base_model(options.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(categories.names),
        id2label=dict(enumerate(categories.names)),
        label2id={name: i for i, name in enumerate(categories.names)},
    )
    model.config.text_normalization = options.normalization  # saved with every checkpoint; export reads it
    if options.context_messages:  # export refuses such a checkpoint: the gateway sends no context
        model.config.context_messages = options.context_messages
    started = time.monotonic()
    trainer = _make_trainer(options, model, tokenizer, categories, train_rows, val_rows, run_dir)
    trainer.train(resume_from_checkpoint=True if options.resume else None)
    train_seconds = time.monotonic() - started

    report = evaluate_rows(model, tokenizer, val_rows, categories, options)
    report["train_seconds"] = train_seconds
    report["torch_threads"] = torch.get_num_threads()
    report["log_history"] = trainer.state.log_history
    model_dir = run_dir / "model"
    trainer.save_model(model_dir)
    tokenizer.save_pretrained(model_dir)
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    from training.model_card import write_model_card

    write_model_card(model_dir, options=options, categories=categories, summary=summary, report=report, base_model=base)
    logger.info("trained in %.0f s; model in %s", train_seconds, model_dir)
    return report


def _load_rows(options: TrainOptions, categories):
    import random

    from training.data import deduplicate, load_extra_file, load_split, oversample_rare, stratified_split
    from training.obfuscate import obfuscated_copies

    data_dir = Path(options.data_dir)
    if not data_dir.is_dir():
        raise SystemExit(f"data directory not found: {data_dir} (pass --data-dir)")
    if options.extra_train_repeat < 1 or not 0.0 <= options.obfuscate_fraction <= 1.0 or options.context_messages < 0:
        raise SystemExit("--extra-train-repeat must be at least 1, --obfuscate-fraction in [0, 1] "
                         "and --context-messages at least 0")
    extra_rows = load_extra_file(Path(options.extra_train), categories) if options.extra_train else []
    train_rows = load_split(data_dir, categories, "train", options.context_messages)
    val_rows = load_split(data_dir, categories, "val", options.context_messages)
    if not train_rows:
        raise SystemExit(f"no training files for any source in {data_dir}")
    if not val_rows:  # no validation files: the reference story's stratified 80/20 split
        train_rows, val_rows = stratified_split(train_rows, 0.2, options.seed)
    train_rows = deduplicate(train_rows + extra_rows, exclude=val_rows)
    rng = random.Random(options.seed)
    if options.max_train_rows and len(train_rows) > options.max_train_rows:
        train_rows = rng.sample(train_rows, options.max_train_rows)
    if options.max_val_rows and len(val_rows) > options.max_val_rows:
        val_rows = rng.sample(val_rows, options.max_val_rows)
    if extra_rows and options.extra_train_repeat > 1:  # after de-duplication, which would undo it
        extra = set(extra_rows)  # no public row equals one: the extra file's source name is its own
        train_rows += [row for row in train_rows if row in extra] * (options.extra_train_repeat - 1)
    if options.imbalance == "oversample":
        fixed = frozenset(row.source for row in extra_rows)  # seen --extra-train-repeat times, no more
        train_rows = oversample_rare(train_rows, options.min_rows_per_category, options.seed, fixed)
    # of the rows as an epoch sees them: a repeated row is disguised as often as it is repeated
    train_rows += obfuscated_copies(train_rows, options.obfuscate_fraction, options.seed)
    return train_rows, val_rows


def _log_summary(summary: dict) -> None:
    for split, sources in summary.items():
        for source, counts in sources.items():
            logger.info("  %s %-20s %s", split, source, ", ".join(f"{k}={v}" for k, v in counts.items()))


def _make_trainer(options, model, tokenizer, categories, train_rows, val_rows, run_dir):
    """The recipe's PartialLabelTrainer. With val_rows None (the comparison commands, whose
    held-out rows must not pick the model) there is no evaluation, early stopping or
    checkpointing during training: the weights after the last step are the model."""
    from transformers import EarlyStoppingCallback

    from contract.normalization import normalizer
    from training.data import balanced_example_weights
    from training.partial_label_trainer import (
        EncodedExamples,
        PadCollator,
        PartialLabelTrainer,
        make_compute_metrics,
    )

    n = len(categories.names)
    select_best = val_rows is not None
    normalize = normalizer(options.normalization)
    weights = balanced_example_weights(train_rows, n) if options.imbalance == "class_weight" else None
    return PartialLabelTrainer(
        model=model,
        args=_training_arguments(options, run_dir, select_best),
        train_dataset=EncodedExamples(train_rows, tokenizer, n, options.max_length, normalize, weights),
        eval_dataset=EncodedExamples(val_rows, tokenizer, n, options.max_length, normalize) if select_best else None,
        data_collator=PadCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,  # checkpoints then carry the tokenizer and can be exported
        compute_metrics=make_compute_metrics(categories.names) if select_best else None,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=options.early_stopping_patience)]
        if select_best else [],
    )


def _training_arguments(options, run_dir, select_best: bool = True):
    from transformers import TrainingArguments

    by_epoch = options.max_steps < 0
    if select_best:
        selection = dict(
            eval_strategy="epoch" if by_epoch else "steps",
            eval_steps=None if by_epoch else max(options.max_steps, 1),
            save_strategy="epoch" if by_epoch else "steps",
            save_steps=None if by_epoch else max(options.max_steps, 1),
            save_total_limit=2,
            load_best_model_at_end=True,
            metric_for_best_model="macro_f1",
            greater_is_better=True,
        )
    else:
        selection = dict(eval_strategy="no", save_strategy="no")
    return TrainingArguments(
        output_dir=str(run_dir / "checkpoints"),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        warmup_steps=0.06,
        weight_decay=0.01,
        logging_steps=25,
        train_sampling_strategy="group_by_length",  # less padding per batch: faster on CPU
        report_to=[],
        # keep the `weights` field of --imbalance class_weight: the Trainer otherwise drops every
        # batch key that is not an argument of the model's forward()
        remove_unused_columns=False,
        seed=options.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        **selection,
    )


def predict_probs(model, tokenizer, texts, max_length: int, batch_size: int = 128, contexts=None):
    """Softmax scores for texts with an eager HF model (batches sorted by length for speed), after
    the text normalisation the model was trained with (its config's `text_normalization`).
    `contexts` (one per text, empty for none) are scored as (text, context) pairs."""
    import numpy as np
    import torch

    from contract.normalization import normalizer
    from training.partial_label_trainer import encode_texts, pad_ids

    normalize = normalizer(getattr(model.config, "text_normalization", None))
    ids = encode_texts(tokenizer, list(texts), contexts, max_length, normalize)
    model.eval()
    device = next(model.parameters()).device  # after Trainer on a GPU machine the model is on cuda
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    probs = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            input_ids, attention_mask = pad_ids([ids[i] for i in chunk], tokenizer.pad_token_id)
            logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
            probs[chunk] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probs


def evaluate_rows(model, tokenizer, rows, categories, options) -> dict:
    from training.data import allowed_masks
    from training.metrics import evaluate_predictions

    probs = predict_probs(model, tokenizer, [row.text for row in rows], options.max_length,
                          contexts=[row.context for row in rows])
    return evaluate_predictions(probs, allowed_masks(rows, len(categories.names)), categories.names,
                                [row.source for row in rows])


if __name__ == "__main__":
    main()
