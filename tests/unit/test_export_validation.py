"""agreement_report and check_agreement's refusal when the exported model disagrees with eager."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from export.torchscript import ExportError
from export.validation import agreement_report, check_agreement, score_texts

LABELS = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]
NAMES3 = ["non_toxic", "profanity", "insult_harassment"]


def one_hot_rows(classes, width=3):
    scores = np.full((len(classes), width), 0.1, dtype=np.float32)
    scores[np.arange(len(classes)), classes] = 0.8
    return scores


def test_identical_scores_agree_fully():
    mask = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    scores = one_hot_rows([0, 1, 2, 0])
    report = agreement_report(scores, scores.copy(), mask, NAMES3)
    assert report["rows"] == 4
    assert report["argmax_agreement"] == 1.0
    assert report["macro_f1_drop"] == 0.0
    assert report["macro_f1_reference"] == report["macro_f1_exported"]


def test_disagreement_and_f1_drop_by_hand():
    mask = np.eye(3, dtype=np.float32)[[0, 1, 2, 2]]
    reference = one_hot_rows([0, 1, 2, 2])  # all right: macro-F1 1
    candidate = one_hot_rows([0, 1, 2, 0])  # last row wrong
    report = agreement_report(reference, candidate, mask, NAMES3)
    assert report["argmax_agreement"] == pytest.approx(3 / 4)
    # candidate: non_toxic P 1/2 R 1 F1 2/3; profanity F1 1; insult P 1 R 1/2 F1 2/3
    assert report["macro_f1_reference"] == pytest.approx(1.0)
    assert report["macro_f1_exported"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert report["macro_f1_drop"] == pytest.approx(1 - 7 / 9)


class ConstantModule:
    """(ids, mask) -> the same scores for every row: argmax `top`."""

    def __init__(self, top: int):
        self.top = top

    def __call__(self, ids, mask):
        scores = torch.full((ids.shape[0], len(LABELS)), 0.1)
        scores[:, self.top] = 0.6
        return scores


@pytest.fixture
def val_dir(tmp_path):
    rows = [["gg wp", "non_toxic"], ["nice shot", "non_toxic"], ["what a\nlong game", "non_toxic"]]
    with open(tmp_path / "own_val.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["text", "label"], *rows])
    return tmp_path


def test_score_texts_keeps_input_order(minilm_tokenizer):
    def by_length(ids, mask):  # scores carry each row's token count
        return mask.sum(-1, keepdim=True).float().repeat(1, 2)

    texts = ["a a a a", "a", "a a"]
    scores = score_texts(by_length, minilm_tokenizer, texts, max_length=16, batch_size=2)
    assert scores[:, 0].tolist() == [6.0, 3.0, 4.0]


def test_check_agreement_passes_when_models_agree(val_dir, minilm_tokenizer):
    report = check_agreement(ConstantModule(0), ConstantModule(0), minilm_tokenizer, val_dir, LABELS, 32,
                             min_agreement=0.98, max_f1_drop=0.01)
    assert report["rows"] == 3
    assert report["argmax_agreement"] == 1.0


def test_check_agreement_refuses_below_the_bound(val_dir, minilm_tokenizer):
    with pytest.raises(ExportError, match=r"argmax agreement 0\.000 \(need >= 0\.98\)"):
        check_agreement(ConstantModule(0), ConstantModule(4), minilm_tokenizer, val_dir, LABELS, 32,
                        min_agreement=0.98, max_f1_drop=1.0)


def test_check_agreement_refuses_an_f1_drop_over_the_bound(val_dir, minilm_tokenizer):
    with pytest.raises(ExportError, match=r"macro-F1 drop 1\.000 \(allowed <= 0\.01\)"):
        check_agreement(ConstantModule(0), ConstantModule(4), minilm_tokenizer, val_dir, LABELS, 32,
                        min_agreement=0.0, max_f1_drop=0.01)


def test_check_agreement_needs_validation_files_and_the_default_categories(tmp_path, val_dir, minilm_tokenizer):
    with pytest.raises(ExportError, match="no validation files"):
        check_agreement(ConstantModule(0), ConstantModule(0), minilm_tokenizer, tmp_path / "empty", LABELS, 32,
                        min_agreement=0.98, max_f1_drop=0.01)
    with pytest.raises(ExportError, match="default categories"):
        check_agreement(ConstantModule(0), ConstantModule(0), minilm_tokenizer, val_dir, LABELS[:3], 32,
                        min_agreement=0.98, max_f1_drop=0.01)
