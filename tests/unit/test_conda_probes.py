"""A line's context is built from earlier lines of its own conversation only (training.data)."""

from __future__ import annotations

from training.categories import load_categories
from training.data import message_text, previous_messages

CONDA = load_categories().sources["conda"]


def row(id_, conversation, time, slot, text):
    return {"id": str(id_), "conversation_id": str(conversation), "chat_time": str(time),
            "player_slot": str(slot), "text": text}


def test_previous_messages_are_ordered_by_time_tagged_by_speaker_and_stay_in_their_conversation():
    rows = [row(3, 1, 50, 0, "third"), row(1, 1, -10, 0, "first [SEPA] again"), row(2, 1, 20, 7, "second"),
            row(4, 2, 30, 0, "elsewhere")]
    context = previous_messages(rows, count=2, source=CONDA)
    assert context["1"] == ""
    assert context["2"] == "OTHER first\nagain"
    assert context["3"] == "SAME first\nagain OTHER second"
    assert context["4"] == ""
    assert previous_messages(rows, count=1, source=CONDA)["3"] == "OTHER second"
    assert message_text(rows[1]["text"], CONDA) == "first\nagain"
