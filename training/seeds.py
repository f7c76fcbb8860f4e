"""`moderation-seeds`: what a studio gets from a hundred labelled lines of its own game chat.

    moderation-seeds --game-source conda --max-public-rows 3000 --epochs 1 --threads 2

Four models, trained with moderation-train's recipe (training/experiments.py), evaluated on the
same rows: every validation row of every source, game chat included.

- public_only: the public (non-game) training files;
- seeds_only: N game-chat rows with an exact label, drawn stratified by category from the game
  source's TRAIN file (the studio's hand-labelled seed), for --seed-epochs;
- seeds_plus_public: those N rows plus the public rows;
- game_plus_public: every game-chat training row plus the public rows.

The game source's validation rows are never trained on. The output directory gets report.json and
report.md with, per model, the game source's binary toxic-vs-non_toxic numbers (the pitch), every
source's, and the pooled ones. Dataset texts are never printed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from training.data import Example
from training.train import TrainOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedsOptions:
    data_dir: str = TrainOptions.data_dir
    categories: str = ""  # empty: the shipped default_categories.toml
    base_model: str = ""  # empty: the packaged MiniLM-L6
    output_dir: str = "runs/seeds"
    game_source: str = "conda"
    seed_rows: int = 100  # N: the studio's own labelled lines
    epochs: float = 1.0
    seed_epochs: float = 10.0  # seeds_only: 100 rows are 4 steps per epoch
    max_public_rows: int = 0  # 0: every public training row
    max_eval_rows: int = 0  # 0: every validation row
    min_rows_per_category: int = TrainOptions.min_rows_per_category  # scaled to the rows used
    max_length: int = TrainOptions.max_length
    threads: int = 0
    seed: int = 13

    def __post_init__(self) -> None:
        if self.seed_rows < 1 or self.epochs <= 0 or self.seed_epochs <= 0:
            raise ValueError("need --seed-rows >= 1 and --epochs, --seed-epochs > 0")
        if min(self.max_public_rows, self.max_eval_rows, self.threads) < 0:
            raise ValueError("--max-public-rows, --max-eval-rows and --threads must be >= 0")


HELP = {
    "game_source": "the categories file's game-chat source (its train file gives the seeds)",
    "seed_rows": "N exact-label game-chat rows drawn from the game source's train file",
    "seed_epochs": "epochs for seeds_only",
    "max_public_rows": "seeded random cap on public training rows; 0: all",
    "max_eval_rows": "seeded random cap on the evaluation rows; 0: all validation rows",
}


@dataclass(frozen=True)
class SeedsData:
    seeds: list[Example]
    game: list[Example]  # every game-chat training row (the seeds among them)
    public: list[Example]  # after the cap
    public_available: int
    eval_rows: list[Example]


def main(argv=None) -> None:
    from training.experiments import parse_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(SeedsOptions, "moderation-seeds", __doc__, HELP, argv)
    print(report_markdown(run_seeds(options)))


def load_seeds_data(options: SeedsOptions, categories) -> SeedsData:
    from training.data import deduplicate, load_split
    from training.experiments import cap_rows
    from training.fewshot import draw_own_rows

    data_dir = Path(options.data_dir)
    if options.game_source not in categories.sources:
        raise SystemExit(f"no source {options.game_source!r} in the categories file")
    val_rows = load_split(data_dir, categories, "val")
    train_rows = deduplicate(load_split(data_dir, categories, "train"), exclude=val_rows)
    game = [row for row in train_rows if row.source == options.game_source]
    public = [row for row in train_rows if row.source != options.game_source]
    if not game or not val_rows:
        raise SystemExit(f"no {options.game_source} train rows or no validation rows in {data_dir}")
    seeds, _ = draw_own_rows(game, options.seed_rows, options.seed)
    logger.info("seeds %d, game rows %d, public rows %d, evaluation rows %d",
                len(seeds), len(game), len(public), len(val_rows))
    return SeedsData(seeds, game, cap_rows(public, options.max_public_rows, options.seed, "seeds-public"),
                     len(public), cap_rows(val_rows, options.max_eval_rows, options.seed, "seeds-eval"))


def training_sets(data: SeedsData, options: SeedsOptions) -> dict[str, tuple[list[Example], float]]:
    return {
        "public_only": (data.public, options.epochs),
        "seeds_only": (data.seeds, options.seed_epochs),
        "seeds_plus_public": (data.seeds + data.public, options.epochs),
        "game_plus_public": (data.game + data.public, options.epochs),
    }


def run_seeds(options: SeedsOptions) -> dict:
    """Trains and evaluates the four models; writes report.json and report.md; returns the report."""
    import torch

    from training.categories import DEFAULT_CATEGORIES_PATH, load_categories
    from training.experiments import fit_classifier, oversample_scaled
    from training.fewshot import _evaluate

    if options.threads:
        torch.set_num_threads(options.threads)
    out_dir = Path(options.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    categories = load_categories(options.categories or DEFAULT_CATEGORIES_PATH)
    data = load_seeds_data(options, categories)
    full_rows = data.public_available + len(data.game)
    approaches = {}
    for name, (rows, epochs) in training_sets(data, options).items():
        rows = oversample_scaled(rows, full_rows, options.min_rows_per_category, options.seed)
        train_options = TrainOptions(data_dir=options.data_dir, categories=options.categories,
                                     base_model=options.base_model, output_dir=str(out_dir / name), epochs=epochs,
                                     max_length=options.max_length, seed=options.seed, threads=options.threads)
        fitted = fit_classifier(train_options, categories.names, rows, out_dir / name)
        approaches[name] = {"epochs": epochs, "train": fitted.summary(),
                            "metrics": _evaluate(fitted, data.eval_rows, categories, options)}
        logger.info("%s: %s binary macro-F1 %.3f", name, options.game_source,
                    approaches[name]["metrics"]["per_source"][options.game_source]["binary"]["macro_f1"])
    report = {"options": asdict(options),
              "data": {"seed_rows": len(data.seeds), "game_rows": len(data.game), "public_rows": len(data.public),
                       "public_rows_available": data.public_available, "eval_rows": len(data.eval_rows)},
              "approaches": approaches}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "report.md").write_text(report_markdown(report), encoding="utf-8")
    return report


def report_markdown(report: dict) -> str:
    from training.experiments import num

    options, data, approaches = report["options"], report["data"], report["approaches"]
    game = options["game_source"]
    sources = sorted(next(iter(approaches.values()))["metrics"]["per_source"])
    lines = [
        f"# Seeds: {data['seed_rows']} lines of our own game chat, with and without public data", "",
        f"- Game chat: `{game}`; seeds drawn stratified from its train file; {data['game_rows']} game rows in all.",
        f"- Public rows: {data['public_rows']} of {data['public_rows_available']}; {options['epochs']:g} epoch(s) "
        f"({options['seed_epochs']:g} for seeds_only).",
        f"- Evaluation: the same {data['eval_rows']} validation rows for every model; binary = toxic vs "
        "non_toxic, toxic score 1 - score(non_toxic).", "",
        f"| model | train rows | {game} macro-F1 | {game} AUC | " + " | ".join(f"{s} macro-F1" for s in sources
                                                                      if s != game) + " | pooled macro-F1 (exact rows) |",
        "|---|---:|---:|---:|" + "---:|" * (len(sources) - 1) + "---:|",
    ]
    for name, approach in approaches.items():
        per = approach["metrics"]["per_source"]
        cells = [name, str(approach["train"]["rows"]), num(per[game]["binary"]["macro_f1"]),
                 num(per[game]["binary"]["auc"])]
        cells += [num(per[s]["binary"]["macro_f1"]) for s in sources if s != game]
        cells.append(num(approach["metrics"]["multiclass"]["macro_f1"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
