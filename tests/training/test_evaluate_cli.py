"""`moderation-evaluate` end to end on a tiny random checkpoint and tiny CSVs: the checkpoint,
its TorchScript export in a model-repository version, and the same version behind a real
in-process gateway (with a stand-in for Triton that runs the TorchScript file)."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from tests.training.conftest import ALL_TEXTS, CATEGORIES, VAL_ROWS
from training.evaluate import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("confusion_matrix.png", "roc.png", "precision_recall.png", "calibration.png")
SOURCES = {"davidson", "jigsaw", "tweeteval_offensive"}
MAX_LENGTH = 32  # tokens; the tiny texts are far shorter


@pytest.fixture(scope="module")
def checkpoint_run(tiny_checkpoint, tiny_data_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("eval-checkpoint")
    main(["--model", str(tiny_checkpoint), "--data-dir", str(tiny_data_dir), "--out-dir", str(out_dir),
          "--max-length", str(MAX_LENGTH), "--threads", "1", "--propose-thresholds", "--target-precision", "0.5"])
    return out_dir


@pytest.fixture(scope="module")
def version_dir(tiny_checkpoint, tmp_path_factory):
    """The checkpoint exported as model_repository/toxicity/1 by export/'s own functions."""
    from export import torchscript
    from export.repository import write_version

    model, tokenizer = torchscript.load_classifier(str(tiny_checkpoint))
    traced = torchscript.trace(torchscript.build_scoring_module(model, "fp32"), tokenizer, MAX_LENGTH)
    repository = tmp_path_factory.mktemp("model_repository")
    return write_version(repository / "toxicity", model_bytes=torchscript.save_for_storage(traced, "fp32"),
                         labels=list(CATEGORIES), tokenizer_dir=tiny_checkpoint,
                         export_info={"precision": "fp32", "max_length": MAX_LENGTH})


def test_checkpoint_report_has_pooled_and_per_source_metrics(checkpoint_run):
    report = json.loads((checkpoint_run / "report.json").read_text())
    assert report["labels"] == list(CATEGORIES)
    assert report["model"]["kind"] == "checkpoint"
    assert report["data"]["rows"] == VAL_ROWS
    assert set(report["per_source"]) == SOURCES
    for section in [report] + list(report["per_source"].values()):
        assert set(section["multiclass"]["per_category"]) == set(CATEGORIES)
        assert {"precision", "recall", "f1", "macro_f1", "auc", "rows"} <= set(section["binary"])
    # exact rows: tweeteval 3 not_offensive; davidson 2 neither + 1 hate; jigsaw 2 clean + 3 exact
    assert report["multiclass"]["rows"] == 3 + 3 + 5
    assert report["binary"]["rows"] == VAL_ROWS  # every row here has a known toxicity
    assert 0.0 <= report["calibration"]["ece"] <= 1.0
    assert set(report["thresholds"]["categories"]) == set(CATEGORIES[1:])


def test_column_auc_uses_the_sources_own_column(tiny_checkpoint, tmp_path):
    """Jigsaw `obscene` is judged with the profanity score over every Jigsaw row, whatever the
    mapping made of the row: here obscene rows map to a partial label, threat and profanity."""
    import csv

    from sklearn.metrics import roc_auc_score

    from tests.training.conftest import JIGSAW_COLUMNS

    rows = [("the lobby music is calm today", (0, 0, 0, 0, 0, 0)),
            ("a rude noodle of a player", (1, 0, 1, 0, 1, 0)),  # obscene + insult: {profanity, insult}
            ("i will throw a water balloon at you", (1, 0, 1, 1, 0, 0)),  # obscene + threat: threat
            ("what a fudging mess this round is", (1, 0, 1, 0, 0, 0)),  # obscene: profanity
            ("you are a clumsy noodle", (1, 0, 0, 0, 1, 0)),
            ("i really like the new patch notes", (0, 0, 0, 0, 0, 0))]
    data_dir, out_dir = tmp_path / "data", tmp_path / "out"
    data_dir.mkdir()
    with open(data_dir / "jigsaw_val.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([("text", *JIGSAW_COLUMNS)] + [(text, *flags) for text, flags in rows])
    main(["--model", str(tiny_checkpoint), "--data-dir", str(data_dir), "--out-dir", str(out_dir),
          "--max-length", str(MAX_LENGTH), "--threads", "1"])

    report = json.loads((out_dir / "report.json").read_text())
    probs = np.load(out_dir / "scores.npz")["probs"]
    obscene = [flags[JIGSAW_COLUMNS.index("obscene")] for _, flags in rows]
    expected = roc_auc_score(obscene, probs[:, list(CATEGORIES).index("profanity")])
    assert report["column_auc"]["jigsaw"]["obscene->profanity"] == pytest.approx(expected)
    assert "toxic->profanity" not in report["column_auc"]["jigsaw"]  # `toxic` maps to several categories
    assert set(report["category_auc"]) == set(CATEGORIES[1:])
    assert "Category AUC" in (out_dir / "summary.md").read_text()


def test_checkpoint_run_writes_figures_summary_scores_and_policy(checkpoint_run):
    from gateway.policy import load_policy

    for name in FIGURES:
        data = (checkpoint_run / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, name
    summary = (checkpoint_run / "summary.md").read_text()
    assert "macro-F1" in summary and "confusion_matrix.png" in summary
    scores = np.load(checkpoint_run / "scores.npz")
    assert scores["probs"].shape == (VAL_ROWS, len(CATEGORIES))
    np.testing.assert_allclose(scores["probs"].sum(axis=1), 1.0, atol=1e-5)
    policy = load_policy(checkpoint_run / "policy.toml")
    result = json.loads((checkpoint_run / "thresholds.json").read_text())
    assert policy.thresholds == {name: p["threshold"] for name, p in result["categories"].items()}
    assert policy.toxic_threshold == result["overall"]["toxic_threshold"]  # the whole policy is written
    assert policy.bands == result["overall"]["bands"]
    assert set(result["overall"]["per_source"]) == SOURCES | {"all"}
    assert policy.blocklist and policy.allowlist  # copied from the shipped policy


def test_dataset_texts_are_never_printed(tiny_checkpoint, tiny_data_dir, tmp_path, capsys):
    main(["--model", str(tiny_checkpoint), "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path),
          "--max-length", str(MAX_LENGTH), "--max-rows", "5", "--propose-thresholds"])
    captured = capsys.readouterr()
    assert "macro-F1" in captured.out
    for text in ALL_TEXTS:
        assert text.splitlines()[0] not in captured.out + captured.err
    written = "".join(path.read_text() for path in tmp_path.iterdir() if path.suffix in (".json", ".md", ".toml"))
    assert not any(text.splitlines()[0] in written for text in ALL_TEXTS)
    assert json.loads((tmp_path / "report.json").read_text())["data"]["rows"] == 5


def test_torchscript_version_matches_checkpoint_and_compares(checkpoint_run, version_dir, tiny_data_dir, tmp_path):
    main(["--model", str(version_dir), "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path),
          "--compare", str(checkpoint_run / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["model"]["kind"] == "torchscript"
    assert report["model"]["max_length"] == MAX_LENGTH  # read from the version's export.json
    eager = np.load(checkpoint_run / "scores.npz")["probs"]
    np.testing.assert_allclose(np.load(tmp_path / "scores.npz")["probs"], eager, atol=1e-4)
    compare = (tmp_path / "compare.md").read_text()
    assert "| macro-F1 (exact rows) |" in compare and "| jigsaw binary AUC |" in compare


def test_compare_with_a_model_scores_it_on_the_same_rows(tiny_checkpoint, version_dir, tiny_data_dir, tmp_path):
    main(["--model", str(version_dir), "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path),
          "--max-rows", "7", "--compare", str(tiny_checkpoint)])
    other = json.loads((tmp_path / "compare_report.json").read_text())
    assert other["model"]["kind"] == "checkpoint" and other["data"]["rows"] == 7
    assert "different rows" not in (tmp_path / "compare.md").read_text()


class TorchScriptTriton:
    """Stands in for TritonClassifier: runs the version's TorchScript file as the backend would."""

    def __init__(self, model_file):
        import torch

        self._torch = torch
        self.module = torch.jit.load(str(model_file), map_location="cpu").float().eval()
        self.batch_sizes: list[int] = []

    def infer(self, input_ids, attention_mask, *, version, timeout_s):
        self.batch_sizes.append(len(input_ids))
        with self._torch.inference_mode():
            return self.module(self._torch.from_numpy(input_ids), self._torch.from_numpy(attention_mask)).numpy()

    def ready_versions(self):
        return ["1"]

    def is_ready(self, version=""):
        return version in ("", "1")

    def close(self):
        pass


def test_served_model_matches_torchscript(version_dir, tiny_data_dir, tmp_path):
    from gateway.server import create_server
    from gateway.settings import Settings

    optional = {"admin_listen_address": ""} if "admin_listen_address" in {f.name for f in fields(Settings)} else {}
    settings = Settings(listen_address="127.0.0.1:0", metrics_listen_address="", model_repository=str(version_dir.parent.parent),
                        max_batch_texts=4, health_poll_s=3600, **optional)
    triton = TorchScriptTriton(version_dir / "model.pt")
    gateway, port = create_server(settings, classifier=triton)
    gateway.start()
    try:
        main(["--served", f"127.0.0.1:{port}", "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path / "served")])
    finally:
        gateway.stop(0)
    main(["--model", str(version_dir), "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path / "local")])
    served = json.loads((tmp_path / "served" / "report.json").read_text())
    assert served["model"]["kind"] == "served" and served["model"]["version"] == "1"
    assert max(triton.batch_sizes) == 4  # chunked to the gateway's max_batch_texts
    np.testing.assert_allclose(np.load(tmp_path / "served" / "scores.npz")["probs"],
                               np.load(tmp_path / "local" / "scores.npz")["probs"], atol=1e-5)


def test_model_with_other_categories_is_refused(tiny_checkpoint, tmp_path):
    (tmp_path / "categories.toml").write_text(
        '[[category]]\nname = "non_toxic"\n[[category]]\nname = "spam"\n'
        '[sources.own]\nfile_prefix = "own"\nformat = "categories"\n')
    (tmp_path / "own_val.csv").write_text("text,label\nbuy gold now,spam\nhello,non_toxic\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(tiny_checkpoint), "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"),
              "--categories", str(tmp_path / "categories.toml")])
    assert exit_info.value.code == 2


def test_exactly_one_model_source_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["--data-dir", "."])
    assert "exactly one of --model and --served" in capsys.readouterr().err


def test_normalization_option_overrides_the_versions_scheme(version_dir, tiny_data_dir, tmp_path):
    main(["--model", str(version_dir), "--data-dir", str(tiny_data_dir), "--out-dir", str(tmp_path),
          "--max-rows", "4", "--normalization", "game"])
    assert json.loads((tmp_path / "report.json").read_text())["model"]["normalization"] == "game"


def test_normalization_option_is_refused_for_a_served_model(capsys):
    with pytest.raises(SystemExit):
        main(["--served", "127.0.0.1:1", "--normalization", "game"])
    assert "--normalization applies to" in capsys.readouterr().err
