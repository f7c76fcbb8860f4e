"""The three kinds of model `moderation-evaluate` scores texts with, behind one interface.

- a Hugging Face checkpoint directory, run eagerly (as `moderation-train` evaluates);
- a TorchScript file (`model.pt`) or a model-repository version directory, loaded the way the
  Triton python backend loads it (`torch.jit.load(...).float().eval()`), with the tokenizer,
  `labels.txt` and the `export.json` max length of that version;
- a served model: the gateway's `ClassifyTextBatch` over gRPC, so tokenisation, Triton and the
  exported weights are all the ones in production.

Every scorer returns softmax scores [rows, categories] in its `labels` order.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from contract import tensors

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 128  # tokens: what moderation-export and the gateway use by default
SERVED_BATCH_TEXTS = 64  # texts per ClassifyTextBatch call (the gateway's default limit)
SERVED_TIMEOUT_S = 60.0  # per batch call; a CPU Triton can be slow on 64 long texts
# Any of these marks a directory that holds a saved tokenizer (fast, WordPiece, BPE, SentencePiece).
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


class ScorerError(RuntimeError):
    """The model cannot be loaded or called; the message says which and why."""


class Scorer(Protocol):
    name: str  # short, file-name-safe, e.g. "toxicity-3"
    kind: str  # "checkpoint", "torchscript" or "served"
    labels: list[str]
    info: dict  # what was evaluated, for the report (paths, max length, version)

    def score(self, texts: list[str]) -> np.ndarray: ...


def safe_name(parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(str(p) for p in parts if p)).strip("-.") or "model"


def open_model(model: str, max_length: int = 0, tokenizer: str = "", normalization: str = "") -> Scorer:
    """A checkpoint directory, a TorchScript file or a version directory (the kind is detected).

    Args:
        model: the path.
        max_length: tokens per text; 0 uses export.json (TorchScript) or DEFAULT_MAX_LENGTH.
        tokenizer: a directory to take the tokenizer from; empty: the model's own directory.
        normalization: a text normalisation scheme to use instead of the model's own
            (contract.normalization); empty: the one it records.
    """
    path = Path(model)
    if normalization:
        from contract.normalization import normalizer

        try:
            normalizer(normalization)
        except ValueError as err:
            raise ScorerError(str(err)) from None
    if path.is_file() and path.suffix == ".pt":
        return TorchScriptScorer(path.parent, path, max_length, Path(tokenizer or path.parent), normalization)
    if path.is_dir() and (path / tensors.MODEL_FILENAME).exists():
        return TorchScriptScorer(path, path / tensors.MODEL_FILENAME, max_length, Path(tokenizer or path), normalization)
    if path.is_dir() and (path / "config.json").exists():
        return CheckpointScorer(path, max_length or DEFAULT_MAX_LENGTH, Path(tokenizer or path), normalization)
    raise ScorerError(
        f"{model}: not a Hugging Face checkpoint directory (config.json), a TorchScript file "
        f"(*.pt) or a model-repository version directory ({tensors.MODEL_FILENAME})"
    )


def load_tokenizer(directory: Path):
    """The tokenizer saved in `directory`. Refuses a directory without vocabulary files: there
    transformers silently builds an empty tokenizer that maps every word to [UNK] (the Trainer's
    intermediate checkpoints/checkpoint-N directories hold no tokenizer)."""
    from transformers import AutoTokenizer

    if not any((directory / name).exists() for name in TOKENIZER_VOCAB_FILES):
        raise ScorerError(f"{directory}: no tokenizer files ({', '.join(TOKENIZER_VOCAB_FILES)}); "
                          "pass --tokenizer with the directory of the tokenizer it was trained with")
    try:
        return AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError) as err:
        raise ScorerError(f"{directory}: cannot load the tokenizer: {err}") from None


@dataclass
class CheckpointScorer:
    path: Path
    max_length: int
    tokenizer_dir: Path
    normalization: str = ""  # overrides the checkpoint's text_normalization when set
    kind: str = "checkpoint"

    def __post_init__(self):
        from transformers import AutoModelForSequenceClassification

        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(self.path)).eval()
        config = self.model.config
        if self.normalization:  # predict_probs applies the config's scheme
            config.text_normalization = self.normalization
        self.normalization = getattr(config, "text_normalization", None) or "none"
        if getattr(config, "context_messages", 0):
            logger.warning("%s was trained with conversation context; it is scored here on single messages", self.path)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.name = safe_name(self.path.resolve().parts[-2:])
        self.info = {"kind": self.kind, "path": str(self.path), "max_length": self.max_length,
                     "normalization": self.normalization}

    def score(self, texts: list[str]) -> np.ndarray:
        from training.train import predict_probs

        return predict_probs(self.model, self.tokenizer, texts, self.max_length)


@dataclass
class TorchScriptScorer:
    version_dir: Path
    model_file: Path
    max_length: int
    tokenizer_dir: Path
    normalization: str = ""  # overrides the version's export.json normalization when set
    kind: str = "torchscript"

    def __post_init__(self):
        import torch

        labels_path = self.version_dir / tensors.LABELS_FILENAME
        try:
            self.labels = tensors.read_labels(labels_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ScorerError(f"{labels_path}: {err} (a TorchScript model needs its version's labels)") from None
        export_info = _read_export_info(self.version_dir)
        self.max_length = self.max_length or int(export_info.get("max_length", DEFAULT_MAX_LENGTH))
        from contract.normalization import normalizer

        self.normalization = self.normalization or export_info.get("normalization") or "none"
        self.normalize = normalizer(self.normalization)
        self.tokenizer = load_tokenizer(self.tokenizer_dir)
        # As the Triton python backend does: weights may be stored in fp16, CPU computes in fp32.
        self.module = torch.jit.load(str(self.model_file), map_location="cpu").float().eval()
        self.name = safe_name(self.version_dir.resolve().parts[-2:])
        self.info = {"kind": self.kind, "path": str(self.model_file), "max_length": self.max_length,
                     "precision": export_info.get("precision"), "version": export_info.get("version"),
                     "normalization": self.normalization}

    def score(self, texts: list[str]) -> np.ndarray:
        scores = score_texts(self.module, self.tokenizer, [self.normalize(t) for t in texts], self.max_length)
        if scores.shape[1] != len(self.labels):
            raise ScorerError(f"{self.model_file} outputs {scores.shape[1]} scores for {len(self.labels)} labels")
        return scores


def encode(tokenizer, texts, max_length: int):
    """int64 ids and attention mask [batch, seq], padded to the batch's longest text."""
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return batch["input_ids"].to(torch.int64), batch["attention_mask"].to(torch.int64)


def score_texts(module, tokenizer, texts, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Scores [rows, categories] from a TorchScript module, in batches of similar length."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    scores = None
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = encode(tokenizer, [texts[i] for i in chunk], max_length)
            out = module(ids, mask).float().numpy()
            if scores is None:
                scores = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
            scores[chunk] = out
    return scores


def _read_export_info(version_dir: Path) -> dict:
    path = version_dir / tensors.EXPORT_INFO_FILENAME
    if not path.exists():
        logger.warning("%s not found: using max_length %d", path, DEFAULT_MAX_LENGTH)
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


class ServedScorer:
    """Scores through a running gateway's `ClassifyTextBatch`."""

    kind = "served"

    def __init__(self, address: str, timeout_s: float = SERVED_TIMEOUT_S):
        import grpc

        from contract.pb import moderation_pb2, moderation_pb2_grpc

        self._grpc, self._pb, self.timeout_s = grpc, moderation_pb2, timeout_s
        self._channel = grpc.insecure_channel(address)
        self._stub = moderation_pb2_grpc.ModerationStub(self._channel)
        try:
            info = self._stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=timeout_s)
        except grpc.RpcError as err:
            self._channel.close()
            raise ScorerError(f"gateway {address}: {err.code().name}: {err.details()}") from None
        self.labels = list(info.categories)
        self.batch_texts = min(SERVED_BATCH_TEXTS, info.max_batch_texts or SERVED_BATCH_TEXTS)
        self.max_text_chars = info.max_text_chars
        self.name = safe_name(["served", info.model_name, info.model_version])
        self.info = {"kind": self.kind, "address": address, "model_name": info.model_name,
                     "version": info.model_version, "thresholds": dict(info.thresholds)}

    def score(self, texts: list[str]) -> np.ndarray:
        # The gateway refuses texts over max_text_chars; the model keeps far fewer tokens than
        # that many characters, so cutting them changes nothing it would see.
        limit = self.max_text_chars or None
        cut = sum(1 for text in texts if limit and len(text) > limit)
        if cut:
            logger.info("%d texts longer than the gateway's %d characters are cut to that length", cut, limit)
        texts = [text if not limit or len(text) <= limit else text.strip()[:limit] for text in texts]
        column = {name: i for i, name in enumerate(self.labels)}
        scores = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), self.batch_texts):
            request = self._pb.ClassifyTextBatchRequest(texts=texts[start : start + self.batch_texts],
                                                        request_id=f"evaluate-{start}")
            try:
                reply = self._stub.ClassifyTextBatch(request, timeout=self.timeout_s)
            except self._grpc.RpcError as err:
                raise ScorerError(f"batch at row {start}: {err.code().name}: {err.details()}") from None
            sent, got = len(request.texts), len(reply.verdicts)
            if got != sent:
                raise ScorerError(f"batch at row {start}: {got} verdicts for {sent} texts")
            for row, verdict in enumerate(reply.verdicts, start=start):
                for item in verdict.scores:
                    scores[row, column[item.category]] = item.score
        return scores

    def close(self) -> None:
        self._channel.close()
