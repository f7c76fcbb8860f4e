"""A fixed set of 8 predictions over 3 categories whose metrics are computed by hand in the tests.

row  scores (non_toxic, profanity, insult)  label            source  top        toxic score
 1   0.8 0.1 0.1                            non_toxic        A       non_toxic  0.2
 2   0.1 0.8 0.1                            non_toxic        B       profanity  0.9
 3   0.2 0.7 0.1                            profanity        A       profanity  0.8
 4   0.1 0.2 0.7                            profanity        B       insult     0.9
 5   0.1 0.1 0.8                            insult           A       insult     0.9
 6   0.2 0.6 0.2                            insult           B       profanity  0.8
 7   0.2 0.5 0.3                            {profanity, insult}  B   profanity  0.8  (toxic, kind unknown)
 8   0.4 0.5 0.1                            {non_toxic, profanity} A profanity -    (toxicity unknown)
"""

from __future__ import annotations

import numpy as np

NAMES = ("non_toxic", "profanity", "insult")
PROBS = np.array([
    [0.8, 0.1, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.7, 0.1],
    [0.1, 0.2, 0.7],
    [0.1, 0.1, 0.8],
    [0.2, 0.6, 0.2],
    [0.2, 0.5, 0.3],
    [0.4, 0.5, 0.1],
])
ALLOWED = np.array([
    [1, 0, 0],
    [1, 0, 0],
    [0, 1, 0],
    [0, 1, 0],
    [0, 0, 1],
    [0, 0, 1],
    [0, 1, 1],
    [1, 1, 0],
], dtype=np.float32)
SOURCES = ["A", "B", "A", "B", "A", "B", "B", "A"]
