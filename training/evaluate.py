"""`moderation-evaluate`: score a split with a checkpoint, TorchScript file or served model.

    moderation-evaluate --model runs/default-v1/model
    moderation-evaluate --model model_repository/toxicity/5 --compare runs/eval-default-v1-model/report.json
    moderation-evaluate --served 127.0.0.1:50051 --propose-thresholds --target-precision 0.9

The output directory gets report.json (pooled and per-source metrics from training.metrics),
scores.npz (scores, label masks and sources; never texts), four PNGs (confusion matrix, ROC,
precision-recall, reliability), summary.md, and with the options compare.md or policy.toml +
thresholds.json. Metrics follow training/metrics.py: multi-class on exact-label rows, binary
toxic-vs-non_toxic on every row whose toxicity is known, toxic score = 1 - score(non_toxic).
Dataset texts are never printed or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from training.baseline import BaselineError
from training.categories import DEFAULT_CATEGORIES_PATH, CategoryFileError, load_categories
from training.data import SPLITS, DataFileError, allowed_masks, dedup_key, load_split, multilabel_columns, summarize
from training.metrics import binary_labels, binary_metrics, category_aucs, exact_labels, multiclass_metrics
from training.scorers import ScorerError, ServedScorer, open_model
from training.train import DEFAULT_DATA_DIR

logger = logging.getLogger(__name__)

CALIBRATION_BINS = 10  # equal-width toxic-score bins for the expected calibration error


@dataclass(frozen=True)
class EvalOptions:
    model: str = ""  # checkpoint dir, TorchScript file, model-repository version dir or tfidf:<source>
    tokenizer: str = ""  # tokenizer dir when the model's has none (Trainer checkpoint-N dirs)
    served: str = ""  # HOST:PORT of a running gateway (instead of --model)
    data_dir: str = DEFAULT_DATA_DIR
    categories: str = ""  # empty: the shipped default_categories.toml
    split: str = "val"
    max_rows: int = 0  # 0: all; else a seeded random subset (same rows for the same seed)
    seed: int = 13
    max_length: int = 0  # tokens; 0: export.json for TorchScript, else 128 (what is served)
    normalization: str = ""  # text normalisation scheme instead of the model's own; empty: the model's
    out_dir: str = ""  # empty: runs/eval-<model name>
    compare: str = ""  # another report.json, or a model path scored on the same rows
    propose_thresholds: bool = False
    target_precision: float = 0.9
    default_threshold: float = 0.5  # written as the policy's default_threshold
    block_precision: float = 0.97  # toxic_score precision where the proposed "high" (block) band starts
    game_chat_weight: float = 2.0  # weight of the game-chat source when averaging macro-F1 over sources
    policy_template: str = ""  # policy file whose actions and lists are copied; empty: the gateway's default
    threads: int = 0  # torch CPU threads; 0: torch's default

    def __post_init__(self) -> None:
        if bool(self.model) == bool(self.served):
            raise ValueError("give exactly one of --model and --served")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.normalization and (self.served or self.model.startswith("tfidf:")):
            raise ValueError("--normalization applies to --model checkpoints and TorchScript versions only")
        if self.max_rows < 0 or self.max_length < 0 or self.threads < 0:
            raise ValueError("--max-rows, --max-length and --threads must be >= 0")
        if self.game_chat_weight <= 0:
            raise ValueError(f"game_chat_weight must be > 0, got {self.game_chat_weight}")
        for name in ("target_precision", "default_threshold", "block_precision"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")


OPTION_HELP = {
    "model": "a Hugging Face checkpoint dir, a TorchScript model.pt, a model_repository version dir, "
             "or tfidf:<source> (a bag-of-words baseline trained on that source)",
    "tokenizer": "tokenizer dir for a model dir without one (the Trainer's checkpoint-N dirs); also used for --compare",
    "served": "HOST:PORT of a running gateway: evaluate the served model through ClassifyTextBatch",
    "categories": "categories TOML; empty: training/default_categories.toml",
    "split": "which <prefix>_<split>.csv files to read",
    "max_rows": "0: every row; else a seeded random subset (the same rows for the same seed)",
    "max_length": "tokens per text; 0: the version's export.json for TorchScript, else 128 (the served default)",
    "normalization": "none, chat or game (contract.normalization) instead of the scheme the model records; "
                     "empty: the model's own (a --compare model keeps its own)",
    "out_dir": "default runs/eval-<model name>",
    "compare": "another report.json, or a model path to score on the same rows; writes compare.md",
    "propose_thresholds": "write a whole policy.toml + thresholds.json: category thresholds for --target-precision, "
                          "the overall toxic_threshold for the best source-averaged macro-F1, severity bands, "
                          "actions and lists",
    "default_threshold": "the proposed policy's default_threshold",
    "block_precision": "toxic_score precision where the proposed high (block) severity band starts",
    "game_chat_weight": "weight of the game-chat source (conda) in the source-averaged macro-F1",
    "policy_template": "policy file whose [actions] and lists are copied; empty: gateway/default_policy.toml",
}


def parse_options(argv=None) -> EvalOptions:
    parser = argparse.ArgumentParser(prog="moderation-evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in fields(EvalOptions):
        flag = "--" + field.name.replace("_", "-")
        help_text = OPTION_HELP.get(field.name, "")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default,
                                help=f"{help_text} (default: %(default)r)".lstrip())
    try:
        return EvalOptions(**vars(parser.parse_args(argv)))
    except ValueError as err:
        parser.error(str(err))


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(argv)
    try:
        evaluate(options)
    except (ScorerError, CategoryFileError, DataFileError, BaselineError) as err:
        logger.error("evaluation failed: %s", err)
        sys.exit(2)


def evaluate(options: EvalOptions) -> dict:
    """Runs the whole evaluation; returns the report that is also written as report.json."""
    from training import baseline, plots, tables

    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    categories = load_categories(options.categories or DEFAULT_CATEGORIES_PATH)
    rows = load_rows(options, categories)
    if options.served:
        scorer = ServedScorer(options.served)
    elif options.model.startswith(baseline.PREFIX):
        scorer = baseline.BagOfWordsScorer(options.model.removeprefix(baseline.PREFIX), Path(options.data_dir), categories)
    else:
        scorer = open_model(options.model, options.max_length, options.tokenizer, options.normalization)
    out_dir = Path(options.out_dir or f"runs/eval-{scorer.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        probs, masks, sources, seconds = score_rows(scorer, rows, categories.names)
    finally:
        if hasattr(scorer, "close"):
            scorer.close()
    report = build_report(probs, masks, categories.names, sources, scorer_info=dict(scorer.info, name=scorer.name))
    report["column_auc"] = column_aucs(options, categories, rows, probs)
    report["data"] = {"dir": str(options.data_dir), "split": options.split, "rows": len(rows),
                      "categories": options.categories or str(DEFAULT_CATEGORIES_PATH),
                      "max_rows": options.max_rows, "seed": options.seed, "summary": summarize(rows, categories)}
    report["timing"] = {"seconds": round(seconds, 2), "ms_per_text": round(1e3 * seconds / max(len(rows), 1), 3)}
    np.savez_compressed(out_dir / "scores.npz", probs=probs, allowed_mask=masks, sources=np.asarray(sources),
                        labels=np.asarray(categories.names))
    report["figures"] = plots.write_all(probs, masks, categories.names, sources, out_dir)
    if options.propose_thresholds:
        report["thresholds"] = _propose(probs, masks, categories.names, sources, options, out_dir, scorer.name)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.md").write_text(tables.summary_markdown(report), encoding="utf-8")
    print(tables.stdout_table(report))
    if options.propose_thresholds:
        print(tables.thresholds_table(report["thresholds"]))
        print(tables.served_flag_table(report["thresholds"]["overall"]))
    if options.compare:
        other = _other_report(options, rows, categories, out_dir)
        text = tables.compare_markdown(report, other)
        (out_dir / "compare.md").write_text(text, encoding="utf-8")
        print(text)
    logger.info("wrote %s", out_dir)
    return report


def load_rows(options: EvalOptions, categories) -> list:
    data_dir = Path(options.data_dir)
    if not data_dir.is_dir():
        raise DataFileError(f"data directory not found: {data_dir} (pass --data-dir)")
    rows = load_split(data_dir, categories, options.split)
    if not rows:
        raise DataFileError(f"no {options.split} files for any source in {data_dir}")
    if options.max_rows and len(rows) > options.max_rows:
        keep = sorted(random.Random(options.seed).sample(range(len(rows)), options.max_rows))
        rows = [rows[i] for i in keep]
    return rows


def score_rows(scorer, rows, names) -> tuple[np.ndarray, np.ndarray, list[str], float]:
    """(scores, allowed masks, sources, seconds); refuses a model with other categories."""
    if list(scorer.labels) != list(names):
        raise ScorerError(f"the model's categories {list(scorer.labels)} differ from the categories file's "
                          f"{list(names)} (pass the matching --categories)")
    logger.info("scoring %d rows with %s (%s)", len(rows), scorer.name, scorer.kind)
    started = time.monotonic()
    probs = np.asarray(scorer.score([row.text for row in rows]), dtype=np.float32)
    seconds = time.monotonic() - started
    return probs, allowed_masks(rows, len(names)), [row.source for row in rows], seconds


def build_report(probs, allowed_mask, names, sources=None, scorer_info: dict | None = None) -> dict:
    """training.metrics' pooled + per-source report (the layout of evaluate_predictions), plus
    calibration and what was evaluated."""
    probs, allowed_mask = np.asarray(probs), np.asarray(allowed_mask)
    report = {"model": scorer_info or {}, "labels": list(names)}
    report.update(_sections(probs, allowed_mask, names))
    if sources is not None:
        sources = np.asarray(sources)
        report["per_source"] = {source: _sections(probs[sources == source], allowed_mask[sources == source], names)
                                for source in sorted(set(sources.tolist()))}
    report["calibration"] = {"ece": expected_calibration_error(probs, allowed_mask), "bins": CALIBRATION_BINS}
    return report


def _sections(probs, allowed_mask, names) -> dict:
    """training.metrics' multiclass and binary sections. sklearn refuses empty input, so a
    section without usable rows (a source whose labels are all partial, or a --max-rows sample
    that drew none) gets rows 0 and NaN values instead of stopping the evaluation."""
    nan = float("nan")
    if (exact_labels(allowed_mask) >= 0).any():
        multiclass = multiclass_metrics(probs, allowed_mask, names)
    else:
        multiclass = {"rows": 0, "accuracy": nan, "macro_f1": nan, "weighted_f1": nan, "per_category": {
            name: {"precision": nan, "recall": nan, "f1": nan, "support": 0} for name in names}}
    if (binary_labels(allowed_mask) >= 0).any():
        binary = binary_metrics(probs, allowed_mask)
    else:
        binary = {"rows": 0, "precision": nan, "recall": nan, "f1": nan, "macro_f1": nan, "auc": nan}
    return {"multiclass": multiclass, "binary": binary, "category_auc": category_aucs(probs, allowed_mask, names)}


def column_aucs(options: EvalOptions, categories, rows, probs) -> dict[str, dict[str, float]]:
    """For each multi-label source, each column that maps to one category: the AUC of that
    category's score against the source's own 0/1 column, over the source's scored rows (so
    Jigsaw `obscene` is judged with the profanity score whatever the mapping's priorities)."""
    from sklearn.metrics import roc_auc_score

    result = {}
    for source in categories.sources.values():
        path = Path(options.data_dir) / f"{source.file_prefix}_{options.split}.csv"
        if source.format != "multilabel" or not path.exists():
            continue
        raw = multilabel_columns(path, source)
        picked = [(i, raw[key]) for i, row in enumerate(rows)
                  if row.source == source.name and (key := dedup_key(row.text)) in raw]
        scored = probs[[i for i, _ in picked]]
        aucs = {}
        for column, targets in source.labels.items():
            truth = [values[column] for _, values in picked]
            if len(targets) != 1 or len(set(truth)) != 2:
                continue
            (name,) = targets
            aucs[f"{column}->{name}"] = float(roc_auc_score(truth, scored[:, categories.index(name)]))
        result[source.name] = aucs
    return result


def expected_calibration_error(probs, allowed_mask, bins: int = CALIBRATION_BINS) -> float:
    """Row-weighted mean |observed toxic share - mean toxic score| over equal-width score bins."""
    truth = binary_labels(np.asarray(allowed_mask))
    keep = truth >= 0
    if not keep.any():
        return float("nan")
    score, truth = 1.0 - np.asarray(probs, dtype=np.float64)[keep, 0], truth[keep]
    which = np.minimum((score * bins).astype(int), bins - 1)
    gaps = [abs(truth[which == b].mean() - score[which == b].mean()) * (which == b).sum()
            for b in range(bins) if (which == b).any()]
    return float(sum(gaps) / len(score))


def _propose(probs, masks, names, sources, options: EvalOptions, out_dir: Path, model_name: str) -> dict:
    from dataclasses import asdict

    from training.policy_proposal import DEFAULT_TEMPLATE, format_whole_policy, propose_overall
    from training.thresholds import proposals_to_json, propose_thresholds

    proposals = propose_thresholds(probs, masks, names, options.target_precision)
    overall = propose_overall(probs, masks, names, sources, proposals, target_precision=options.target_precision,
                              block_precision=options.block_precision, game_chat_weight=options.game_chat_weight)
    comment = (f"Policy for {model_name}, target precision {options.target_precision} on "
               f"{options.split} rows of {options.data_dir} (tuned on these rows: expect a little less on new chat).")
    text = format_whole_policy(overall, proposals, default_threshold=options.default_threshold,
                               template=Path(options.policy_template) if options.policy_template else DEFAULT_TEMPLATE,
                               comment=comment)
    (out_dir / "policy.toml").write_text(text, encoding="utf-8")
    result = proposals_to_json(proposals, options.target_precision)
    result["overall"] = asdict(overall)
    result["policy"] = "policy.toml"
    (out_dir / "thresholds.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _other_report(options: EvalOptions, rows, categories, out_dir: Path) -> dict:
    """--compare: a saved report, or another model scored on exactly the same rows."""
    path = Path(options.compare)
    if path.is_file() and path.suffix == ".json":
        other = json.loads(path.read_text(encoding="utf-8"))
        other.setdefault("model", {}).setdefault("name", path.parent.name or path.stem)
        return other
    scorer = open_model(options.compare, options.max_length, options.tokenizer)
    probs, masks, sources, seconds = score_rows(scorer, rows, categories.names)
    other = build_report(probs, masks, categories.names, sources, dict(scorer.info, name=scorer.name))
    other["data"] = {"dir": str(options.data_dir), "split": options.split, "rows": len(rows)}
    other["timing"] = {"seconds": round(seconds, 2), "ms_per_text": round(1e3 * seconds / max(len(rows), 1), 3)}
    (out_dir / "compare_report.json").write_text(json.dumps(other, indent=2) + "\n", encoding="utf-8")
    return other


if __name__ == "__main__":
    main()
