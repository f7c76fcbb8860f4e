"""The contract between the exported model, Triton's model repository and the gateway.

Defined once here and imported by export/, training/, gateway/ and the tests (which check
config.pbtxt against it). No heavy imports: the gateway imports this module.

Names follow Triton's PyTorch (libtorch) backend convention `<name>__<index>`, so the same
TorchScript file and tensor names serve on the CPU python backend and on GPU libtorch.
"""

from __future__ import annotations

MODEL_NAME = "toxicity"  # the model's directory in model_repository/
BACKEND_NAME = "torchscript_classifier"  # the python-based backend in triton_backends/ that runs it on CPU

INPUT_IDS = "input__0"  # int64 [batch, seq]: token ids
ATTENTION_MASK = "input__1"  # int64 [batch, seq]: 1 for tokens, 0 for padding
SCORES = "output__0"  # fp32 [batch, categories]: softmax over the version's categories

INPUT_DTYPE = "TYPE_INT64"  # as written in config.pbtxt
INPUT_NUMPY_DTYPE = "int64"
SCORES_DTYPE = "TYPE_FP32"
TRITON_INPUT_DATATYPE = "INT64"  # as tritonclient names it
TRITON_SCORES_DATATYPE = "FP32"

MODEL_FILENAME = "model.pt"  # TorchScript, in each version directory
LABELS_FILENAME = "labels.txt"  # one category per line, in output order, in each version directory
MODEL_CARD_FILENAME = "MODEL_CARD.md"
EXPORT_INFO_FILENAME = "export.json"  # how the version was exported (precision, max length, ...)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # a saved fast tokenizer; needed
OPTIONAL_TOKENIZER_FILES = ("special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "bpe.codes")

NEGATIVE_CATEGORY = "non_toxic"  # always the first label


def read_labels(text: str) -> list[str]:
    """Parses a labels file's content; raises ValueError if it breaks the contract."""
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise ValueError("labels file is empty")
    if labels[0] != NEGATIVE_CATEGORY:
        raise ValueError(f"first label must be {NEGATIVE_CATEGORY!r}, got {labels[0]!r}")
    if len(set(labels)) != len(labels):
        raise ValueError("labels file repeats a category")
    return labels
