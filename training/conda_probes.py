"""Cheap probes of what CONDA offers beyond one labelled line, run before paying for a
transformer experiment (issue 14, parts 1 and 3). They print numbers only, never texts.

    python -m training.conda_probes context        # does the conversation help a bag of words?
    python -m training.conda_probes context-cost   # what would context cost the served model?
    python -m training.conda_probes token-lexicon  # can T tokens name an explicit line's category?
    python -m training.conda_probes ceiling --model M  # how far does blending with a bag of words go?

`context`: the bag-of-words baseline's features and classifier (training.baseline) trained on
every conda_train row (binary toxic vs not), scored on the de-duplicated conda_val rows, with and
without the previous messages of the same conversation (`conversation_id`, ordered by
`chat_time`; each marked as the same player or another) as a second bag of words.

`context-cost`: tokens per conda_val line and eager CPU time per line of the served architecture
(a checkpoint, `--model`, default the packaged MiniLM with a 5-way head) at 128 tokens, scored
alone and as a pair with its previous three messages (`moderation-train --context-messages 3`),
on the current torch threads (`--threads`).

`token-lexicon`: a word -> category lexicon learned from the public sources' exact labels (a word
belongs to a category when at least 8 exact toxic rows hold it, 70% of the rows that hold it are
toxic and 60% of those are that category), applied to the `T` tokens of CONDA's explicit lines
(those whose token labels line up with their words). Only exact labels can teach a word's
category, and most of the public data's exact toxic labels are hate (HatEval, Davidson
`hate_speech`), while its insults and profanity are mostly partial labels (OLID, Davidson
`offensive`, Jigsaw `toxic`). It prints the lexicon's size per category, the category it gives a
few everyday game-chat insults (our words, not the data's), and how the explicit lines' partial
label would be narrowed.

`ceiling`: binary toxic-vs-not on the conda_val rows `moderation-evaluate` scores, for a model
(`--model`: a checkpoint or a version directory), the bag-of-words baseline trained on
conda_train, and the plain mean of their toxic scores: macro-F1 at 0.5, the best macro-F1 over
thresholds (an upper bound: the threshold is picked on these rows) and AUC. Where two models that
err differently get to together is a guide (not a bound) to what one more model of either kind is
likely to reach on these labels. It also
counts the rows where both are sure and agree against the label (numbers only; read them by hand).
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

from training.categories import NEGATIVE_CATEGORY, load_categories
from training.data import DEFAULT_DATA_DIR, dedup_key, load_source_file, load_split, message_text, previous_messages

WORD = re.compile(r"[a-z0-9']+")
EVERYDAY_INSULTS = ("stupid", "dumb", "idiot", "noob", "trash", "loser", "moron")
SURE = 0.8  # a toxic score every scorer must pass (or stay under 1 - SURE) to count as sure


def read_conda(data_dir: Path, split: str) -> list[dict]:
    with open(data_dir / f"conda_{split}.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def context_probe(data_dir: Path) -> None:
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score, roc_auc_score

    from training.baseline import text_features, toxic_classifier

    conda = load_categories().sources["conda"]
    train, val = read_conda(data_dir, "train"), read_conda(data_dir, "val")
    seen, unique_val = set(), []
    for row in val:  # the evaluation's de-duplication: the first row of each text
        key = dedup_key(message_text(row["text"], conda))
        if key and key not in seen:
            seen.add(key)
            unique_val.append(row)
    y_train, y_val = ([int(NEGATIVE_CATEGORY not in conda.labels[row["label"]]) for row in rows]
                      for rows in (train, unique_val))
    words = text_features()
    x_train = words.fit_transform([message_text(row["text"], conda) for row in train])
    x_val = words.transform([message_text(row["text"], conda) for row in unique_val])

    def fit_and_score(train_features, val_features) -> str:
        model = toxic_classifier(seed=13).fit(train_features, y_train)
        toxic = model.predict_proba(val_features)[:, 1]
        return f"{f1_score(y_val, toxic >= 0.5, average='macro'):.3f} | {roc_auc_score(y_val, toxic):.3f}"

    print(f"conda_val: {len(unique_val)} rows; TF-IDF + LR trained on {len(train)} conda_train rows")
    print("| input | macro-F1 | AUC |\n|---|---:|---:|")
    print(f"| message only | {fit_and_score(x_train, x_val)} |")
    for count in (1, 3):
        context = previous_messages(train + val, count, conda)  # texts only: what a gateway would be sent
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        c_train = vectorizer.fit_transform([context[row["id"]] for row in train])
        c_val = vectorizer.transform([context[row["id"]] for row in unique_val])
        for weight in (0.3, 1.0):
            scores = fit_and_score(hstack([x_train, weight * c_train]).tocsr(), hstack([x_val, weight * c_val]).tocsr())
            print(f"| message + {count} previous (weight {weight}) | {scores} |")


def token_lexicon_probe(data_dir: Path) -> None:
    categories = load_categories()
    counts: dict[str, Counter] = defaultdict(Counter)
    for name, source in categories.sources.items():
        path = data_dir / f"{source.file_prefix}_train.csv"
        if name in ("conda", "own") or not path.exists():
            continue
        for example in load_source_file(path, source, categories):
            if example.exact is not None:
                for word in set(WORD.findall(example.text.lower())):
                    counts[word][example.exact] += 1
    lexicon = {}
    for word, per_category in counts.items():
        toxic = sum(n for index, n in per_category.items() if index)
        if toxic < 8 or toxic / sum(per_category.values()) < 0.7:
            continue
        index, n = max(((i, n) for i, n in per_category.items() if i), key=lambda pair: pair[1])
        if n / toxic >= 0.6:
            lexicon[word] = index
    per_category = Counter(categories.names[index] for index in lexicon.values())
    print(f"lexicon: {len(lexicon)} words; per category: {dict(per_category)}")
    print("everyday insults: " + ", ".join(
        f"{word} -> {categories.names[lexicon[word]] if word in lexicon else '(not in the lexicon)'}"
        for word in EVERYDAY_INSULTS))
    narrowed = Counter()
    for row in read_conda(data_dir, "train"):
        tokens, labels = row["text"].split(), row["token_labels"].split()
        if row["label"] != "explicit_toxic" or len(tokens) != len(labels):  # labels that do not line up: skipped
            continue
        found = frozenset(categories.names[lexicon[word]] for token, label in zip(tokens, labels, strict=True)
                          if label == "T" for word in WORD.findall(token.lower()) if word in lexicon)
        narrowed["|".join(sorted(found)) or "(no T word in the lexicon: label kept)"] += 1
    print("explicit_toxic train lines by the categories their T words would give:")
    for label, n in narrowed.most_common():
        print(f"  {n:5d}  {label}")


def context_cost_probe(data_dir: Path, model_path: str, threads: int) -> None:
    import time

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from contract.normalization import normalizer
    from training.base_models import resolve_base_model
    from training.partial_label_trainer import encode_texts
    from training.train import predict_probs

    if threads:
        torch.set_num_threads(threads)
    categories = load_categories()
    rows = load_split(data_dir, categories, "val", context_messages=3)
    rows = [row for row in rows if row.source == "conda"]
    path = resolve_base_model(model_path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(categories.names)).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts, contexts = [row.text for row in rows], [row.context for row in rows]
    print(f"conda_val: {len(rows)} lines, {sum(map(bool, contexts))} with a context; {torch.get_num_threads()} threads")
    print("| input | tokens per line | ms per line |\n|---|---:|---:|")
    for name, pairs in (("message only", None), ("message + 3 previous", contexts)):
        ids = encode_texts(tokenizer, texts, pairs, 128, normalizer(getattr(model.config, "text_normalization", None)))
        predict_probs(model, tokenizer, texts[:256], 128, batch_size=32, contexts=pairs[:256] if pairs else None)  # warm-up
        started = time.perf_counter()
        predict_probs(model, tokenizer, texts, 128, batch_size=32, contexts=pairs)
        ms = 1000 * (time.perf_counter() - started) / len(texts)
        print(f"| {name} | {sum(map(len, ids)) / len(ids):.1f} | {ms:.2f} |")


def threshold_table(truth, toxic_scores: dict) -> list[str]:
    """Markdown rows: name | macro-F1 at 0.5 | best macro-F1 (threshold) | AUC, on rows of known truth."""
    import numpy as np
    from sklearn.metrics import f1_score, roc_auc_score

    keep = truth >= 0
    lines = ["| scores | macro-F1 at 0.5 | best macro-F1 (threshold) | AUC |", "|---|---:|---:|---:|"]
    for name, toxic in toxic_scores.items():
        y, score = truth[keep], np.asarray(toxic)[keep]
        best = max((f1_score(y, score >= t, average="macro"), t) for t in np.round(np.arange(0.05, 0.96, 0.01), 2))
        auc = roc_auc_score(y, score) if len(set(y.tolist())) == 2 else float("nan")
        lines.append(f"| {name} | {f1_score(y, score >= 0.5, average='macro'):.3f} | {best[0]:.3f} ({best[1]:.2f}) "
                     f"| {auc:.3f} |")
    return lines


def ceiling_probe(data_dir: Path, model_path: str, threads: int) -> None:
    import torch

    from training.baseline import BagOfWordsScorer
    from training.data import allowed_masks
    from training.metrics import binary_labels
    from training.scorers import open_model

    if not model_path:
        raise SystemExit("ceiling: give --model (a checkpoint or a model-repository version directory)")
    if threads:
        torch.set_num_threads(threads)
    categories = load_categories()
    rows = [row for row in load_split(data_dir, categories, "val") if row.source == "conda"]
    texts = [row.text for row in rows]
    truth = binary_labels(allowed_masks(rows, len(categories.names)))
    model = 1.0 - open_model(model_path).score(texts)[:, 0]
    bag = BagOfWordsScorer("conda", data_dir, categories).score(texts)[:, 1]
    print(f"conda_val: {int((truth >= 0).sum())} rows of known toxicity; bag of words trained on conda_train")
    mean = (model + bag) / 2
    print("\n".join(threshold_table(truth, {"model": model, "bag of words": bag, "mean of the two": mean})))
    disputed = confident_disagreements(truth, model, bag)
    errors = int(errors_at_half(truth, mean).sum())
    print(f"the mean errs on {errors} rows; on {int(disputed.sum())} of them both scorers are sure and agree "
          f"against the label ({int((disputed & (truth == 0)).sum())} labelled clean, both >= {SURE}; "
          f"{int((disputed & (truth == 1)).sum())} labelled toxic, both <= {1 - SURE:.1f}): read a sample of these "
          "before trusting the last points of macro-F1")
    flipped = set_right(truth, disputed)
    print("if every one of them were a wrong label, set right:")
    print("\n".join(threshold_table(flipped, {"model": model, "mean of the two": mean})))


def errors_at_half(truth, toxic):
    """A boolean mask of the labelled rows a toxic score >= 0.5 gets wrong."""
    return (truth >= 0) & ((toxic >= 0.5) != (truth == 1))


def set_right(truth, disputed):
    """The labels with the disputed rows' toxic and clean swapped (-1, no label, stays -1)."""
    import numpy as np

    return np.where(disputed & (truth >= 0), 1 - truth, truth)


def confident_disagreements(truth, *toxic_scores):
    """A boolean mask: rows labelled clean that every scorer scores >= SURE, and rows labelled toxic
    that every scorer scores <= 1 - SURE; there the label, not the models, is the first suspect."""
    import numpy as np

    scores = np.vstack(toxic_scores)
    return ((truth == 0) & (scores >= SURE).all(axis=0)) | ((truth == 1) & (scores <= 1 - SURE).all(axis=0))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="training.conda_probes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("context", "context-cost", "token-lexicon", "ceiling"))
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--model", default="", help="context-cost: a checkpoint (default: the packaged MiniLM); "
                        "ceiling: a checkpoint or version directory (required)")
    parser.add_argument("--threads", type=int, default=0, help="context-cost, ceiling: torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.probe == "context-cost":
        context_cost_probe(Path(args.data_dir), args.model, args.threads)
    elif args.probe == "ceiling":
        ceiling_probe(Path(args.data_dir), args.model, args.threads)
    else:
        (context_probe if args.probe == "context" else token_lexicon_probe)(Path(args.data_dir))


if __name__ == "__main__":
    main()
