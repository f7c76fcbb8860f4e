"""CONDA game chat as a training source: its labels map onto the categories and its joined
lines become one message of several lines."""

from __future__ import annotations

from training.categories import load_categories
from training.data import load_source_file

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
