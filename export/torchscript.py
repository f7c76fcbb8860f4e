"""Hugging Face checkpoint -> TorchScript scoring module, checked against the eager model.

The traced module takes (token ids, attention mask), both int64 [batch, seq], and returns fp32
softmax scores [batch, categories]. Tracing records one path through the code, so it is traced
on a batch WITH padding (HF attention may skip the mask when nothing is padded) and then
compared with the eager model on texts of several lengths, alone and as one mixed batch.
"""

from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass

import torch

from training.scorers import encode

PRECISIONS = ("fp32", "int8", "fp16")  # fp16 is for GPU serving only

# Texts of clearly different token lengths, for tracing and parity checks (no real chat).
PARITY_TEXTS = (
    "gg",
    "nice shot, well played",
    "can someone explain why the healer keeps standing in the fire on the last boss phase",
    "ok " * 40 + "that was a long round and I think we should switch strategy before the next map",
)


class ExportError(RuntimeError):
    """The export would produce a wrong or unusable model; nothing was written."""


class ScoringModule(torch.nn.Module):
    """(ids, mask) -> softmax scores; the fixed signature Triton serves."""

    def __init__(self, classifier: torch.nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits
        return torch.softmax(logits.float(), dim=-1)


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    argmax_agree: bool
    texts: int


def load_classifier(checkpoint: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    return model.eval(), tokenizer


DEFAULT_FP32_LAYERS = 2  # int8: the first encoder layers that stay fp32 (see int8_linear_names)
_ENCODER_LAYER = re.compile(r"\.layer\.(\d+)\.")  # BERT/RoBERTa `encoder.layer.N.`, DistilBERT `transformer.layer.N.`


def int8_linear_names(module: torch.nn.Module, fp32_layers: int = DEFAULT_FP32_LAYERS) -> list[str]:
    """The Linear layers that int8 export quantizes: those inside encoder layers >= fp32_layers.

    The early layers' outputs are the sensitive ones, and the head and pooler are tiny, so they
    stay fp32 (docs/decisions/0014-int8-export-layers.md).
    """
    names = []
    for name, child in module.named_modules():
        match = _ENCODER_LAYER.search(name + ".")
        if isinstance(child, torch.nn.Linear) and match and int(match.group(1)) >= fp32_layers:
            names.append(name)
    return names


def build_scoring_module(model: torch.nn.Module, precision: str,
                         fp32_layers: int = DEFAULT_FP32_LAYERS) -> torch.nn.Module:
    """The eager module to trace: fp32 as is; int8 with dynamic quantization (int8 weights per
    output channel, activations quantized per batch) of the encoder's Linear layers from layer
    `fp32_layers` on."""
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    module = ScoringModule(copy.deepcopy(model))  # never change the caller's eager reference
    if precision == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig

        names = int8_linear_names(module, fp32_layers)
        if not names:
            raise ExportError(f"int8: no encoder Linear layers from layer {fp32_layers} on to quantize")
        module = torch.ao.quantization.quantize_dynamic(
            module, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8)
    elif precision == "fp16":
        module = module.half()
    return module.eval()


def trace(module: torch.nn.Module, tokenizer, max_length: int, device: str = "cpu"):
    ids, mask = encode(tokenizer, PARITY_TEXTS, max_length)  # padded: the mask path is traced
    if not bool((mask == 0).any()):
        raise ExportError("tracing example has no padding; the mask path would not be traced")
    with torch.inference_mode():
        return torch.jit.trace(module.to(device), (ids.to(device), mask.to(device)), strict=False)


def compare(
    reference, candidate, tokenizer, max_length: int, tolerance: float, need_argmax: bool = True
) -> ParityReport:
    """Runs both modules on each text alone and on all texts as one padded batch.

    need_argmax=False for lossy precisions (int8), whose near-tie flips on a handful of texts say
    little: their agreement is measured on validation data instead.
    """
    worst, agree = 0.0, True
    cases = [(text,) for text in PARITY_TEXTS] + [PARITY_TEXTS]
    device = next(iter(candidate.parameters()), torch.empty(0)).device
    with torch.inference_mode():
        for texts in cases:
            ids, mask = encode(tokenizer, texts, max_length)
            expected = reference(ids, mask).float()
            got = candidate(ids.to(device), mask.to(device)).float().cpu()
            worst = max(worst, float((expected - got).abs().max()))
            agree = agree and bool((expected.argmax(-1) == got.argmax(-1)).all())
    report = ParityReport(worst, agree, len(PARITY_TEXTS))
    if worst > tolerance or (need_argmax and not agree):
        raise ExportError(
            f"traced model differs from eager: max |diff| {worst:.2e} (tolerance {tolerance:.0e}), "
            f"argmax agrees: {agree}"
        )
    return report


def save_for_storage(traced, storage: str) -> bytes:
    """Serialises the traced module; storage 'fp16' halves float weights (widened at load)."""
    module = traced.half() if storage == "fp16" else traced
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def load_for_cpu(data: bytes):
    """Loads a serialised module the way the CPU python backend does (fp32 compute)."""
    return torch.jit.load(io.BytesIO(data), map_location="cpu").float().eval()
