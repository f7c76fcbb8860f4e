"""A small Dockerfile reader for the image tests: instructions grouped into build stages."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    value: str  # the rest of the logical line, continuations joined
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of CMD/ENTRYPOINT/HEALTHCHECK CMD, else None (shell form)."""
        text = re.sub(r"^CMD\s+", "", self.value) if self.keyword == "HEALTHCHECK" else self.value
        text = re.sub(r"^(--\w[\w-]*=\S+\s+)*", "", text) if self.keyword == "HEALTHCHECK" else text
        text = re.sub(r"^CMD\s+", "", text)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None


@dataclass
class Stage:
    base: str  # image reference after FROM (flags stripped)
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):  # comment lines inside a continuation are dropped
            continue
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, value = logical.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(value.split()), start)
        logical = ""
        if instruction.keyword == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(words[0], name))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"{path}:{number}: {instruction.keyword} before FROM")
        else:
            stages[-1].instructions.append(instruction)
    if logical:
        raise ValueError(f"{path}: ends inside a continued line")
    return stages
