"""Real model versions derived from a shipped one, for lifecycle tests and switch benchmarks.

Each wraps the version's TorchScript file in another scripted module, so the result is a real
model with its own outputs (not a stub): a temperature-scaled copy (same categories, different
scores) or a copy with one extra category.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from contract import tensors
from contract.manifest import write_manifest


class Temperature(torch.nn.Module):
    """softmax(log(p) / T): the same categories and ranking, different scores."""

    def __init__(self, base, temperature: float):
        super().__init__()
        self.base = base
        self.temperature = temperature

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.base(input_ids, attention_mask)
        return torch.softmax(torch.log(scores.clamp_min(1e-9)) / self.temperature, dim=-1)


class ExtraCategory(torch.nn.Module):
    """The same model with one more category, which takes a fixed share of the mass."""

    def __init__(self, base, share: float):
        super().__init__()
        self.base = base
        self.share = share

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.base(input_ids, attention_mask) * (1.0 - self.share)
        extra = torch.full_like(scores[:, :1], self.share)
        return torch.cat([scores, extra], dim=1)


def latest_version_dir(model_dir: Path) -> Path:
    return max((p for p in model_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def make_variant_export(source: Path, target: Path, wrap, extra_labels=()) -> Path:
    """Copies version directory `source` to `target` with model.pt replaced by wrap(model)."""
    shutil.copytree(source, target)
    base = torch.jit.load(str(source / tensors.MODEL_FILENAME), map_location="cpu").float().eval()
    torch.jit.save(torch.jit.script(wrap(base)), str(target / tensors.MODEL_FILENAME))
    if extra_labels:
        labels = (source / tensors.LABELS_FILENAME).read_text().split() + list(extra_labels)
        (target / tensors.LABELS_FILENAME).write_text("\n".join(labels) + "\n")
    write_manifest(target)  # as moderation-export writes it
    return target


def copy_repository(source_repository: Path, target_repository: Path) -> Path:
    """A model repository holding the config and the latest version of `source`, as version 1."""
    model_dir = target_repository / tensors.MODEL_NAME
    model_dir.mkdir(parents=True)
    shutil.copy(source_repository / tensors.MODEL_NAME / "config.pbtxt", model_dir)
    shutil.copytree(latest_version_dir(source_repository / tensors.MODEL_NAME), model_dir / "1")
    return model_dir
