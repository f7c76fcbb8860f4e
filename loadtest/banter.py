"""How the served model and policy read game banter (issue 14, part 10), through a running gateway.

tests/data/game_banter.csv holds lines written for this project: harmless violent-sounding game
talk ("kill him, he's one shot") and toxic game lines (insults, threats, "kys"). Every line goes
through ClassifyTextBatch, so what is measured is what a client gets: the model version the
gateway serves and the policy it applies. Printed and written to loadtest/results/banter.{json,md}:

- flagged rate on the harmless lines (verdict.toxic), overall and per kind;
- recall on the toxic lines (verdict.toxic), overall and per kind;
- the same two read from verdict.action ("review" or "block" counts as flagged) where the policy
  fills it.

tests/data/game_banter_holdout.csv is a second set in the same format, written blind (see
HOLDOUT_CSV); measure it with --csv. So is tests/data/ordinary_chat.csv (ORDINARY_CSV): harmless
lines only, ordinary chat that shares words with threats ("see you tomorrow", "i'll find you on
the map"), which the banter sets lack.

Targets (for a future model, not asserted): flagged rate on harmless <= 5%, toxic recall >= 90%.

    python -m loadtest.banter --address 127.0.0.1:50051
    python -m loadtest.banter --address 127.0.0.1:50051 --csv tests/data/game_banter_holdout.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

BANTER_CSV = Path(__file__).resolve().parents[1] / "tests" / "data" / "game_banter.csv"
# Written later by someone who had not seen game_banter.csv, the policy or the misses: the set to
# trust when the model, policy or lists were changed with game_banter.csv's misses in view.
HOLDOUT_CSV = BANTER_CSV.with_name("game_banter_holdout.csv")
# Written blind, before any model's scores were seen: lines a model that learned threat words as
# shortcuts would flag (decision 0021)
ORDINARY_CSV = BANTER_CSV.with_name("ordinary_chat.csv")
RESULTS_DIR = Path(__file__).with_name("results")
LABELS = ("harmless", "toxic")
MAX_HARMLESS_FLAGGED = 0.05  # issue 14's targets
MIN_TOXIC_RECALL = 0.90
FLAGGING_ACTIONS = ("review", "block")


@dataclass(frozen=True)
class BanterLine:
    text: str
    label: str  # "harmless" or "toxic"
    kind: str  # kill_talk, insult, threat, ...


@dataclass(frozen=True)
class Reading:
    """What the gateway answered for one line."""

    toxic: bool
    action: str  # "" where the policy sets none
    top_category: str


def load_banter(path: Path = BANTER_CSV) -> list[BanterLine]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [BanterLine(row["text"], row["label"], row["kind"]) for row in csv.DictReader(handle)]


def classify_lines(address: str, lines: list[BanterLine], timeout_s: float = 30.0) -> tuple[list[Reading], str]:
    """One Reading per line, and the serving model as "name/version"."""
    import grpc

    from contract.pb import moderation_pb2, moderation_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = moderation_pb2_grpc.ModerationStub(channel)
        model = stub.GetModelInfo(moderation_pb2.GetModelInfoRequest(), timeout=timeout_s)
        readings = []
        for start in range(0, len(lines), model.max_batch_texts):
            texts = [line.text for line in lines[start:start + model.max_batch_texts]]
            reply = stub.ClassifyTextBatch(moderation_pb2.ClassifyTextBatchRequest(texts=texts), timeout=timeout_s)
            readings += [Reading(v.toxic, v.action, v.top_category) for v in reply.verdicts]
    return readings, f"{model.model_name}/{model.model_version}"


def summarize(lines: list[BanterLine], readings: list[Reading]) -> dict:
    """Flagged rate on harmless lines and recall on toxic lines, overall and per kind, by the toxic
    flag and by the action; plus the lines each got wrong."""
    by_flag: dict[tuple[str, str], list[bool]] = defaultdict(list)
    by_action: dict[tuple[str, str], list[bool]] = defaultdict(list)
    wrong = {"harmless_flagged": [], "toxic_missed": []}
    for line, reading in zip(lines, readings, strict=True):
        flagged_by_action = reading.action in FLAGGING_ACTIONS
        for kind in ("all", line.kind):
            by_flag[line.label, kind].append(reading.toxic)
            by_action[line.label, kind].append(flagged_by_action)
        if reading.toxic != (line.label == "toxic"):
            key = "harmless_flagged" if reading.toxic else "toxic_missed"
            wrong[key].append({"text": line.text, "kind": line.kind, "top_category": reading.top_category})
    has_actions = any(reading.action for reading in readings)
    return {
        "lines": {label: sum(1 for line in lines if line.label == label) for label in LABELS},
        "by_toxic_flag": _rates(by_flag),
        "by_action": _rates(by_action) if has_actions else None,
        "targets": {"max_harmless_flagged": MAX_HARMLESS_FLAGGED, "min_toxic_recall": MIN_TOXIC_RECALL},
        "wrong": wrong,
    }


def _rates(flags: dict[tuple[str, str], list[bool]]) -> dict:
    """{"harmless_flagged": {kind: rate}, "toxic_recall": {kind: rate}}, "all" first."""
    names = {"harmless": "harmless_flagged", "toxic": "toxic_recall"}
    rates: dict[str, dict[str, float]] = {name: {} for name in names.values()}
    for (label, kind), values in sorted(flags.items(), key=lambda item: (item[0][0], item[0][1] != "all", item[0][1])):
        rates[names[label]][kind] = round(sum(values) / len(values), 6)
    rates["meets_targets"] = (rates["harmless_flagged"].get("all", 0.0) <= MAX_HARMLESS_FLAGGED
                              and rates["toxic_recall"].get("all", 1.0) >= MIN_TOXIC_RECALL)  # a set may hold no toxic line
    return rates


def to_markdown(report: dict) -> str:
    out = [f"# Game banter: {report['model']} through {report['address']}", "",
           f"{report['lines']['harmless']} harmless and {report['lines']['toxic']} toxic lines "
           f"(`{report['csv']}`); targets: harmless flagged <= {MAX_HARMLESS_FLAGGED:.0%}, "
           f"toxic recall >= {MIN_TOXIC_RECALL:.0%}.", ""]
    for reading in ("by_toxic_flag", "by_action"):
        rates = report[reading]
        if rates is None:
            out += [f"## {reading}", "", "The policy set no action on any verdict.", ""]
            continue
        out += [f"## {reading} (meets targets: {'yes' if rates['meets_targets'] else 'no'})", "",
                "| measure | kind | rate |", "|---|---|---|"]
        for measure in ("harmless_flagged", "toxic_recall"):
            out += [f"| {measure} | {kind} | {rate:.1%} |" for kind, rate in rates[measure].items()]
        out.append("")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="loadtest.banter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50051", help="a running gateway")
    parser.add_argument("--csv", default=str(BANTER_CSV))
    parser.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = parser.parse_args(argv)
    lines = load_banter(Path(args.csv))
    readings, model = classify_lines(args.address, lines)
    report = {"address": args.address, "model": model, "csv": Path(args.csv).name, **summarize(lines, readings)}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "banter.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown = to_markdown(report)
    (out / "banter.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    print(f"wrote {out / 'banter.json'} and {out / 'banter.md'}")


if __name__ == "__main__":
    main()
