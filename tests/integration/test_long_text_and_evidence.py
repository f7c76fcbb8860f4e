"""Long texts and explain through the real gateway and tritonserver (issue 14, parts 7 and 9)."""

from __future__ import annotations

import pytest

from contract.pb import moderation_pb2
from tests.integration.conftest import start_gateway

pytestmark = pytest.mark.integration

HARMLESS = [
    "good game everyone, well played.",
    "can we switch to the north lane next round?",
    "thanks for the heal, nice teamwork.",
    "let's group up at the river before the next objective.",
    "I will buy wards and boots after this wave.",
    "nice rotation, we took the tower without losses.",
]
TOXIC_TAIL = "you are a stupid idiot, shut up you worthless loser"
INSULT_SENTENCE = "you are such an idiot, uninstall the game"


def harmless_text(min_chars: int) -> str:
    text, index = "", 0
    while len(text) < min_chars:
        text += HARMLESS[index % len(HARMLESS)] + " "
        index += 1
    return text


@pytest.fixture(scope="module")
def stub(triton):
    running = start_gateway(triton)
    yield running.stub
    running.close()


def classify(stub, text, explain=False):
    return stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text, explain=explain), timeout=30)


def test_a_toxic_tail_after_1500_harmless_characters_is_flagged(stub):
    harmless = harmless_text(1500)
    alone = classify(stub, harmless)
    assert alone.top_category == "non_toxic" and not alone.toxic, alone
    tail = classify(stub, harmless + TOXIC_TAIL)
    assert tail.top_category != "non_toxic" and tail.toxic, tail
    batch = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=[harmless, harmless + TOXIC_TAIL]),
                                   timeout=30)
    assert [v.toxic for v in batch.verdicts] == [False, True]


def test_explain_returns_a_span_covering_the_insult(stub):
    verdict = classify(stub, INSULT_SENTENCE, explain=True)
    assert verdict.toxic and verdict.evidence, verdict
    assert all(e.source == "model" and 0 <= e.start < e.end <= len(INSULT_SENTENCE) for e in verdict.evidence)
    assert [e.weight for e in verdict.evidence] == sorted((e.weight for e in verdict.evidence), reverse=True)
    assert any("idiot" in INSULT_SENTENCE[e.start : e.end] for e in verdict.evidence)
    assert not classify(stub, INSULT_SENTENCE).evidence  # nothing extra without explain


def test_explain_on_a_long_text_points_into_its_toxic_tail(stub):
    harmless = harmless_text(1500)
    verdict = classify(stub, harmless + INSULT_SENTENCE, explain=True)
    assert verdict.top_category != "non_toxic" and verdict.evidence, verdict
    assert verdict.evidence[0].end > len(harmless)
