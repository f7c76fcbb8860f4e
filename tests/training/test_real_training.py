"""A real, tiny training run: the packaged MiniLM, 64 real training rows, 8 optimizer steps of
moderation-train's trainer. The partial-label loss on those rows must go down.

Dataset texts are never printed: assertion messages carry losses only.
"""

from __future__ import annotations

import pytest

from training.categories import load_categories
from training.data import load_split
from training.experiments import cap_rows

pytestmark = pytest.mark.integration  # loads and trains the packaged MiniLM's real weights

TRAIN_ROWS = 64
MAX_STEPS = 8
BATCH_SIZE = 8  # 8 steps x 8 rows: one pass over the 64 rows
MAX_LENGTH = 48  # tokens; enough for tweets, and keeps the run to a few seconds
THREADS = 2  # the CI machine has two cores
# 4x the recipe's 5e-5, so 8 steps move the loss well past noise: measured drops on three row
# samples were 0.12-0.17 here against 0.03-0.04 at 5e-5.
LEARNING_RATE = 2e-4


@pytest.fixture
def two_threads():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


def _mean_loss(model, tokenizer, dataset) -> float:
    """The loss the trainer minimises over its whole training set in one batch (partial-label,
    weighted under class_weight, on the normalised text), with dropout off."""
    import torch

    from training.partial_label_trainer import PadCollator, partial_label_loss

    batch = PadCollator(tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.inference_mode():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return float(partial_label_loss(logits.float(), batch["labels"], batch.get("weights")))


@pytest.mark.parametrize(("imbalance", "normalization"), [("oversample", "none"), ("class_weight", "chat")])
def test_a_few_real_steps_lower_the_training_loss(shared_data_dir, minilm_dir, tmp_path, two_threads,
                                                  imbalance, normalization):
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.train import TrainOptions, _make_trainer

    categories = load_categories()
    # the public sources, on whose rows the learning rate above was tuned; game chat's short lines
    # need more than 8 steps to move the loss past noise
    public = [row for row in load_split(shared_data_dir, categories, "train") if row.source != "conda"]
    rows = cap_rows(public, TRAIN_ROWS, seed=13, salt="real-training-test")
    assert len(rows) == TRAIN_ROWS
    options = TrainOptions(base_model=str(minilm_dir), output_dir=str(tmp_path), max_steps=MAX_STEPS,
                           batch_size=BATCH_SIZE, max_length=MAX_LENGTH, learning_rate=LEARNING_RATE, seed=13,
                           imbalance=imbalance, normalization=normalization)
    transformers.set_seed(options.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir), num_labels=len(categories.names))
    trainer = _make_trainer(options, model, tokenizer, categories, rows, None, tmp_path)
    before = _mean_loss(model, tokenizer, trainer.train_dataset)
    result = trainer.train()
    after = _mean_loss(model, tokenizer, trainer.train_dataset)

    assert result.global_step == MAX_STEPS
    assert after < before - 0.05, f"loss on the training rows went from {before:.4f} to {after:.4f}"
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_class_weights_reach_the_loss(shared_data_dir, minilm_dir, tmp_path):
    """The Trainer drops batch keys its model's forward() does not take unless told not to; the
    per-example weights must survive into compute_loss's inputs."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.train import TrainOptions, _make_trainer

    categories = load_categories()
    rows = cap_rows(load_split(shared_data_dir, categories, "train"), 16, seed=13, salt="weights-test")
    options = TrainOptions(base_model=str(minilm_dir), output_dir=str(tmp_path), max_steps=1, batch_size=8,
                           max_length=MAX_LENGTH, imbalance="class_weight")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(minilm_dir), num_labels=len(categories.names))
    trainer = _make_trainer(options, model, tokenizer, categories, rows, None, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    assert "weights" in batch and batch["weights"].shape == (8,)
    assert float(batch["weights"].min()) > 0
