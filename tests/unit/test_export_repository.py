"""write_version: numbered, complete and atomic versions with a manifest and no code;
check_labels and check_export_dir refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from contract import tensors
from contract.manifest import MANIFEST_FILENAME, verify_manifest
from export.repository import PublishError, check_export_dir, check_labels, versions, write_version

LABELS = ["non_toxic", "profanity", "insult_harassment", "hate_identity_attack", "threat"]


@pytest.fixture
def tokenizer_dir(tmp_path, minilm_dir):
    path = tmp_path / "checkpoint"
    path.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copyfile(minilm_dir / name, path / name)
    (path / tensors.MODEL_CARD_FILENAME).write_text("# card\n")
    return path


def publish(model_dir, tokenizer_dir, **changes):
    arguments = dict(model_bytes=b"torchscript", labels=LABELS, tokenizer_dir=tokenizer_dir,
                     export_info={"precision": "int8", "max_length": 64})
    return write_version(model_dir, **(arguments | changes))


def leftovers(model_dir):
    return sorted(p.name for p in model_dir.iterdir())


def test_versions_are_numbered_from_one(tmp_path, tokenizer_dir):
    model_dir = tmp_path / "repo" / "toxicity"
    assert publish(model_dir, tokenizer_dir) == model_dir / "1"
    assert publish(model_dir, tokenizer_dir) == model_dir / "2"
    assert versions(model_dir) == [1, 2]
    assert leftovers(model_dir) == ["1", "2"]  # no staging directory left


def test_version_holds_everything_triton_and_the_gateway_need(tmp_path, tokenizer_dir):
    version_dir = publish(tmp_path / "toxicity", tokenizer_dir, model_card=tokenizer_dir / tensors.MODEL_CARD_FILENAME)
    assert (version_dir / tensors.MODEL_FILENAME).read_bytes() == b"torchscript"
    assert not list(version_dir.glob("*.py"))  # the backend ships once, in triton_backends/
    assert tensors.read_labels((version_dir / tensors.LABELS_FILENAME).read_text()) == LABELS
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        assert (version_dir / name).read_bytes() == (tokenizer_dir / name).read_bytes()
    assert (version_dir / tensors.MODEL_CARD_FILENAME).read_text() == "# card\n"
    info = json.loads((version_dir / tensors.EXPORT_INFO_FILENAME).read_text())
    assert info == {"precision": "int8", "max_length": 64, "version": 1, "labels": LABELS}
    verify_manifest(version_dir)  # written after export.json got its version number
    listed = json.loads((version_dir / MANIFEST_FILENAME).read_text())["files"]
    assert sorted(listed) == sorted(p.name for p in version_dir.iterdir() if p.name != MANIFEST_FILENAME)


def test_export_dir_with_code_or_changed_files_is_refused_before_any_inference(tmp_path, tokenizer_dir):
    export_dir = publish(tmp_path / "toxicity", tokenizer_dir)
    (export_dir / "model.py").write_text("import os\n")
    with pytest.raises(PublishError, match="data files only; unexpected: model.py"):
        check_export_dir(export_dir)
    (export_dir / "model.py").unlink()
    (export_dir / tensors.LABELS_FILENAME).write_text("non_toxic\nthreat\n")
    with pytest.raises(PublishError, match="labels.txt: sha256 differs"):
        check_export_dir(export_dir)
    (export_dir / MANIFEST_FILENAME).unlink()
    with pytest.raises(PublishError, match="missing manifest.json"):
        check_export_dir(export_dir)


def test_gateway_can_serve_a_written_version(tmp_path, tokenizer_dir):
    from gateway.model_version import load_serving_model

    version_dir = publish(tmp_path / "toxicity", tokenizer_dir)
    model = load_serving_model(version_dir.parent, "toxicity", version_dir.name)
    assert model.labels == tuple(LABELS)
    assert model.encoder.max_length == 64


def test_explicit_version_and_refusing_an_existing_one(tmp_path, tokenizer_dir):
    model_dir = tmp_path / "toxicity"
    assert publish(model_dir, tokenizer_dir, version=7) == model_dir / "7"
    assert publish(model_dir, tokenizer_dir) == model_dir / "8"
    with pytest.raises(PublishError, match="version 7 already exists"):
        publish(model_dir, tokenizer_dir, version=7)
    assert leftovers(model_dir) == ["7", "8"]


@pytest.mark.parametrize("missing", ["tokenizer.json", "tokenizer_config.json"])
def test_missing_tokenizer_files_are_refused_before_writing(tmp_path, tokenizer_dir, missing):
    (tokenizer_dir / missing).unlink()
    model_dir = tmp_path / "toxicity"
    with pytest.raises(PublishError, match=f"tokenizer files missing in .*{missing}"):
        publish(model_dir, tokenizer_dir)
    assert versions(model_dir) == [] and leftovers(model_dir) == []


def test_failure_while_writing_leaves_no_version_and_no_staging(tmp_path, tokenizer_dir):
    model_dir = tmp_path / "toxicity"
    publish(model_dir, tokenizer_dir)
    with pytest.raises(TypeError):  # export.json is the last file written; this cannot be serialised
        publish(model_dir, tokenizer_dir, export_info={"bad": object()})
    assert leftovers(model_dir) == ["1"]
    assert publish(model_dir, tokenizer_dir) == model_dir / "2"  # the failed attempt took no number


def test_versions_ignore_non_numeric_entries(tmp_path):
    model_dir = tmp_path / "toxicity"
    for name in ("3", "10", ".staging-11-1", "configs"):
        (model_dir / name).mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text("")
    assert versions(model_dir) == [3, 10]
    assert versions(tmp_path / "absent") == []


def test_check_labels_accepts_matching_labels():
    check_labels(LABELS, len(LABELS))


@pytest.mark.parametrize(
    ("labels", "width", "expected"),
    [
        (LABELS, 4, "the model outputs 4 scores but there are 5 labels"),
        (LABELS[:4], 5, "the model outputs 5 scores but there are 4 labels"),
        (["threat", "non_toxic"], 2, "first label must be 'non_toxic'"),
        (["non_toxic", "threat", "threat"], 3, "repeats a category"),
        ([], 0, "labels file is empty"),
    ],
)
def test_check_labels_refuses(labels, width, expected):
    with pytest.raises(PublishError, match=expected):
        check_labels(labels, width)


def test_gateway_serves_a_version_with_the_normalisation_it_was_trained_with(tmp_path, tokenizer_dir):
    from gateway.model_version import load_serving_model

    plain = load_serving_model(publish(tmp_path / "toxicity", tokenizer_dir).parent, "toxicity", "1")
    chat_dir = publish(tmp_path / "toxicity", tokenizer_dir,
                       export_info={"precision": "fp32", "max_length": 64, "normalization": "chat"})
    chat = load_serving_model(chat_dir.parent, "toxicity", chat_dir.name)
    plain_ids, _ = plain.encoder.encode(["you 1d10t"])
    chat_ids, _ = chat.encoder.encode(["you 1d10t"])
    idiot_ids, _ = plain.encoder.encode(["you idiot"])
    assert chat_ids.tolist() == idiot_ids.tolist() != plain_ids.tolist()


def test_gateway_serves_a_game_version_with_obfuscation_undone(tmp_path, tokenizer_dir):
    from gateway.model_version import load_serving_model

    plain = load_serving_model(publish(tmp_path / "toxicity", tokenizer_dir).parent, "toxicity", "1")
    game_dir = publish(tmp_path / "toxicity", tokenizer_dir,
                       export_info={"precision": "fp32", "max_length": 64, "normalization": "game"})
    game = load_serving_model(game_dir.parent, "toxicity", game_dir.name)
    game_ids, _ = game.encoder.encode(["y0u \u0456d\u200biot, k y s in F4G3X"])
    plain_ids, _ = plain.encoder.encode(["you idiot, kys in F4G3X"])
    assert game_ids.tolist() == plain_ids.tolist()


def test_gateway_refuses_a_version_with_an_unknown_normalisation(tmp_path, tokenizer_dir):
    from gateway.model_version import VersionFilesError, load_serving_model

    version_dir = publish(tmp_path / "toxicity", tokenizer_dir,
                          export_info={"precision": "fp32", "max_length": 64, "normalization": "shouty"})
    with pytest.raises(VersionFilesError, match="unknown text normalization 'shouty'"):
        load_serving_model(version_dir.parent, "toxicity", version_dir.name)
