"""The same text gets the same scores whatever shares its Triton batch: alone, inside batch
requests of different neighbours and lengths, and among concurrent callers whose rows the
coalescer and Triton's dynamic batching merge."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from contract.pb import moderation_pb2

pytestmark = pytest.mark.integration

MAX_SCORE_DIFF = 1e-4  # the bound: far below any threshold's resolution
TEXT = "you are a worthless idiot, uninstall the game"
NEIGHBOURS = [
    "gg", "push mid now please", "thanks for the heal, nice teamwork",
    "can we switch to the north lane next round? the enemy jungler keeps ganking bot and we have no wards",
    "fuck you moron, you are trash", "lol", "report the afk please, he has been gone for ten minutes",
    "nice shot", "ez", "why would you buy that item first, it makes no sense at all on this hero",
]


def _scores(verdict) -> list[float]:
    return [s.score for s in verdict.scores]


def _max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_a_text_scores_the_same_alone_and_in_twenty_different_batches(stub):
    alone = _scores(stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXT), timeout=30))
    rng = random.Random(7)
    worst = 0.0
    for size in range(2, 22):  # twenty batches, 2..21 texts, the text at a random place
        texts = rng.choices(NEIGHBOURS, k=size - 1)
        position = rng.randrange(size)
        texts.insert(position, TEXT)
        reply = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=60)
        worst = max(worst, _max_diff(alone, _scores(reply.verdicts[position])))
    assert worst < MAX_SCORE_DIFF, f"scores moved by {worst:.2e} with the batch"


def test_concurrent_callers_get_the_same_scores_for_the_same_text(stub):
    alone = _scores(stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=TEXT), timeout=30))

    def call(i: int) -> list[float]:  # even calls send the text, odd ones its neighbours
        text = TEXT if i % 2 == 0 else NEIGHBOURS[i % len(NEIGHBOURS)]
        return _scores(stub.ClassifyText(moderation_pb2.ClassifyTextRequest(text=text), timeout=60))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(96)))
    worst = max(_max_diff(alone, scores) for i, scores in enumerate(results) if i % 2 == 0)
    assert worst < MAX_SCORE_DIFF, f"scores moved by {worst:.2e} under concurrent load"
