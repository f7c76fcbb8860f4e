"""`moderation-compare-runs`: one table over several `moderation-train` run directories.

    moderation-compare-runs runs/sweep/* --out training/reports/sweep.md

For each run: the options that differ between the runs (from config.json), training time, exact-row
macro-F1 and per-category F1, pooled binary F1 and AUC, and the issue's two headline figures
(tweeteval_offensive binary macro-F1, jigsaw AUC), from metrics.json. Only metrics, never texts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HEADLINE = (("tweeteval_offensive", "macro_f1", "tweeteval_offensive binary macro-F1"),
            ("jigsaw", "auc", "jigsaw AUC"))


def load_run(run_dir: Path) -> dict:
    metrics_path, config_path = run_dir / "metrics.json", run_dir / "config.json"
    if not metrics_path.exists():
        raise SystemExit(f"{run_dir}: no metrics.json (has the run finished?)")
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {"name": run_dir.name, "config": config, "metrics": json.loads(metrics_path.read_text())}


def differing_options(runs: list[dict]) -> list[str]:
    keys = sorted({k for run in runs for k in run["config"]} - {"output_dir"})
    return [k for k in keys if len({json.dumps(run["config"].get(k)) for run in runs}) > 1]


def table(runs: list[dict]) -> list[str]:
    options = differing_options(runs)
    categories = list(runs[0]["metrics"]["multiclass"]["per_category"])
    header = (["run"] + options + ["train min", "macro-F1"] + [f"F1 {c}" for c in categories]
              + ["binary F1", "binary AUC"] + [label for _, _, label in HEADLINE])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(options) + "---|" + "---:|" * (len(header) - 1 - len(options))]
    for run in runs:
        m = run["metrics"]
        cells = [run["name"]] + [str(run["config"].get(k)) for k in options]
        cells.append(f"{m.get('train_seconds', float('nan')) / 60:.1f}")
        cells.append(f"{m['multiclass']['macro_f1']:.3f}")
        cells += [f"{m['multiclass']['per_category'][c]['f1']:.3f}" for c in categories]
        cells += [f"{m['binary']['f1']:.3f}", f"{m['binary']['auc']:.3f}"]
        for source, key, _ in HEADLINE:
            value = m.get("per_source", {}).get(source, {}).get("binary", {}).get(key)
            cells.append("n/a" if value is None else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="moderation-compare-runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="moderation-train run directories")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    runs = [load_run(Path(path)) for path in args.runs if Path(path).is_dir()]
    if not runs:
        raise SystemExit("no run directories given")
    lines = table(runs)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
