"""A bag-of-words baseline: TF-IDF word and character n-grams + logistic regression, trained
on one source's train split as toxic vs non_toxic.

It is the bar a transformer must clear in a domain (`moderation-evaluate --model tfidf:conda`):
scored through the same evaluation as every model, on the same rows. It only knows toxic or not,
so its whole toxic score sits on the first toxic category and only its binary numbers mean
anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.categories import Categories
from training.data import allowed_masks, load_split
from training.metrics import binary_labels

PREFIX = "tfidf:"  # --model tfidf:<source>
MAX_FEATURES = 200_000  # per n-gram family; ample for chat-sized corpora


class BaselineError(ValueError):
    """The baseline cannot be trained; the message says why."""


def text_features():
    """TF-IDF word 1-2-grams and character 2-5-grams, as one scikit-learn feature union."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_features=MAX_FEATURES),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2,
                        max_features=MAX_FEATURES),
    )


def toxic_classifier(seed: int):
    """The logistic regression on those features, classes balanced."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced", random_state=seed)


@dataclass
class BagOfWordsScorer:
    source: str
    data_dir: Path
    categories: Categories
    seed: int = 13
    kind: str = "baseline"
    labels: list[str] = field(init=False)

    def __post_init__(self):
        from sklearn.pipeline import make_pipeline

        rows = [row for row in load_split(self.data_dir, self.categories, "train") if row.source == self.source]
        truth = binary_labels(allowed_masks(rows, len(self.categories.names))) if rows else np.zeros(0, dtype=int)
        keep = truth >= 0
        if len(set(truth[keep].tolist())) < 2:
            raise BaselineError(f"source {self.source!r} has no toxic and non-toxic train rows in {self.data_dir}")
        self.pipeline = make_pipeline(text_features(), toxic_classifier(self.seed))
        self.pipeline.fit([row.text for row, k in zip(rows, keep, strict=True) if k], truth[keep])
        self.labels = list(self.categories.names)
        self.name = f"tfidf-{self.source}"
        self.info = {"kind": self.kind, "source": self.source, "train_rows": int(keep.sum())}

    def score(self, texts: list[str]) -> np.ndarray:
        toxic = self.pipeline.predict_proba(list(texts))[:, 1]
        scores = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        scores[:, 0] = 1.0 - toxic
        scores[:, 1] = toxic
        return scores
