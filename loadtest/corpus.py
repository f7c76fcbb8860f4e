"""A reproducible corpus of game-chat-like messages for benchmarks and load tests.

Lengths follow game chat: most messages are a few words (under ~20 tokens) with a long tail up
to the model's limit. Words come from a small in-game vocabulary plus a few insults so that
both verdicts occur; nothing is read from the public datasets, so nothing offensive from them
can end up in logs.
"""

from __future__ import annotations

import random

from loadtest.speech import espeak_available, speak_wav

WORDS = (
    "gg wp glhf nice shot push mid top bot lane jungle heal tank dps carry ult cooldown rez "
    "team fight objective dragon baron tower base defend attack flank retreat ping lag fps "
    "noob idiot trash report stupid useless loser afk feed ward map rotate buff nerf patch "
    "queue rank elo match round win lose again please thanks sorry lol omg why how what now"
).split()
SEED = 20261123
VOICE_SENTENCES = (  # each about 5 s when spoken by espeak-ng at 150 words/min
    "good game everyone, that was a great match, see you all in the next round tonight",
    "shut up you stupid idiot, your team is trash and you should just uninstall the game",
    "push mid now and defend the tower please, the enemy jungler is coming from the top side",
)


def chat_messages(count: int, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        words = min(60, max(1, int(rng.lognormvariate(1.6, 0.7))))  # median ~5 words, tail to 60
        messages.append(" ".join(rng.choice(WORDS) for _ in range(words)))
    return messages


def voice_clips() -> list[bytes]:
    """WAV clips of VOICE_SENTENCES (loadtest.speech; [] without espeak-ng)."""
    return [speak_wav(sentence) for sentence in VOICE_SENTENCES] if espeak_available() else []
