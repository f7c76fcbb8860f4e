"""Tracing and parity checks on a tiny random BERT with the MiniLM tokenizer's vocabulary."""

from __future__ import annotations

import pytest
import torch

from export.torchscript import (
    PARITY_TEXTS,
    ExportError,
    ScoringModule,
    build_scoring_module,
    compare,
    encode,
    load_for_cpu,
    save_for_storage,
    trace,
)

MAX_LENGTH = 128
NUM_LABELS = 5


def tiny_bert(vocab_size: int, seed: int):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=NUM_LABELS, initializer_range=0.2)
    return BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def model(minilm_tokenizer):
    return tiny_bert(len(minilm_tokenizer), seed=0)


@pytest.fixture(scope="module")
def reference(model):
    return ScoringModule(model).eval()


@pytest.fixture(scope="module")
def traced(model, minilm_tokenizer):
    return trace(build_scoring_module(model, "fp32"), minilm_tokenizer, MAX_LENGTH)


def test_scoring_module_outputs_softmax_scores(reference, minilm_tokenizer):
    ids, mask = encode(minilm_tokenizer, PARITY_TEXTS, MAX_LENGTH)
    assert ids.dtype == torch.int64 and mask.dtype == torch.int64
    assert bool((mask == 0).any())  # the parity texts differ in length: the batch is padded
    with torch.inference_mode():
        scores = reference(ids, mask)
    assert scores.dtype == torch.float32
    assert scores.shape == (len(PARITY_TEXTS), NUM_LABELS)
    assert torch.allclose(scores.sum(-1), torch.ones(len(PARITY_TEXTS)), atol=1e-5)


def test_traced_fp32_matches_eager_on_mixed_lengths(reference, traced, minilm_tokenizer):
    report = compare(reference, traced, minilm_tokenizer, MAX_LENGTH, tolerance=1e-4)
    assert report.max_abs_diff <= 1e-4
    assert report.argmax_agree
    assert report.texts == len(PARITY_TEXTS)


def test_padding_does_not_change_a_texts_scores(traced, minilm_tokenizer):
    """The mask path is traced: a text alone and padded inside a batch scores the same."""
    with torch.inference_mode():
        alone = traced(*encode(minilm_tokenizer, [PARITY_TEXTS[0]], MAX_LENGTH))
        batch = traced(*encode(minilm_tokenizer, PARITY_TEXTS, MAX_LENGTH))
    assert torch.allclose(alone[0], batch[0], atol=1e-5)


def test_saved_fp32_file_loads_and_still_matches(reference, traced, minilm_tokenizer):
    served = load_for_cpu(save_for_storage(traced, "fp32"))
    assert compare(reference, served, minilm_tokenizer, MAX_LENGTH, tolerance=1e-4).max_abs_diff <= 1e-4


def test_fp16_storage_stays_within_its_tolerance(reference, traced, minilm_tokenizer):
    served = load_for_cpu(save_for_storage(traced, "fp16"))
    with torch.inference_mode():
        ids, mask = encode(minilm_tokenizer, ["ok"], MAX_LENGTH)
        assert served(ids, mask).dtype == torch.float32  # widened at load
    report = compare(reference, served, minilm_tokenizer, MAX_LENGTH, tolerance=0.02, need_argmax=False)
    assert report.max_abs_diff <= 0.02


def test_a_different_model_fails_the_parity_check(reference, minilm_tokenizer):
    other = ScoringModule(tiny_bert(len(minilm_tokenizer), seed=1)).eval()
    with pytest.raises(ExportError, match="traced model differs from eager"):
        compare(reference, other, minilm_tokenizer, MAX_LENGTH, tolerance=1e-4)


def test_unknown_precision_is_refused(model):
    with pytest.raises(ExportError, match="precision must be one of"):
        build_scoring_module(model, "int4")


def test_int8_quantizes_encoder_layers_from_fp32_layers_on(minilm_tokenizer):
    from export.torchscript import int8_linear_names

    three_layers = tiny_bert(len(minilm_tokenizer), seed=0)
    three_layers.bert.encoder.layer.append(copy_layer(three_layers))
    names = int8_linear_names(ScoringModule(three_layers), fp32_layers=2)
    assert names and all(".layer.2." in name for name in names)  # 6 Linear per BERT layer
    assert len(names) == 6
    assert len(int8_linear_names(ScoringModule(three_layers), fp32_layers=0)) == 18

    quantized = build_scoring_module(three_layers, "int8", fp32_layers=2)
    kinds = {name: type(child).__name__ for name, child in quantized.named_modules()}
    assert kinds["classifier.bert.encoder.layer.0.output.dense"] == "Linear"  # stays fp32
    assert kinds["classifier.classifier"] == "Linear"  # the head stays fp32
    assert "quantized" in type(dict(quantized.named_modules())["classifier.bert.encoder.layer.2.output.dense"]).__module__
    ids, mask = encode(minilm_tokenizer, PARITY_TEXTS, MAX_LENGTH)
    scores = trace(quantized, minilm_tokenizer, MAX_LENGTH)(ids, mask)
    assert torch.allclose(scores.sum(-1), torch.ones(len(PARITY_TEXTS)), atol=1e-5)


def test_int8_with_nothing_to_quantize_is_refused(model):
    with pytest.raises(ExportError, match="no encoder Linear layers from layer 5"):
        build_scoring_module(model, "int8", fp32_layers=5)


def copy_layer(model):
    import copy

    return copy.deepcopy(model.bert.encoder.layer[-1])
