"""moderation-seeds' data: seeds come from the game source's train file, stratified; the four
training sets are what their names say; game-chat validation rows are never trained on."""

from __future__ import annotations

from tests.training.test_game_chat_source import HEADER
from training.categories import load_categories
from training.seeds import SeedsOptions, load_seeds_data, training_sets


def _conda(path, rows):
    lines = [f"{i},1,1,0,0,{text},{label},O,O" for i, (text, label) in enumerate(rows)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")


def test_seeds_come_from_game_train_rows_and_sets_are_built_from_them(tmp_path):
    train = [(f"clean line {i}", "other") for i in range(30)] + [(f"taunt line {i}", "implicit_toxic") for i in range(10)]
    _conda(tmp_path / "conda_train.csv", train + [("shared text", "other")])
    _conda(tmp_path / "conda_val.csv", [("val clean", "other"), ("val taunt", "implicit_toxic"), ("shared text", "other")])
    (tmp_path / "tweeteval_offensive_train.csv").write_text("text,label\n" + "".join(
        f"tweet {i},{'offensive' if i % 3 == 0 else 'not_offensive'}\n" for i in range(12)), encoding="utf-8")
    (tmp_path / "tweeteval_offensive_val.csv").write_text("text,label\nval tweet,not_offensive\n", encoding="utf-8")

    options = SeedsOptions(data_dir=str(tmp_path), seed_rows=8, max_public_rows=5)
    data = load_seeds_data(options, load_categories())

    assert len(data.seeds) == 8 and all(row.source == "conda" for row in data.seeds)
    assert sum(row.text.startswith("taunt") for row in data.seeds) == 2  # 10 of 40 rows: a quarter of 8
    assert "shared text" not in {row.text for row in data.game}  # also a validation row: never trained on
    assert len(data.game) == 40 and len(data.public) == 5 and data.public_available == 12
    assert {row.source for row in data.eval_rows} == {"conda", "tweeteval_offensive"}
    sets = training_sets(data, options)
    assert list(sets) == ["public_only", "seeds_only", "seeds_plus_public", "game_plus_public"]
    assert sets["seeds_only"] == (data.seeds, options.seed_epochs)
    assert len(sets["seeds_plus_public"][0]) == 13 and len(sets["game_plus_public"][0]) == 45
