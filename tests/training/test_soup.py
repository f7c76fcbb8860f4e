"""Weight averaging and temperature scaling (training/soup.py) on tiny BERT models built offline,
and one calibrated soup of two tiny checkpoints fitted on the tiny validation files."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from tests.training.conftest import ALL_TEXTS
from training.categories import load_categories
from training.data import load_split
from training.soup import (
    SoupError,
    average_state_dicts,
    fit_temperature,
    main,
    make_soup,
    scale_logits,
)
from training.train import predict_probs

LABELS = {0: "non_toxic", 1: "insult_harassment", 2: "threat"}


def tiny_model(seed: int, normalization: str = "game") -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32, num_labels=3, id2label=LABELS,
                        label2id={v: k for k, v in LABELS.items()})
    config.text_normalization = normalization
    return BertForSequenceClassification(config).eval()


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_average_is_the_elementwise_mean_and_integer_buffers_must_agree():
    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.tensor([0, 1])}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.tensor([0, 1])}
    mean = average_state_dicts([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0]))
    assert torch.equal(mean["ids"], torch.tensor([0, 1]))
    with pytest.raises(SoupError, match="integer weight ids"):
        average_state_dicts([a, {"w": b["w"], "ids": torch.tensor([1, 0])}])
    with pytest.raises(SoupError, match="different weights"):
        average_state_dicts([a, {"w": b["w"]}])
    with pytest.raises(SoupError, match="different shapes"):
        average_state_dicts([a, {"w": torch.zeros(3), "ids": a["ids"]}])


def test_weights_mix_in_proportion_and_bad_weights_are_refused():
    a = {"w": torch.tensor([0.0, 10.0])}
    b = {"w": torch.tensor([10.0, 0.0])}
    assert torch.allclose(average_state_dicts([a, b], [3, 1])["w"], torch.tensor([2.5, 7.5]))
    # only the ratio matters
    assert torch.allclose(average_state_dicts([a, b], [0.3, 0.1])["w"], torch.tensor([2.5, 7.5]))
    with pytest.raises(SoupError, match="1 weights for 2 checkpoints"):
        average_state_dicts([a, b], [1.0])
    for bad in ([1.0, 0.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(SoupError, match="positive"):
            average_state_dicts([a, b], bad)


def test_fitted_temperature_undoes_a_known_flattening():
    rng = np.random.default_rng(5)
    true_logits = rng.normal(scale=3.0, size=(4000, 3))
    true = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true])
    allowed = np.eye(3)[labels]
    flat = np.exp(true_logits / 2) / np.exp(true_logits / 2).sum(1, keepdims=True)  # as if logits halved
    temperature, before, after = fit_temperature(flat, allowed)
    assert temperature == pytest.approx(0.5, rel=0.08)
    assert after < before
    sharp, _, _ = fit_temperature(true, allowed)
    assert sharp == pytest.approx(1.0, rel=0.08)


def test_a_partial_label_counts_the_probability_of_its_whole_set():
    probs = np.array([[0.1, 0.45, 0.45], [0.8, 0.1, 0.1]])
    either_toxic = np.array([[0, 1, 1], [1, 0, 0]])
    _, loss_set, _ = fit_temperature(probs, either_toxic)
    assert loss_set == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2, rel=1e-6)
    with pytest.raises(SoupError, match="allows no category"):
        fit_temperature(probs, np.array([[0, 0, 0], [1, 0, 0]]))


def test_scaling_divides_the_logits_and_keeps_every_top_category():
    model = tiny_model(1)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))  # BERT starts it at zero
    ids = torch.randint(0, 50, (6, 8))
    before = logits(model, ids)
    scale_logits(model, 0.25)
    after = logits(model, ids)
    assert torch.allclose(after, before / 0.25, atol=1e-5)
    assert torch.equal(after.argmax(1), before.argmax(1))


def test_fp16_weights_stay_fp16():
    halves = [{"w": torch.tensor([1.0, 2.0], dtype=torch.float16)}, {"w": torch.tensor([2.0, 3.0], dtype=torch.float16)}]
    assert average_state_dicts(halves)["w"].dtype == torch.float16


def save_runs(tmp_path, tokenizer_dir, seeds=(1, 2)):
    paths = []
    for seed in seeds:
        paths.append(tmp_path / f"run{seed}")
        tiny_model(seed).save_pretrained(str(paths[-1]))
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (paths[-1] / name).write_bytes((tokenizer_dir / name).read_bytes())
    return paths


def test_soup_of_two_checkpoints_is_their_mean(tmp_path, minilm_dir):
    paths = save_runs(tmp_path, minilm_dir)
    info = make_soup(paths, tmp_path / "soup", data_dir=None)
    assert info["temperature"] == 1.0
    soup = BertForSequenceClassification.from_pretrained(str(tmp_path / "soup"))
    a, b = (BertForSequenceClassification.from_pretrained(str(p)).state_dict() for p in paths)
    for key, value in soup.state_dict().items():
        assert torch.allclose(value, (a[key] + b[key]) / 2, atol=1e-6), key
    assert soup.config.text_normalization == "game"
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["checkpoints"] == [str(p) for p in paths]


def test_weighted_soup_from_the_command_line_records_its_weights(tmp_path, minilm_dir):
    paths = save_runs(tmp_path, minilm_dir)
    main([str(p) for p in paths] + ["--out-dir", str(tmp_path / "soup"), "--no-calibrate", "--weights", "1", "3"])
    soup = BertForSequenceClassification.from_pretrained(str(tmp_path / "soup"))
    a, b = (BertForSequenceClassification.from_pretrained(str(p)).state_dict() for p in paths)
    for key, value in soup.state_dict().items():
        assert torch.allclose(value, 0.25 * a[key] + 0.75 * b[key], atol=1e-6), key
    assert json.loads((tmp_path / "soup" / "soup.json").read_text())["weights"] == [0.25, 0.75]
    with pytest.raises(SystemExit, match="3 weights for 2 checkpoints"):
        main([str(p) for p in paths] + ["--out-dir", str(tmp_path / "other"), "--no-calibrate",
                                        "--weights", "1", "1", "1"])
    assert not (tmp_path / "other").exists()


def test_calibrated_soup_is_the_mean_with_its_logits_divided_by_the_fitted_temperature(
        tiny_checkpoint, tiny_data_dir, tmp_path):
    noisy = BertForSequenceClassification.from_pretrained(str(tiny_checkpoint))
    torch.manual_seed(3)
    with torch.no_grad():
        for weight in noisy.parameters():
            weight.add_(0.5 * torch.randn_like(weight))
    noisy.save_pretrained(str(tmp_path / "noisy"))
    AutoTokenizer.from_pretrained(str(tiny_checkpoint)).save_pretrained(str(tmp_path / "noisy"))
    runs = [tiny_checkpoint, tmp_path / "noisy"]
    make_soup(runs, tmp_path / "plain", data_dir=None)
    info = make_soup(runs, tmp_path / "calibrated", data_dir=tiny_data_dir)

    assert info["validation_rows"] == len(ALL_TEXTS)
    assert info["loss_at_temperature"] <= info["loss_at_1"]
    plain, calibrated = (BertForSequenceClassification.from_pretrained(str(tmp_path / d)).eval()
                         for d in ("plain", "calibrated"))
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "calibrated"))
    batch = tokenizer(ALL_TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before, after = (m(**batch).logits for m in (plain, calibrated))
    assert torch.allclose(after, before / info["temperature"], atol=1e-4)
    # the saved temperature is the one that fits these rows best
    probs = predict_probs(plain, tokenizer, ALL_TEXTS, 128)
    rows = load_split(tiny_data_dir, load_categories(), "val")
    allowed = np.zeros_like(probs)
    for i, row in enumerate(sorted(rows, key=lambda r: ALL_TEXTS.index(r.text))):
        allowed[i, list(row.allowed)] = 1
    assert fit_temperature(probs, allowed)[0] == pytest.approx(info["temperature"], rel=1e-3)


def test_checkpoints_of_other_recipes_are_refused_with_the_reason(tmp_path, minilm_dir):
    game, plain = save_runs(tmp_path, minilm_dir)
    tiny_model(2, "none").save_pretrained(str(plain))
    with pytest.raises(SystemExit, match="differ in text_normalization"):
        main([str(game), str(plain), "--out-dir", str(tmp_path / "soup"), "--no-calibrate"])
    assert not (tmp_path / "soup").exists()
    with pytest.raises(SystemExit, match="at least two"):
        main([str(game), "--out-dir", str(tmp_path / "soup"), "--no-calibrate"])


def test_nothing_is_written_over_a_parent_or_without_a_tokenizer(tmp_path, minilm_dir):
    first, second = save_runs(tmp_path, minilm_dir)
    before = (first / "model.safetensors").read_bytes()
    with pytest.raises(SoupError, match="is one of the checkpoints"):
        make_soup([first, second], first, data_dir=None)
    with pytest.raises(SoupError, match="not an empty directory"):
        make_soup([first, second], tmp_path, data_dir=None)
    assert (first / "model.safetensors").read_bytes() == before
    (first / "tokenizer.json").unlink()
    with pytest.raises(SoupError, match="tokenizer files differ"):
        make_soup([first, second], tmp_path / "soup", data_dir=None)
    (second / "tokenizer.json").unlink()
    with pytest.raises(SystemExit, match="no usable tokenizer"):
        main([str(first), str(second), "--out-dir", str(tmp_path / "soup"), "--no-calibrate"])
    assert not (tmp_path / "soup").exists() and not (tmp_path / "soup.partial").exists()
