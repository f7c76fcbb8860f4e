"""Hugging Face `Trainer` pieces for a softmax classifier trained on partial labels.

A label is a multi-hot mask over the categories the source allows. The loss is the negative log
of the probability mass inside that set: -log sum_{c in allowed} p(c). With one allowed category
this is ordinary cross-entropy; with several (OLID "offensive" = some toxic category) the model
is only asked to put its mass somewhere in the set, never taught a category the data can't tell.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import EvalPrediction, Trainer

from training.data import Example, allowed_masks
from training.metrics import binary_metrics, multiclass_metrics


def partial_label_loss(logits: torch.Tensor, allowed_mask: torch.Tensor,
                       weights: torch.Tensor | None = None) -> torch.Tensor:
    all_classes = torch.logsumexp(logits, dim=-1)
    inside = torch.logsumexp(logits.masked_fill(allowed_mask <= 0, float("-inf")), dim=-1)
    per_example = all_classes - inside
    if weights is None:
        return per_example.mean()
    return (per_example * weights).sum() / weights.sum()


class PartialLabelTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        allowed_mask = inputs.pop("labels")
        weights = inputs.pop("weights", None)
        outputs = model(**inputs)
        loss = partial_label_loss(outputs.logits.float(), allowed_mask, weights)
        return (loss, outputs) if return_outputs else loss


def encode_texts(tokenizer, texts: list[str], contexts: list[str] | None, max_length: int,
                 normalize=None) -> list[list[int]]:
    """Token ids of each text, or of the pair (text, context) where a context is given, message
    first. Only the context is truncated, from its start, so the most recent messages stay; a
    message that leaves no room for context is encoded alone. Token type ids are not kept: the
    served model takes ids and mask only, and the [SEP] between the two tells them apart."""
    if normalize is not None:
        texts = [normalize(text) for text in texts]
        contexts = [normalize(context) for context in contexts] if contexts else contexts
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    if not contexts:
        return ids
    if len(contexts) != len(texts):
        raise ValueError(f"{len(contexts)} contexts for {len(texts)} texts")
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    single_specials = tokenizer.num_special_tokens_to_add(pair=False)
    paired = [i for i, context in enumerate(contexts) if context.strip() and len(ids[i]) - single_specials < room]
    if paired:
        side, tokenizer.truncation_side = tokenizer.truncation_side, "left"
        try:
            encoded = tokenizer([texts[i] for i in paired], [contexts[i] for i in paired],
                                truncation="only_second", max_length=max_length)["input_ids"]
        finally:
            tokenizer.truncation_side = side
        for i, row in zip(paired, encoded, strict=True):
            ids[i] = row
    return ids


def pad_ids(rows: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and their attention mask."""
    longest = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


class EncodedExamples(Dataset):
    """Tokenised examples; padding happens per batch in `PadCollator`.

    `normalize` is the version's text normalisation (contract.normalization), applied before
    tokenising exactly as the gateway will; `weights` are optional per-example loss weights.
    """

    def __init__(self, examples: list[Example], tokenizer, num_categories: int, max_length: int,
                 normalize=None, weights: list[float] | None = None):
        self._input_ids = encode_texts(tokenizer, [example.text for example in examples],
                                       [example.context for example in examples], max_length, normalize)
        self._masks = allowed_masks(examples, num_categories)
        self._weights = None if weights is None else np.asarray(weights, dtype=np.float32)

    def __len__(self) -> int:
        return len(self._input_ids)

    def __getitem__(self, index: int) -> dict:
        item = {"input_ids": self._input_ids[index], "labels": self._masks[index]}
        if self._weights is not None:
            item["weights"] = self._weights[index]
        return item

    @property
    def allowed_masks(self) -> np.ndarray:
        return self._masks


class PadCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict]) -> dict:
        input_ids, attention_mask = pad_ids([item["input_ids"] for item in batch], self.pad_token_id)
        labels = torch.from_numpy(np.stack([item["labels"] for item in batch]))
        collated = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if "weights" in batch[0]:
            collated["weights"] = torch.tensor([float(item["weights"]) for item in batch])
        return collated


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def make_compute_metrics(names):
    """Trainer callback: macro-F1 over exact rows (the selection metric) plus binary metrics."""

    def compute_metrics(prediction: EvalPrediction) -> dict:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        probs, masks = softmax(logits), prediction.label_ids
        multi, binary = multiclass_metrics(probs, masks, names), binary_metrics(probs, masks)
        metrics = {
            "macro_f1": multi["macro_f1"],
            "accuracy": multi["accuracy"],
            "binary_f1": binary["f1"],
            "binary_auc": binary["auc"],
        }
        metrics.update({f"f1_{n}": v["f1"] for n, v in multi["per_category"].items()})
        return metrics

    return compute_metrics
