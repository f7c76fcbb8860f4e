"""Activation's behavioural smoke test: known-toxic and known-clean texts must get the expected
`toxic` flag from a new version (under the policy in force) before traffic moves to it.

A version that answers non_toxic for everything, or flags everything, has the right output
width and loads fine; only its verdicts show it is broken. Failures name the text by its index
in the file (`toxic[1]`), never the text itself: these files hold offensive words.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SMOKE_TEXTS = Path(__file__).with_name("smoke_texts.toml")
MAX_SMOKE_TEXTS = 32  # all of them go to the model in one call (max_batch_size is 64)


@dataclass(frozen=True)
class SmokeTexts:
    toxic: tuple[str, ...]
    clean: tuple[str, ...]
    source: str

    def labelled(self) -> list[tuple[str, str, bool]]:
        """(name, text, expected toxic flag), e.g. ("toxic[0]", ..., True)."""
        return ([(f"toxic[{i}]", t, True) for i, t in enumerate(self.toxic)]
                + [(f"clean[{i}]", t, False) for i, t in enumerate(self.clean)])


def load_smoke_texts(path: str | Path = "") -> SmokeTexts:
    """Reads `toxic = [...]` and `clean = [...]`; raises ValueError with the reason."""
    path = Path(path) if path else DEFAULT_SMOKE_TEXTS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"smoke texts {path}: {err}") from None
    lists = {}
    for key in ("toxic", "clean"):
        value = data.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(t, str) and t.strip() for t in value):
            raise ValueError(f"smoke texts {path}: `{key}` must be a non-empty list of non-empty strings")
        lists[key] = tuple(value)
    unknown = sorted(set(data) - {"toxic", "clean"})
    if unknown:
        raise ValueError(f"smoke texts {path}: unknown keys {unknown} (expected toxic, clean)")
    if len(lists["toxic"]) + len(lists["clean"]) > MAX_SMOKE_TEXTS:
        raise ValueError(f"smoke texts {path}: at most {MAX_SMOKE_TEXTS} texts in all")
    return SmokeTexts(lists["toxic"], lists["clean"], str(path))


def wrong_verdicts(texts: SmokeTexts, scores, labels, policy) -> list[str]:
    """Names of the texts whose toxic flag differs from the expected one, with the score seen."""
    wrong = []
    for (name, _, expected), row in zip(texts.labelled(), scores, strict=True):
        decision = policy.decide(row, list(labels))  # no text: operator lists are not the model's doing
        if decision.toxic != expected:
            wrong.append(f"{name} judged {'toxic' if decision.toxic else 'clean'} "
                         f"(toxic score {decision.toxic_score:.2f})")
    return wrong
