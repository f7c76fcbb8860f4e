"""`moderation-export`: checkpoint -> checked TorchScript -> next version in the model repository.

    moderation-export runs/default-v1/model --precision int8 --validate-data ../shared/data

Steps, each shown as it runs: load the checkpoint, build the scoring module (fp32, int8 dynamic
quantization, or fp16 for GPU), trace it, compare it with the eager model on texts of several
lengths and a mixed batch, optionally check agreement on validation data, then write the version.
Nothing is written when a check fails.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from contract import tensors

logger = logging.getLogger("export")

PARITY_TOLERANCE = {"fp32": 1e-4, "int8": 0.25, "fp16": 0.02}  # max |score diff| vs eager fp32
STORAGE_TOLERANCE = 0.02  # extra |score diff| allowed from storing weights in fp16


def parse_args(argv=None) -> argparse.Namespace:
    from export.torchscript import DEFAULT_FP32_LAYERS

    parser = argparse.ArgumentParser(prog="moderation-export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a Hugging Face checkpoint directory (or hub id)")
    parser.add_argument("--repository", default="model_repository", help="Triton model repository")
    parser.add_argument("--model-name", default=tensors.MODEL_NAME)
    parser.add_argument("--precision", choices=("fp32", "int8", "fp16"), default="int8",
                        help="int8: dynamic quantization for CPU (fastest there); fp16: GPU only")
    parser.add_argument("--storage", choices=("fp16", "fp32"), default="fp16",
                        help="dtype of the float weights in the file (CPU widens fp16 at load)")
    parser.add_argument("--fp32-layers", type=int, default=None,
                        help="int8: the first N encoder layers stay fp32, the most sensitive to "
                        f"quantization (default {DEFAULT_FP32_LAYERS})")
    parser.add_argument("--device", default="cpu", help="trace on this device (cuda for --precision fp16)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens the gateway keeps per text")
    parser.add_argument("--normalization", default="",
                        help="text normalisation the version is served with (none, chat, game); empty: the one "
                        "the checkpoint was trained with. Validation uses it too, so its numbers are the served ones")
    parser.add_argument("--labels", help="a labels file the checkpoint's categories must match")
    parser.add_argument("--validate-data", help="a data directory: check agreement with eager on its val files")
    parser.add_argument("--min-agreement", type=float, default=0.98)
    parser.add_argument("--max-f1-drop", type=float, default=0.01)
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--out-dir", help="write the exported files here instead of into the repository "
                        "(publish later with moderation-publish)")
    parser.add_argument("--dry-run", action="store_true", help="run every check, write nothing")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from export.repository import PublishError
    from export.torchscript import ExportError

    try:
        path = export(parse_args(argv))
    except (ExportError, PublishError) as err:
        logger.error("export refused: %s", err)
        sys.exit(2)
    if path:
        print(path)


def export(args: argparse.Namespace) -> Path | None:
    import torch

    from export import torchscript
    from export.repository import check_labels

    started = time.monotonic()
    if Path(args.checkpoint).is_dir():  # a Trainer checkpoint without tokenizer files would trace garbage
        from export.repository import check_tokenizer_dir

        check_tokenizer_dir(Path(args.checkpoint))
    logger.info("[1/5] loading %s", args.checkpoint)
    model, tokenizer = torchscript.load_classifier(args.checkpoint)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if getattr(model.config, "context_messages", 0):
        raise torchscript.ExportError(f"{args.checkpoint} was trained with --context-messages; the gateway sends "
                                      "single messages, so its served scores would not be the ones it was validated on")
    normalization = args.normalization or getattr(model.config, "text_normalization", None) or "none"
    from contract.normalization import normalizer

    try:
        normalizer(normalization)  # the gateway would refuse to load the version
    except ValueError as err:
        raise torchscript.ExportError(f"{args.checkpoint}: {err}") from None
    if args.labels:
        expected = tensors.read_labels(Path(args.labels).read_text(encoding="utf-8"))
        if expected != labels:
            raise torchscript.ExportError(f"checkpoint categories {labels} differ from {args.labels}: {expected}")

    if args.precision == "fp16" and args.device == "cpu":
        raise torchscript.ExportError("--precision fp16 is for GPU serving: add --device cuda")
    logger.info("[2/5] building %s scoring module and tracing it on %s", args.precision, args.device)
    fp32_layers = torchscript.DEFAULT_FP32_LAYERS if args.fp32_layers is None else args.fp32_layers
    module = torchscript.build_scoring_module(model, args.precision, fp32_layers)
    traced = torchscript.trace(module, tokenizer, args.max_length, args.device)

    logger.info("[3/5] comparing traced with eager on %d texts and a mixed batch", len(torchscript.PARITY_TEXTS))
    reference = torchscript.ScoringModule(model).eval()
    storage = args.storage if args.device == "cpu" else "fp32"
    model_bytes = torchscript.save_for_storage(traced, storage)
    served = torchscript.load_for_cpu(model_bytes) if args.device == "cpu" else traced
    tolerance = PARITY_TOLERANCE[args.precision] + (STORAGE_TOLERANCE if storage == "fp16" else 0)
    parity = torchscript.compare(reference, served, tokenizer, args.max_length, tolerance,
                               need_argmax=args.precision != "int8")
    logger.info("      max |diff| %.2e, argmax agrees: %s", parity.max_abs_diff, parity.argmax_agree)
    device = next(iter(served.parameters()), torch.empty(0)).device
    width = int(served(*(t.to(device) for t in torchscript.encode(tokenizer, ["ok"], args.max_length))).shape[-1])
    check_labels(labels, width)

    agreement = None
    if args.validate_data:
        logger.info("[4/5] checking agreement with eager fp32 on validation data")
        from export.validation import check_agreement

        agreement = check_agreement(reference, served, tokenizer, Path(args.validate_data), labels,
                                    args.max_length, args.min_agreement, args.max_f1_drop, normalization)
    else:
        logger.info("[4/5] no --validate-data: skipping the validation agreement check")

    info = {
        "checkpoint": str(args.checkpoint),
        "precision": args.precision,
        **({"fp32_layers": fp32_layers} if args.precision == "int8" else {}),
        "storage": storage,
        "device": args.device,
        "max_length": args.max_length,
        "normalization": normalization,
        "parity_max_abs_diff": parity.max_abs_diff,
        "validation": agreement,
        "export_seconds": round(time.monotonic() - started, 1),
    }
    if args.dry_run:
        logger.info("[5/5] dry run: all checks passed, nothing written")
        return None
    with tempfile.TemporaryDirectory(prefix="moderation-export-") as tokenizer_dir:
        tokenizer.save_pretrained(tokenizer_dir)  # the tokenizer used for tracing, even from a hub id
        files = dict(model_bytes=model_bytes, labels=labels, tokenizer_dir=Path(tokenizer_dir), export_info=info,
                     model_card=Path(args.checkpoint) / tensors.MODEL_CARD_FILENAME)
        return _write(args, files, started)


def _write(args, files: dict, started: float) -> Path:
    from export.repository import write_files, write_version

    if args.out_dir:
        path = Path(args.out_dir)
        logger.info("[5/5] writing %s", path)
        write_files(path, **files)
    else:
        model_dir = Path(args.repository) / args.model_name
        logger.info("[5/5] writing the next version of %s", model_dir)
        path = write_version(model_dir, version=args.version, **files)
    logger.info("wrote %s (%.1f MB) in %.0f s", path, len(files["model_bytes"]) / 1e6, time.monotonic() - started)
    return path


if __name__ == "__main__":
    main()
