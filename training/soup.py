"""Averages the weights of fine-tuned checkpoints of one base model into one checkpoint (a "model
soup"), then rescales its logits so that its scores stay calibrated.

Runs of one base and recipe can be averaged weight by weight, keeping much of what each learned
in one model of the same size. The mean's logits are smaller than either parent's, so its scores
are flatter than the truth; one temperature, fitted on the validation rows and folded into the
output layer, recalibrates them without changing any row's top category
(docs/decisions/0023-model-soup-v5.md).

    moderation-soup runs/a/model runs/b/model --out-dir runs/soup/model [--weights 0.4 0.6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

from contract import tensors
from training.categories import CategoryFileError
from training.data import DEFAULT_DATA_DIR, DataFileError, load_split
from training.scorers import DEFAULT_MAX_LENGTH, ScorerError

logger = logging.getLogger(__name__)

# Keys of a checkpoint's config that must agree for the weights to mean the same thing.
SAME_CONFIG = ("architectures", "model_type", "num_labels", "id2label", "hidden_size", "num_hidden_layers",
               "num_attention_heads", "vocab_size", "problem_type", "text_normalization", "context_messages")
# 1.2% apart, and 1 itself so that a calibrated model is left alone
TEMPERATURES = np.union1d(np.exp(np.linspace(np.log(0.05), np.log(5.0), 401)), [1.0])
TOKENIZER_FILES = tensors.TOKENIZER_FILES + tensors.OPTIONAL_TOKENIZER_FILES


class SoupError(ValueError):
    """The checkpoints cannot be averaged; the message says why."""


def average_state_dicts(states: list[dict], weights: list[float] | None = None) -> dict:
    """The element-wise (weighted) mean of floating-point tensors; other tensors (position ids) must
    be equal. weights, one per state, are normalised to sum to 1; None means equal weights."""
    import torch

    mix = check_weights(weights, len(states))
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise SoupError(f"the checkpoints hold different weights: {sorted(keys ^ set(state))[:5]}")
    mean = {}
    for key, first in states[0].items():
        if any(state[key].shape != first.shape for state in states):
            raise SoupError(f"weight {key} has different shapes: {[tuple(s[key].shape) for s in states]}")
        if first.is_floating_point():
            stacked = torch.stack([state[key].float() for state in states])
            mean[key] = torch.tensordot(torch.as_tensor(mix, dtype=stacked.dtype), stacked, dims=1).to(first.dtype)
        elif all(torch.equal(state[key], first) for state in states):
            mean[key] = first.clone()
        else:
            raise SoupError(f"integer weight {key} differs between the checkpoints")
    return mean


def check_weights(weights: list[float] | None, count: int) -> list[float]:
    """The mixing weights normalised to sum to 1: one positive finite number per checkpoint."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise SoupError(f"{len(weights)} weights for {count} checkpoints")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise SoupError(f"weights must be positive numbers: {weights}")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def check_configs(configs: list[dict]) -> None:
    for key in SAME_CONFIG:
        values = [config.get(key) for config in configs]
        if any(value != values[0] for value in values):
            raise SoupError(f"the checkpoints differ in {key}: {values} (only runs of one base and recipe can be averaged)")


def fit_temperature(probs: np.ndarray, allowed: np.ndarray) -> tuple[float, float, float]:
    """(temperature, loss at 1, loss at the temperature): the T that minimises the mean partial-label
    loss -log(sum of softmax(log p / T) over each row's allowed categories).

    Args:
        probs: softmax scores [rows, categories] at temperature 1.
        allowed: 0/1 [rows, categories], the categories each row's label allows.
    """
    import torch

    from training.partial_label_trainer import partial_label_loss

    logits = torch.log(torch.as_tensor(np.asarray(probs), dtype=torch.float64).clamp(1e-12, 1.0))
    mask = torch.as_tensor(np.asarray(allowed), dtype=torch.float64)
    if not (mask > 0).any(dim=1).all():
        raise SoupError("a validation row allows no category")

    def loss(t: float) -> float:
        return float(partial_label_loss(logits / t, mask))

    losses = [loss(t) for t in TEMPERATURES]
    best = int(np.argmin(losses))
    if best in (0, len(TEMPERATURES) - 1):
        logger.warning("the best temperature, %.3f, is at the edge of the searched range", TEMPERATURES[best])
    return float(TEMPERATURES[best]), loss(1.0), losses[best]


def output_layer(model, num_labels: int):
    """The one Linear layer that produces the logits (BERT's `classifier`, RoBERTa's `out_proj`)."""
    import torch

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_labels]
    if len(layers) != 1:
        raise SoupError(f"expected one output layer with {num_labels} outputs, found {len(layers)}")
    return layers[0]


def scale_logits(model, temperature: float) -> None:
    """Divides the output layer's weight and bias by temperature: logits / T, exactly, in the weights."""
    import torch

    layer = output_layer(model, model.config.num_labels)
    with torch.no_grad():
        layer.weight.div_(temperature)
        if layer.bias is not None:
            layer.bias.div_(temperature)


def make_soup(checkpoints: list[Path], out_dir: Path, data_dir: Path | None, categories_path: str = "",
              weights: list[float] | None = None) -> dict:
    """Writes the averaged (and, with data_dir, calibrated) checkpoint to out_dir; returns soup.json.

    Everything is checked before anything is written, and the checkpoint appears in out_dir only
    when complete (it is written next to it, then renamed).
    """
    from transformers import AutoModelForSequenceClassification

    from training.categories import DEFAULT_CATEGORIES_PATH, load_categories
    from training.data import allowed_masks
    from training.scorers import load_tokenizer
    from training.train import predict_probs

    check_paths(checkpoints, out_dir)
    mix = check_weights(weights, len(checkpoints))
    try:
        tokenizer = load_tokenizer(checkpoints[0])  # the soup needs one, calibrated or not
    except ScorerError as err:
        raise SoupError(f"{checkpoints[0]} has no usable tokenizer ({err})") from None
    models = [AutoModelForSequenceClassification.from_pretrained(str(path)) for path in checkpoints]
    check_configs([model.config.to_dict() for model in models])
    soup = models[0]
    soup.load_state_dict(average_state_dicts([model.state_dict() for model in models], mix))
    del models[1:]
    soup.eval()
    info = {"checkpoints": [str(path) for path in checkpoints], "weights": [round(w, 6) for w in mix],
            "temperature": 1.0}
    if data_dir is not None:
        categories = load_categories(categories_path or DEFAULT_CATEGORIES_PATH)
        if [soup.config.id2label[i] for i in range(soup.config.num_labels)] != list(categories.names):
            raise SoupError("the checkpoints' categories differ from the categories file's (pass --categories)")
        rows = load_split(Path(data_dir), categories, "val")
        if not rows:
            raise DataFileError(f"no validation files in {data_dir}")
        logger.info("fitting the temperature on %d validation rows", len(rows))
        probs = predict_probs(soup, tokenizer, [row.text for row in rows], DEFAULT_MAX_LENGTH)
        temperature, before, after = fit_temperature(probs, allowed_masks(rows, len(categories.names)))
        scale_logits(soup, temperature)
        info.update(temperature=round(temperature, 4), validation_rows=len(rows), data_dir=str(data_dir),
                    loss_at_1=round(before, 5), loss_at_temperature=round(after, 5))
        logger.info("temperature %.3f: validation loss %.4f -> %.4f", temperature, before, after)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    soup.save_pretrained(str(staging))
    for name in TOKENIZER_FILES:
        if (checkpoints[0] / name).exists():
            shutil.copyfile(checkpoints[0] / name, staging / name)
    (staging / "soup.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if out_dir.exists():
        out_dir.rmdir()  # check_paths allowed only an empty one
    staging.rename(out_dir)
    return info


def check_paths(checkpoints: list[Path], out_dir: Path) -> None:
    """At least two checkpoints with the same tokenizer; out_dir new or empty and none of them."""
    if len(checkpoints) < 2:
        raise SoupError("give at least two checkpoints")
    if out_dir.resolve() in {path.resolve() for path in checkpoints}:
        raise SoupError(f"--out-dir {out_dir} is one of the checkpoints")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SoupError(f"--out-dir {out_dir} exists and is not an empty directory")
    for path in checkpoints:
        if not path.is_dir():
            raise SoupError(f"checkpoint directory not found: {path}")
    tokenizers = {_tokenizer_digest(path) for path in checkpoints}
    if len(tokenizers) > 1:
        raise SoupError("the checkpoints' tokenizer files differ")


def _tokenizer_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (path / name).is_file():
            digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    return digest.hexdigest()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-soup", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint directories of one base and recipe")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the averaged checkpoint goes")
    parser.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR),
                        help="validation files the temperature is fitted on (default: %(default)s)")
    parser.add_argument("--weights", type=float, nargs="+", default=None,
                        help="one mixing weight per checkpoint, normalised to sum to 1 (default: equal)")
    parser.add_argument("--no-calibrate", action="store_true", help="average only; keep temperature 1")
    parser.add_argument("--categories", default="", help="categories file (default: the packaged one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        info = make_soup(args.checkpoints, args.out_dir, None if args.no_calibrate else args.data_dir, args.categories,
                         args.weights)
    except (SoupError, DataFileError, CategoryFileError, OSError) as err:
        sys.exit(f"moderation-soup: {err}")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
