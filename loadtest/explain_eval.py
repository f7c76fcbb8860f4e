"""How good and how costly `explain` is: occlusion spans against CONDA's `T` tokens, per message.

Runs the gateway's own text path (gateway.text_scoring: windows, occlusion, ranking) on a model
version's TorchScript file in this process, as the Triton python backend runs it (rows sorted by
length, `chunk_rows` at a time), so no server is needed. Each `explicit_toxic` row of
conda_val.csv that has `T` tokens is scored alone, with and without explain. A whitespace token
counts as predicted when an evidence span overlaps it; precision and recall are over tokens.

    python -m loadtest.explain_eval --out loadtest/results/explain_eval.json
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import random
import re
import statistics
import time
from pathlib import Path

import numpy as np

from contract import tensors
from gateway.model_version import load_serving_model, numbered_versions
from gateway.text_scoring import ScoringOptions, score_texts

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path(os.environ.get("MODERATION_DATA_DIR", "../shared/data")) / "conda_val.csv"  # as training's
MODEL_DIR = Path("model_repository/toxicity")
CHUNK_ROWS = 8  # as model_repository/toxicity/config.pbtxt's chunk_rows
TOXIC_TOKEN = "T"  # CONDA's token label for a toxic word
_TOKEN = re.compile(r"\S+")


def load_rows(path: Path, limit: int, seed: int) -> list[tuple[str, list[bool]]]:
    """(text, is-T per whitespace token) for explicit_toxic rows with T tokens and aligned labels."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            labels = row["token_labels"].split()
            if row["label"] != "explicit_toxic" or TOXIC_TOKEN not in labels:
                continue
            if len(row["text"].split()) == len(labels):  # a few rows' labels do not line up
                rows.append((row["text"], [label == TOXIC_TOKEN for label in labels]))
    if limit and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def torchscript_infer(version_dir: Path, threads: int):
    import torch

    if threads:
        torch.set_num_threads(threads)
    module = torch.jit.load(str(version_dir / tensors.MODEL_FILENAME), map_location="cpu").float().eval()

    def infer(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        lengths = np.maximum(mask.sum(axis=1), 1)
        order = np.argsort(lengths, kind="stable")
        scores = None
        with torch.inference_mode():
            for start in range(0, len(order), CHUNK_ROWS):
                chunk = order[start : start + CHUNK_ROWS]
                width = int(lengths[chunk].max())
                out = module(torch.from_numpy(ids[chunk, :width]), torch.from_numpy(mask[chunk, :width])).float().numpy()
                if scores is None:
                    scores = np.empty((len(order), out.shape[1]), dtype=np.float32)
                scores[chunk] = out
        return scores

    return infer


def predicted_tokens(text: str, spans) -> list[bool]:
    return [any(s.start < m.end() and s.end > m.start() for s in spans) for m in _TOKEN.finditer(text)]


SWEEP_MIN_WEIGHTS = (0.02, 0.05, 0.1, 0.2)  # explain_min_weight values also reported


def evaluate(rows, model, infer, options: ScoringOptions) -> dict:
    """Span metrics at options.explain_min_weight and each sweep value, and the cost with and without explain.

    Each minimum weight gets its own explained pass: whether word pairs are tried depends on it.
    """
    by_weight, flagged_top = {}, 0
    for weight in sorted({options.explain_min_weight, *SWEEP_MIN_WEIGHTS}):
        explaining = dataclasses.replace(options, explain_min_weight=weight)
        found = []
        for text, is_toxic in rows:
            scored = score_texts([text], model.encoder, model.labels, infer, explaining, True)
            found.append((text, is_toxic, scored.evidence[0]))
            if weight == options.explain_min_weight:
                flagged_top += int(model.labels[int(np.argmax(scored.scores[0]))] != tensors.NEGATIVE_CATEGORY)
        by_weight[weight] = span_metrics(found)
        logger.info("min weight %.2f: %s", weight, by_weight[weight])
    cost = {False: {"rows": [], "ms": []}, True: {"rows": [], "ms": []}}
    for text, _ in rows:
        for explain in (False, True):
            started = time.perf_counter()
            scored = score_texts([text], model.encoder, model.labels, infer, options, explain)
            cost[explain]["ms"].append((time.perf_counter() - started) * 1e3)
            cost[explain]["rows"].append(scored.rows)
    gold = sum(sum(t) for _, t in rows)
    return {
        "rows": len(rows),
        **by_weight[options.explain_min_weight],
        "by_min_weight": {str(w): by_weight[w] for w in SWEEP_MIN_WEIGHTS},
        "rows_top_category_toxic": flagged_top,
        "T_token_share": round(gold / sum(len(t) for _, t in rows), 4),  # precision of picking words at random
        "cost": {("with_explain" if explain else "without_explain"): _cost(c) for explain, c in cost.items()},
    }


def span_metrics(found) -> dict:
    """Word precision and recall of the evidence spans."""
    hits = predicted = gold = top_hits = with_spans = 0
    for text, is_toxic, spans in found:
        guess = predicted_tokens(text, spans)
        hits += sum(g and t for g, t in zip(guess, is_toxic))
        predicted += sum(guess)
        gold += sum(is_toxic)
        if spans:
            with_spans += 1
            top_hits += int(any(t for g, t in zip(predicted_tokens(text, spans[:1]), is_toxic) if g))
    precision = hits / predicted if predicted else 0.0
    recall = hits / gold if gold else 0.0
    return {"token_precision": round(precision, 4), "token_recall": round(recall, 4),
            "token_f1": round(2 * precision * recall / (precision + recall), 4) if hits else 0.0,
            "top_span_hits_T": round(top_hits / with_spans, 4) if with_spans else 0.0,
            "rows_with_evidence": with_spans}


def long_message_cost(rows, model, infer, options: ScoringOptions, count: int = 20, chars: int = 2000) -> dict:
    """Rows and ms for messages of about `chars` characters (the gateway's limit), made by joining rows."""
    texts, pool = [], [text for text, _ in rows]
    for k in range(count):
        parts = random.Random(k).sample(pool, len(pool))
        text = ""
        for part in parts:
            if len(text) + len(part) + 1 > chars:
                break
            text += part + " "
        texts.append(text.strip())
    cost = {}
    for explain in (False, True):
        record = {"rows": [], "ms": []}
        for text in texts:
            started = time.perf_counter()
            scored = score_texts([text], model.encoder, model.labels, infer, options, explain)
            record["ms"].append((time.perf_counter() - started) * 1e3)
            record["rows"].append(scored.rows)
        cost["with_explain" if explain else "without_explain"] = _cost(record)
    return {"messages": count, "chars_mean": round(statistics.mean(map(len, texts))), **cost}


def _cost(cost: dict) -> dict:
    ms = sorted(cost["ms"])
    return {"model_rows_per_message": round(statistics.mean(cost["rows"]), 2),
            "ms_per_message_mean": round(statistics.mean(ms), 2),
            "ms_per_message_p50": round(ms[len(ms) // 2], 2),
            "ms_per_message_p95": round(ms[int(len(ms) * 0.95)], 2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.explain_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--version-dir", type=Path, help="default: the newest version in model_repository/toxicity")
    parser.add_argument("--limit", type=int, default=0, help="rows to sample (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Triton's instances use 1)")
    parser.add_argument("--min-weight", type=float, default=ScoringOptions.explain_min_weight)
    parser.add_argument("--out", type=Path, default=Path("loadtest/results/explain_eval.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    version_dir = args.version_dir or MODEL_DIR / numbered_versions(MODEL_DIR)[-1]
    model = load_serving_model(version_dir.parent, version_dir.parent.name, version_dir.name)
    options = ScoringOptions(explain_min_weight=args.min_weight)
    rows = load_rows(args.data, args.limit, args.seed)
    infer = torchscript_infer(version_dir, args.threads)
    for _ in range(3):  # TorchScript optimises on its first calls: keep them out of the timings
        score_texts(["warm up the model, warm up"], model.encoder, model.labels, infer, options, explain=True)
    result = evaluate(rows, model, infer, options)
    result["long_message_cost"] = long_message_cost(rows, model, infer, options)
    result.update(data=str(args.data), version_dir=str(version_dir), threads=args.threads,
                  options=dataclasses.asdict(options), date=time.strftime("%Y-%m-%d"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    logger.info("%s", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
