"""A reproducible corpus of game-chat-like messages for benchmarks and load tests.

Lengths follow game chat: most messages are a few words (under ~20 tokens) with a long tail up
to the model's limit. Words come from a small in-game vocabulary plus a few insults so that
both verdicts occur; nothing is read from the public datasets, so nothing offensive from them
can end up in logs.
"""

from __future__ import annotations

import random

WORDS = (
    "gg wp glhf nice shot push mid top bot lane jungle heal tank dps carry ult cooldown rez "
    "team fight objective dragon baron tower base defend attack flank retreat ping lag fps "
    "noob idiot trash report stupid useless loser afk feed ward map rotate buff nerf patch "
    "queue rank elo match round win lose again please thanks sorry lol omg why how what now"
).split()
SEED = 20261123


def chat_messages(count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        words = min(60, max(1, int(rng.lognormvariate(1.6, 0.7))))  # median ~5 words, tail to 60
        messages.append(" ".join(rng.choice(WORDS) for _ in range(words)))
    return messages
