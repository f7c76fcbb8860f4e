"""Labelled CSVs -> examples: parsing, label mapping errors, dedup, split and oversampling."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from training.categories import load_categories
from training.data import (
    DataFileError,
    Example,
    balanced_example_weights,
    dedup_key,
    deduplicate,
    load_extra_file,
    load_source_file,
    load_split,
    message_text,
    multilabel_columns,
    oversample_rare,
    previous_messages,
    stratified_split,
    summarize,
)
from training.obfuscate import obfuscated_copies
from training.train import TrainOptions, _load_rows

CATEGORIES = load_categories()
NON_TOXIC, PROFANITY, INSULT, HATE, THREAT = range(5)
JIGSAW_COLUMNS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def jigsaw_row(text, *on):
    return [text] + [1 if column in on else 0 for column in JIGSAW_COLUMNS]


def test_quoted_newlines_and_commas_are_kept_in_one_text(tmp_path):
    texts = ["line one\nline two, still the same message", 'he said "ok, fine"', "plain"]
    path = write_csv(tmp_path / "own_train.csv", ["text", "label"],
                     [[texts[0], "threat"], [texts[1], "non_toxic"], [texts[2], "profanity"]])
    examples = load_source_file(path, CATEGORIES.sources["own"], CATEGORIES)
    assert [e.text for e in examples] == texts
    assert [e.allowed for e in examples] == [(THREAT,), (NON_TOXIC,), (PROFANITY,)]
    assert {e.source for e in examples} == {"own"}


def test_single_format_maps_labels_to_sets_and_skips_unusable_rows(tmp_path):
    path = write_csv(tmp_path / "tweeteval_hate_train.csv", ["text", "label"],
                     [["one", "hateful"], ["two", "not_hateful"], ["three", " hateful "]])
    examples = load_source_file(path, CATEGORIES.sources["tweeteval_hate"], CATEGORIES)
    assert [(e.text, e.allowed) for e in examples] == [("one", (HATE,)), ("three", (HATE,))]
    path = write_csv(tmp_path / "tweeteval_offensive_train.csv", ["text", "label"], [["x", "offensive"]])
    (example,) = load_source_file(path, CATEGORIES.sources["tweeteval_offensive"], CATEGORIES)
    assert example.allowed == (PROFANITY, INSULT, HATE, THREAT)
    assert example.exact is None


def test_unknown_label_names_file_and_line(tmp_path):
    # line 1 header, lines 2-3 one quoted record, line 4 the bad one
    path = write_csv(tmp_path / "own_train.csv", ["text", "label"],
                     [["first\nsecond", "threat"], ["third", "spam"]])
    with pytest.raises(DataFileError) as exc:
        load_source_file(path, CATEGORIES.sources["own"], CATEGORIES)
    assert f"{path}:4:" in str(exc.value)
    assert "'spam'" in str(exc.value)


def test_unmapped_source_label_names_file_and_line(tmp_path):
    path = write_csv(tmp_path / "davidson_train.csv", ["text", "label"], [["a", "neither"], ["b", "rude"]])
    with pytest.raises(DataFileError, match=rf"{path}:3: label 'rude' is not mapped for source 'davidson'"):
        load_source_file(path, CATEGORIES.sources["davidson"], CATEGORIES)


def test_missing_column(tmp_path):
    path = write_csv(tmp_path / "own_train.csv", ["text", "category"], [["a", "threat"]])
    with pytest.raises(DataFileError, match=r"missing columns \['label'\]"):
        load_source_file(path, CATEGORIES.sources["own"], CATEGORIES)
    path = write_csv(tmp_path / "jigsaw_train.csv", ["text", "toxic", "threat"], [["a", 0, 0]])
    with pytest.raises(DataFileError, match="missing columns") as exc:
        load_source_file(path, CATEGORIES.sources["jigsaw"], CATEGORIES)
    assert "insult" in str(exc.value)


def test_empty_file_and_header_only_file(tmp_path):
    empty = tmp_path / "own_train.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"{empty}: empty file"):
        load_source_file(empty, CATEGORIES.sources["own"], CATEGORIES)
    header_only = write_csv(tmp_path / "own_val.csv", ["text", "label"], [])
    with pytest.raises(DataFileError, match=rf"{header_only}: no data rows"):
        load_source_file(header_only, CATEGORIES.sources["own"], CATEGORIES)


def test_row_with_missing_fields_names_file_and_line(tmp_path):
    path = tmp_path / "own_train.csv"
    path.write_text("text,label\nfine,non_toxic\nno label here\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"{path}:3:"):
        load_source_file(path, CATEGORIES.sources["own"], CATEGORIES)


def test_multilabel_priority_and_partial_labels(tmp_path):
    path = write_csv(tmp_path / "jigsaw_train.csv", ["text"] + JIGSAW_COLUMNS, [
        jigsaw_row("threat and insult", "toxic", "threat", "insult"),
        jigsaw_row("insult and obscene", "toxic", "obscene", "insult"),
        jigsaw_row("identity and insult", "identity_hate", "insult"),
        jigsaw_row("only toxic", "toxic"),
        jigsaw_row("toxic and severe", "toxic", "severe_toxic"),
        jigsaw_row("toxic and obscene", "toxic", "obscene"),
        jigsaw_row("clean"),
    ])
    examples = load_source_file(path, CATEGORIES.sources["jigsaw"], CATEGORIES)
    # threat and identity hate win outright; other specific columns add up; `toxic` alone is partial
    assert [e.allowed for e in examples] == [
        (THREAT,), (PROFANITY, INSULT), (HATE,), (PROFANITY, INSULT, HATE, THREAT), (PROFANITY, INSULT, HATE, THREAT),
        (PROFANITY,), (NON_TOXIC,),
    ]


def test_multilabel_columns_reads_the_source_labels_by_text(tmp_path):
    path = write_csv(tmp_path / "jigsaw_val.csv", ["text"] + JIGSAW_COLUMNS, [
        jigsaw_row("Insult  and obscene", "toxic", "obscene", "insult"), jigsaw_row("clean")])
    columns = multilabel_columns(path, CATEGORIES.sources["jigsaw"])
    assert columns[dedup_key("insult and OBSCENE")] == {
        "toxic": 1, "severe_toxic": 0, "obscene": 1, "threat": 0, "insult": 1, "identity_hate": 0}
    assert columns[dedup_key("clean")]["obscene"] == 0


def test_multilabel_value_must_be_0_or_1(tmp_path):
    path = write_csv(tmp_path / "jigsaw_train.csv", ["text"] + JIGSAW_COLUMNS, [["x", 0, 0, 2, 0, 0, 0]])
    with pytest.raises(DataFileError, match=rf"{path}:2: column 'obscene' must be 0 or 1, got '2'"):
        load_source_file(path, CATEGORIES.sources["jigsaw"], CATEGORIES)


def ex(text, *allowed, source="own"):
    return Example(text, tuple(allowed), source)


def test_deduplicate_ignores_case_and_whitespace_and_keeps_the_first():
    rows = [ex("Hello  World", NON_TOXIC), ex("hello world", THREAT), ex(" HELLO\nworld ", INSULT), ex("other", INSULT)]
    assert deduplicate(rows) == [rows[0], rows[3]]


def test_deduplicate_drops_excluded_and_empty_texts():
    rows = [ex("kept", NON_TOXIC), ex("In  Val", THREAT), ex("   ", NON_TOXIC)]
    assert deduplicate(rows, exclude=[ex("in val", THREAT)]) == [rows[0]]


def test_load_split_reads_every_source_and_deduplicates(tmp_path):
    write_csv(tmp_path / "own_val.csv", ["text", "label"], [["same text", "threat"], ["own only", "non_toxic"]])
    write_csv(tmp_path / "jigsaw_val.csv", ["text"] + JIGSAW_COLUMNS, [jigsaw_row("Same  TEXT", "insult")])
    write_csv(tmp_path / "own_train.csv", ["text", "label"], [["train row", "threat"]])
    rows = load_split(tmp_path, CATEGORIES, "val")
    # sources are read in file order (jigsaw before own): the first copy of a text wins
    assert [(e.text, e.allowed, e.source) for e in rows] == [
        ("Same  TEXT", (INSULT,), "jigsaw"), ("own only", (NON_TOXIC,), "own")]
    assert load_split(tmp_path / "missing", CATEGORIES, "val") == []


def test_train_rows_are_capped_per_source_label(tmp_path):
    categories_path = tmp_path / "categories.toml"
    categories_path.write_text(
        '[[category]]\nname = "non_toxic"\n[[category]]\nname = "threat"\n'
        '[sources.chat]\nformat = "single"\nlabels.ok = ["non_toxic"]\nlabels.bad = ["threat"]\n'
        'max_train_rows.ok = 3\n', encoding="utf-8")
    categories = load_categories(categories_path)
    rows = [[f"ok {i}", "ok"] for i in range(10)] + [[f"bad {i}", "bad"] for i in range(5)]
    write_csv(tmp_path / "chat_train.csv", ["text", "label"], rows)
    write_csv(tmp_path / "chat_val.csv", ["text", "label"], rows)
    train = load_split(tmp_path, categories, "train")
    assert Counter(e.allowed for e in train) == {(0,): 3, (1,): 5}
    assert train == load_split(tmp_path, categories, "train")  # the cap's sample is fixed
    assert len(load_split(tmp_path, categories, "val")) == 15  # never capped


def test_stratified_split_keeps_proportions_per_label_and_source():
    rows = ([ex(f"clean {i}", NON_TOXIC) for i in range(100)] + [ex(f"threat {i}", THREAT) for i in range(20)]
            + [ex(f"other {i}", NON_TOXIC, source="davidson") for i in range(10)])
    train, val = stratified_split(rows, val_fraction=0.2, seed=1)
    assert Counter((e.source, e.allowed) for e in val) == {
        ("own", (NON_TOXIC,)): 20, ("own", (THREAT,)): 4, ("davidson", (NON_TOXIC,)): 2}
    assert Counter((e.source, e.allowed) for e in train) == {
        ("own", (NON_TOXIC,)): 80, ("own", (THREAT,)): 16, ("davidson", (NON_TOXIC,)): 8}
    assert sorted(e.text for e in train + val) == sorted(e.text for e in rows)  # disjoint, nothing lost
    assert stratified_split(rows, 0.2, seed=1) == (train, val)  # deterministic
    assert stratified_split(rows, 0.2, seed=2)[1] != val


def test_oversample_rare_repeats_only_rare_exact_categories():
    clean = [ex(f"clean {i}", NON_TOXIC) for i in range(10)]
    threats = [ex(f"threat {i}", THREAT) for i in range(2)]
    partial = [ex(f"partial {i}", PROFANITY, INSULT) for i in range(3)]
    rows = clean + threats + partial
    result = oversample_rare(rows, min_rows=5, seed=3)
    assert result[: len(rows)] == rows  # originals first, unchanged
    extra = result[len(rows):]
    assert len(extra) == 3 and all(e in threats for e in extra)
    assert oversample_rare(rows, min_rows=2) == rows  # nothing is rare


def test_oversample_rare_counts_but_never_repeats_fixed_sources():
    public = [ex(f"public threat {i}", THREAT) for i in range(2)]
    own = [ex(f"own threat {i}", THREAT, source="studio_chat") for i in range(2)]
    rows = public + own
    result = oversample_rare(rows, min_rows=6, seed=3, fixed_sources=frozenset({"studio_chat"}))
    extra = result[len(rows):]
    assert len(extra) == 2 and all(e in public for e in extra)  # own rows count toward the 6
    only_own = oversample_rare(own, min_rows=6, fixed_sources=frozenset({"studio_chat"}))
    assert only_own == own  # nothing may be drawn


def test_extra_file_is_exact_category_rows_named_after_the_file(tmp_path):
    path = write_csv(tmp_path / "studio_chat.csv", ["text", "label", "kind"],
                     [["focus their healer", "non_toxic", "target_call"], ["uninstall, nobody wants you", "insult_harassment", "x"]])
    rows = load_extra_file(path, CATEGORIES)
    assert [(e.text, e.allowed, e.source) for e in rows] == [
        ("focus their healer", (NON_TOXIC,), "studio_chat"),
        ("uninstall, nobody wants you", (INSULT,), "studio_chat")]
    bad = write_csv(tmp_path / "bad.csv", ["text", "label"], [["hi", "spam"]])
    with pytest.raises(DataFileError, match=r"bad.csv:2: unknown category 'spam'"):
        load_extra_file(bad, CATEGORIES)
    with pytest.raises(DataFileError, match="not found"):
        load_extra_file(tmp_path / "missing.csv", CATEGORIES)


def test_training_rows_add_the_extra_file_repeated_after_deduplication(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "own_train.csv", ["text", "label"], [[f"public line {i}", "non_toxic"] for i in range(6)])
    write_csv(data / "own_val.csv", ["text", "label"], [["in validation", "threat"]])
    extra = write_csv(tmp_path / "game_talk.csv", ["text", "label"],
                      [["i will find you irl", "threat"], ["IN  validation", "threat"], ["public line 0", "non_toxic"]])
    train, val = _load_rows(TrainOptions(data_dir=str(data), imbalance="none", extra_train=str(extra),
                                         extra_train_repeat=3), CATEGORIES)
    assert [e.text for e in val] == ["in validation"]
    # validation texts and texts already in the data are dropped before repeating
    assert Counter((e.text, e.source) for e in train) == {
        **{(f"public line {i}", "own"): 1 for i in range(6)}, ("i will find you irl", "game_talk"): 3}


def test_oversampling_repeats_public_rows_and_leaves_the_extra_file_at_its_repeat(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "own_train.csv", ["text", "label"],
              [[f"public line {i}", "non_toxic"] for i in range(30)] + [["public threat", "threat"]])
    write_csv(data / "own_val.csv", ["text", "label"], [["in validation", "threat"]])
    extra = write_csv(tmp_path / "game_talk.csv", ["text", "label"], [["i will find you irl", "threat"]])
    train, _ = _load_rows(TrainOptions(data_dir=str(data), min_rows_per_category=10, extra_train=str(extra),
                                       extra_train_repeat=3), CATEGORIES)
    threats = Counter(e.text for e in train if e.allowed == (THREAT,))
    assert threats == {"i will find you irl": 3, "public threat": 7}


def test_extra_rows_never_land_in_a_split_off_validation_set(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "own_train.csv", ["text", "label"], [[f"public line {i}", "non_toxic"] for i in range(20)])
    extra = write_csv(tmp_path / "studio.csv", ["text", "label"], [[f"studio line {i}", "threat"] for i in range(20)])
    train, val = _load_rows(TrainOptions(data_dir=str(data), imbalance="none", extra_train=str(extra)), CATEGORIES)
    assert len(val) == 4 and {e.source for e in val} == {"own"}
    assert sum(e.source == "studio" for e in train) == 20


def test_disguised_copies_follow_oversampling_and_keep_labels(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "own_train.csv", ["text", "label"],
              [[f"public line {i}", "non_toxic"] for i in range(30)] + [["you are a worthless idiot", "insult_harassment"]])
    write_csv(data / "own_val.csv", ["text", "label"], [["in validation", "threat"]])
    options = TrainOptions(data_dir=str(data), min_rows_per_category=10, obfuscate_fraction=0.5)
    train, _ = _load_rows(options, CATEGORIES)
    originals, copies = train[:40], train[40:]  # 31 rows, the insult repeated to 10, then the copies
    assert Counter(e.allowed for e in originals) == {(NON_TOXIC,): 30, (INSULT,): 10}
    assert len(copies) == 20 and train == _load_rows(options, CATEGORIES)[0]
    assert copies == obfuscated_copies(originals, 0.5, options.seed)  # labels kept: tests/training/test_obfuscate.py
    texts = {e.text for e in originals}
    assert sum(copy.text not in texts for copy in copies) >= 15  # half the words disguised: most copies differ


@pytest.mark.parametrize("change, message", [
    ({"extra_train_repeat": 0}, "--extra-train-repeat must be at least 1"),
    ({"obfuscate_fraction": 1.5}, r"--obfuscate-fraction in \[0, 1\]"),
    ({"extra_train": "own.csv"}, "is a source of the categories file"),
])
def test_bad_extra_options_say_what_is_wrong(tmp_path, change, message):
    data = tmp_path / "data"
    data.mkdir()
    write_csv(data / "own_train.csv", ["text", "label"], [["a line", "non_toxic"]])
    if "extra_train" in change:
        change = {"extra_train": str(write_csv(tmp_path / change["extra_train"], ["text", "label"], [["x", "threat"]]))}
    with pytest.raises((SystemExit, DataFileError), match=message):
        _load_rows(TrainOptions(data_dir=str(data), **change), CATEGORIES)


def test_summarize_counts_per_source_and_label():
    rows = [ex("a", NON_TOXIC), ex("b", PROFANITY, INSULT), ex("c", PROFANITY, INSULT, source="jigsaw")]
    assert summarize(rows, CATEGORIES) == {
        "jigsaw": {"profanity|insult_harassment": 1},
        "own": {"non_toxic": 1, "profanity|insult_harassment": 1},
    }


def test_balanced_weights_match_hand_computed_values():
    rows = ([ex(f"clean {i}", NON_TOXIC) for i in range(6)] + [ex(f"prof {i}", PROFANITY) for i in range(2)]
            + [ex("insult", INSULT), ex("either", PROFANITY, INSULT)])
    # exact counts 6/2/1 over k=3 categories: 9/18=0.5, 9/6=1.5, 9/3=3; the partial row gets
    # (1.5+3)/2=2.25; all scaled by 10/11.25 so they average 1.
    scale = 10 / 11.25
    expected = [0.5 * scale] * 6 + [1.5 * scale] * 2 + [3 * scale, 2.25 * scale]
    assert balanced_example_weights(rows, 5) == pytest.approx(expected)
    assert sum(balanced_example_weights(rows, 5)) == pytest.approx(len(rows))


def test_balanced_weights_are_clipped():
    rows = [ex(f"clean {i}", NON_TOXIC) for i in range(30)] + [ex("threat", THREAT)]
    weights = balanced_example_weights(rows, 5, max_weight=4.0)
    assert weights[-1] / weights[0] == pytest.approx(4.0 / (31 / 60))  # 31/2 clipped to 4, against 31/60


CONDA_SOURCE = load_categories().sources["conda"]


def conda_row(id_, conversation, time, slot, text):
    return {"id": str(id_), "conversation_id": str(conversation), "chat_time": str(time),
            "player_slot": str(slot), "text": text}


def test_previous_messages_are_ordered_by_time_tagged_by_speaker_and_stay_in_their_conversation():
    rows = [conda_row(3, 1, 50, 0, "third"), conda_row(1, 1, -10, 0, "first [SEPA] again"),
            conda_row(2, 1, 20, 7, "second"),
            conda_row(4, 2, 30, 0, "elsewhere")]
    context = previous_messages(rows, count=2, source=CONDA_SOURCE)
    assert context["1"] == ""
    assert context["2"] == "OTHER first\nagain"
    assert context["3"] == "SAME first\nagain OTHER second"
    assert context["4"] == ""
    assert previous_messages(rows, count=1, source=CONDA_SOURCE)["3"] == "OTHER second"
    assert message_text(rows[1]["text"], CONDA_SOURCE) == "first\nagain"
