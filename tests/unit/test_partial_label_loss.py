"""partial_label_loss: -log of the probability mass inside the allowed set."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.partial_label_trainer import PadCollator, partial_label_loss, softmax

LOGITS = torch.tensor([[2.0, -1.0, 0.5, 0.0, 1.0], [0.1, 0.2, 3.0, -2.0, 0.0], [-1.0, 4.0, 0.0, 1.0, 2.0]])


def test_one_hot_mask_equals_cross_entropy():
    targets = torch.tensor([0, 2, 4])
    mask = F.one_hot(targets, num_classes=5).float()
    assert torch.allclose(partial_label_loss(LOGITS, mask), F.cross_entropy(LOGITS, targets), atol=1e-6)


def test_set_mask_is_minus_log_of_the_mass_in_the_set():
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 1, 0, 1]], dtype=torch.float32)
    probs = LOGITS.softmax(-1)
    expected = -torch.log((probs * mask).sum(-1)).mean()
    assert torch.allclose(partial_label_loss(LOGITS, mask), expected, atol=1e-6)
    # the set's loss is lower than cross-entropy towards any single member of it
    row = LOGITS[:1]
    set_loss = partial_label_loss(row, mask[:1])
    for member in (1, 2, 3, 4):
        assert set_loss < F.cross_entropy(row, torch.tensor([member]))


def test_all_categories_allowed_costs_nothing():
    assert partial_label_loss(LOGITS, torch.ones_like(LOGITS)).abs() < 1e-6


def test_loss_has_gradients_only_towards_the_set():
    logits = LOGITS[:1].clone().requires_grad_(True)
    partial_label_loss(logits, torch.tensor([[0.0, 0.0, 1.0, 0.0, 1.0]])).backward()
    grad = logits.grad[0]
    assert grad[2] < 0 and grad[4] < 0  # raise the allowed logits
    assert grad[0] > 0 and grad[1] > 0 and grad[3] > 0  # lower the others
    assert torch.isfinite(grad).all()


def test_numpy_softmax_matches_torch():
    assert torch.allclose(torch.from_numpy(softmax(LOGITS.numpy())), LOGITS.softmax(-1), atol=1e-6)


def test_pad_collator_pads_ids_and_masks():
    batch = PadCollator(pad_token_id=0)([
        {"input_ids": [101, 5, 102], "labels": [1.0, 0.0]},
        {"input_ids": [101, 102], "labels": [0.0, 1.0]},
    ])
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["input_ids"].dtype == torch.long
    assert batch["labels"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_weighted_loss_is_the_weighted_mean_of_per_example_losses():
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 1, 0, 1]], dtype=torch.float32)
    per_example = -torch.log((LOGITS.softmax(-1) * mask).sum(-1))
    weights = torch.tensor([3.0, 1.0, 0.5])
    expected = (per_example * weights).sum() / weights.sum()
    assert torch.allclose(partial_label_loss(LOGITS, mask, weights), expected, atol=1e-6)
    assert torch.allclose(partial_label_loss(LOGITS, mask, torch.ones(3)), partial_label_loss(LOGITS, mask), atol=1e-6)


def test_pad_collator_passes_weights_when_present():
    batch = PadCollator(pad_token_id=0)([
        {"input_ids": [101, 102], "labels": [1.0, 0.0], "weights": 2.5},
        {"input_ids": [101, 102], "labels": [0.0, 1.0], "weights": 0.5},
    ])
    assert batch["weights"].tolist() == [2.5, 0.5]
