"""CONDA game chat as a training source: its labels map onto the categories, its joined lines
become one message of several lines, and with --context-messages each line carries the previous
messages of its conversation as a second segment."""

from __future__ import annotations

from training.categories import load_categories
from training.data import load_source_file, load_split

HEADER = "id,match_id,conversation_id,chat_time,player_slot,text,label,token_labels,token_spans\n"


def test_conda_rows_map_and_lines_are_split(tmp_path):
    categories = load_categories()
    path = tmp_path / "conda_train.csv"
    path.write_text(HEADER
                    + '1,7,3,12.5,2,ez mid [SEPA] noob,implicit_toxic,S O SEPA T,"ez (S), mid (O)"\n'
                    + '2,7,3,20.0,6,gg wp,other,S S,"gg (S), wp (S)"\n'
                    + '3,7,3,25.0,6,report him,action,O P,"report (O), him (P)"\n'
                    + '4,7,3,30.0,1,you are trash,explicit_toxic,P O T,"you (P)"\n', encoding="utf-8")
    rows = load_source_file(path, categories.sources["conda"], categories)
    names = [{categories.names[i] for i in row.allowed} for row in rows]
    assert [row.text for row in rows] == ["ez mid\nnoob", "gg wp", "report him", "you are trash"]
    assert names[:3] == [{"insult_harassment"}, {"non_toxic"}, {"non_toxic"}]
    assert names[3] == set(categories.toxic_names)  # which kind is not labelled: a partial label


def _write_conversation(data_dir):
    """One conversation split across train and val, as CONDA splits a match's lines."""
    (data_dir / "conda_train.csv").write_text(HEADER
        + '11,7,3,10,2,need mid,other,O O,"need (O)"\n'
        + '13,7,3,30.5,2,ez mid,implicit_toxic,S O,"ez (S)"\n'
        + '20,8,9,5,0,glhf,other,S,"glhf (S)"\n', encoding="utf-8")
    (data_dir / "conda_val.csv").write_text(HEADER
        + '12,7,3,20,6,omw top,other,O O,"omw (O)"\n'
        + '14,7,3,40,6,report him,action,O P,"report (O)"\n', encoding="utf-8")
    (data_dir / "tweeteval_offensive_val.csv").write_text("text,label\nnice game,not_offensive\n", encoding="utf-8")


def test_context_is_the_previous_messages_of_the_conversation_across_splits(tmp_path):
    categories = load_categories()
    _write_conversation(tmp_path)
    val = {row.text: row.context for row in load_split(tmp_path, categories, "val", context_messages=2)}
    train = {row.text: row.context for row in load_split(tmp_path, categories, "train", context_messages=2)}
    # val row 14 (player 6) follows 11 and 12 and 13; the last two, oldest first, tagged by speaker
    assert val["report him"] == "SAME omw top OTHER ez mid"
    assert val["omw top"] == "OTHER need mid"  # a train line is context for a val line: texts only
    assert train["ez mid"] == "SAME need mid OTHER omw top"
    assert train["glhf"] == "" and train["need mid"] == ""  # first of their conversations
    assert val["nice game"] == ""  # a source without conversations
    assert all(row.context == "" for row in load_split(tmp_path, categories, "val"))  # off by default


def test_a_context_is_the_second_segment_and_only_the_context_is_cut(minilm_dir):
    import pytest
    from transformers import AutoTokenizer

    from training.partial_label_trainer import encode_texts

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    plain = tokenizer(["ez mid"])["input_ids"][0]
    ids = encode_texts(tokenizer, ["ez mid", "ez mid", "gg", "gg"], ["SAME omw top", "", "", "  "], 64)
    assert ids[1] == plain and ids[2] == ids[3] == tokenizer(["gg"])["input_ids"][0]
    assert ids[0][: len(plain)] == plain  # the message first, then [SEP] context [SEP]
    assert tokenizer.decode(ids[0][len(plain):]) == "same omw top [SEP]"
    history = " ".join(f"line{i}" for i in range(100)) + " latest"
    cut = encode_texts(tokenizer, ["ez mid"], [history], 16)[0]
    assert len(cut) == 16 and cut[: len(plain)] == plain
    assert tokenizer.decode(cut[len(plain):]).endswith("latest [SEP]")  # the oldest words go first
    long_message = " ".join(["word"] * 200)
    alone = tokenizer([long_message], truncation=True, max_length=16)["input_ids"][0]
    assert encode_texts(tokenizer, [long_message], ["SAME gg"], 16)[0] == alone  # no room: no context
    with pytest.raises(ValueError, match="1 contexts for 2 texts"):
        encode_texts(tokenizer, ["a", "b"], ["c"], 16)


def test_pairs_score_alike_alone_and_in_a_batch_and_context_changes_the_score(tiny_checkpoint):
    import numpy as np
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.train import predict_probs

    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_checkpoint)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    texts = ["ez mid", "gg wp all", "report him now please"]
    contexts = ["SAME omw top OTHER you are slow", "", "OTHER ez"]
    batch = predict_probs(model, tokenizer, texts, 64, contexts=contexts)
    for i in range(3):
        alone = predict_probs(model, tokenizer, [texts[i]], 64, contexts=[contexts[i]])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)
    without = predict_probs(model, tokenizer, texts, 64)
    np.testing.assert_allclose(batch[1], without[1], atol=1e-5)  # no context: the plain score
    model.classifier.weight.data *= 100  # a random tiny model's scores are near uniform: sharpen them
    with_context = predict_probs(model, tokenizer, texts[:1], 64, contexts=contexts[:1])
    assert np.abs(with_context[0] - predict_probs(model, tokenizer, texts[:1], 64)[0]).max() > 1e-3


def test_disguised_copies_and_cascade_rows_keep_their_context():
    from training.data import Example
    from training.obfuscate import obfuscated_copies
    from training.stages import stage1_rows, stage2_rows

    rows = [Example("you are trash", (2,), "conda", "OTHER ez mid"), Example("gg", (0,), "conda", "SAME glhf")]
    copies = obfuscated_copies(rows, 1.0, seed=13)
    assert [copy.context for copy in copies] == ["OTHER ez mid", "SAME glhf"]
    assert [row.context for row in stage1_rows(rows)] == ["OTHER ez mid", "SAME glhf"]
    assert [(row.allowed, row.context) for row in stage2_rows(rows)] == [((1,), "OTHER ez mid")]


def test_export_refuses_a_checkpoint_trained_with_context(tiny_checkpoint, tmp_path):
    import shutil

    import pytest
    from transformers import AutoConfig

    from export.cli import export, parse_args
    from export.torchscript import ExportError

    checkpoint = tmp_path / "with-context"
    shutil.copytree(tiny_checkpoint, checkpoint)
    config = AutoConfig.from_pretrained(str(checkpoint))
    config.context_messages = 3
    config.save_pretrained(str(checkpoint))
    with pytest.raises(ExportError, match="trained with --context-messages"):
        export(parse_args([str(checkpoint), "--out-dir", str(tmp_path / "out"), "--dry-run"]))
    assert not (tmp_path / "out").exists()
