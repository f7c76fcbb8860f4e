"""Markdown tables of evaluation reports: the summary, the stdout table, the comparison of two
models, and the proposed thresholds. Reports are the dicts `training.evaluate` writes (a
`moderation-train` metrics.json has the same metric keys and works too)."""

from __future__ import annotations

import math

POOLED = "pooled"
BINARY_METRICS = (("precision", "P"), ("recall", "R"), ("f1", "F1"), ("auc", "AUC"))


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _delta(a, b) -> str:
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)):
        return "n/a"
    return f"{b - a:+.3f}"


def _binary_sections(report: dict) -> list[tuple[str, dict]]:
    return [(POOLED, report["binary"])] + [(s, m["binary"]) for s, m in report.get("per_source", {}).items()]


def model_name(report: dict, fallback: str = "model") -> str:
    return str(report.get("model", {}).get("name") or fallback)


def multiclass_table(report: dict) -> list[str]:
    multi = report["multiclass"]
    lines = [
        f"Multi-class, {multi['rows']} rows with an exact label: macro-F1 **{_num(multi['macro_f1'])}**, "
        f"weighted-F1 {_num(multi['weighted_f1'])}, accuracy {_num(multi['accuracy'])}.",
        "",
        "| category | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in multi["per_category"].items():
        lines.append(f"| {name} | {_num(m['precision'])} | {_num(m['recall'])} | {_num(m['f1'])} | {m['support']} |")
    return lines


def binary_table(report: dict) -> list[str]:
    lines = [
        "Binary toxic vs non_toxic (predicted toxic = top category is not non_toxic; "
        "AUC on toxic score = 1 - score(non_toxic)):",
        "",
        "| data | rows | precision | recall | F1 | macro-F1 | AUC | exact-row macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    per_source = report.get("per_source", {})
    for name, m in _binary_sections(report):
        multi = report["multiclass"] if name == POOLED else per_source[name]["multiclass"]
        lines.append(f"| {name} | {m['rows']} | {_num(m['precision'])} | {_num(m['recall'])} | {_num(m['f1'])} "
                     f"| {_num(m['macro_f1'])} | {_num(m['auc'])} | {_num(multi['macro_f1'])} |")
    return lines


def auc_table(report: dict) -> list[str]:
    """Each category's one-vs-rest AUC (exact positives against rows that exclude it), and each
    multi-label source column's AUC with the score of the category it maps to."""
    names = list(report.get("category_auc", {}))
    if not names:
        return []
    lines = ["Category AUC (positives: exact label; negatives: labels without the category):", "",
             "| data | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    sections = [(POOLED, report)] + sorted(report.get("per_source", {}).items())
    for name, section in sections:
        aucs = section.get("category_auc", {})
        lines.append(f"| {name} | " + " | ".join(_num(aucs.get(n)) for n in names) + " |")
    for source, aucs in report.get("column_auc", {}).items():
        lines += ["", f"`{source}` columns, AUC of the mapped category's score: "
                  + ", ".join(f"{column} {_num(value)}" for column, value in aucs.items())]
    return lines


def stdout_table(report: dict) -> str:
    data, timing = report.get("data", {}), report.get("timing", {})
    head = (f"{model_name(report)}: {data.get('rows', '?')} {data.get('split', '')} rows, "
            f"{timing.get('ms_per_text', float('nan')):.2f} ms per text")
    return "\n".join([head, ""] + multiclass_table(report) + [""] + binary_table(report) + [""]
                     + auc_table(report)) + "\n"


def summary_markdown(report: dict) -> str:
    model, data = report.get("model", {}), report.get("data", {})
    details = ", ".join(f"{k} `{v}`" for k, v in model.items() if k not in ("name", "thresholds") and v is not None)
    lines = [f"# Evaluation of `{model_name(report)}`", "", f"- Model: {details}",
             f"- Data: {data.get('rows')} rows of the `{data.get('split')}` split in `{data.get('dir')}` "
             f"(categories `{data.get('categories')}`; "
             f"max rows {data.get('max_rows') or 'all'}, seed {data.get('seed')})",
             f"- Scoring time: {report.get('timing', {}).get('ms_per_text')} ms per text", ""]
    lines += multiclass_table(report) + [""] + binary_table(report) + [""] + auc_table(report) + [""]
    calibration = report.get("calibration", {})
    lines += [f"Expected calibration error of the toxic score ({calibration.get('bins')} bins): "
              f"{_num(calibration.get('ece'))}.", ""]
    lines += [f"![{name}]({file})" for name, file in report.get("figures", {}).items()]
    lines += ["", "## Rows per source and label", ""]
    lines += [f"- `{source}`: " + ", ".join(f"{k} {v}" for k, v in counts.items())
              for source, counts in data.get("summary", {}).items()]
    if "thresholds" in report:
        lines += ["", thresholds_table(report["thresholds"])]
        if "overall" in report["thresholds"]:
            lines += ["", served_flag_table(report["thresholds"]["overall"])]
    return "\n".join(lines) + "\n"


def thresholds_table(result: dict) -> str:
    lines = [
        f"Proposed thresholds for precision >= {result['target_precision']} "
        "(positives: exact label; negatives: labels without the category; partial labels containing it skipped):",
        "",
        "| category | threshold | precision | recall | flagged | positives | negatives | skipped | reached |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in result["categories"].items():
        reached = "yes" if p["reached"] else f"NO (best precision {_num(p['best_precision'])}; capped)"
        lines.append(f"| {name} | {p['threshold']:.6g} | {_num(p['precision'])} | {_num(p['recall'])} | {p['flagged']} "
                     f"| {p['positives']} | {p['negatives']} | {p['skipped']} | {reached} |")
    return "\n".join(lines) + "\n"


def served_flag_table(overall: dict) -> str:
    """The gateway's `toxic` flag under the proposed policy next to the model's top category."""
    lines = [
        f"Served toxic flag (toxic_threshold {overall['toxic_threshold']:g}, severity bands {overall['bands']}): "
        f"source-averaged macro-F1 {overall['objective']:.3f} (weights {overall['source_weights']}); best single "
        f"toxic_score threshold {overall['best_single_threshold']:g}: {overall['best_single_objective']:.3f}",
        "",
        "| source | rows | served precision | served recall | served macro-F1 "
        "| argmax precision | argmax recall | argmax macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source, row in overall["per_source"].items():
        served, argmax = row["served"], row["argmax"]
        lines.append(f"| {source} | {row['rows']} | {_num(served['precision'])} | {_num(served['recall'])} "
                     f"| {_num(served['macro_f1'])} | {_num(argmax['precision'])} | {_num(argmax['recall'])} "
                     f"| {_num(argmax['macro_f1'])} |")
    return "\n".join(lines) + "\n"


def compare_markdown(a: dict, b: dict) -> str:
    """Side by side: macro-F1, per-category F1, and binary P/R/F1/AUC pooled and per source."""
    name_a, name_b = model_name(a, "A"), model_name(b, "B")
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    lines = [f"# Comparison: `{name_a}` vs `{name_b}`", ""]
    rows_a, rows_b = a.get("data", {}).get("rows"), b.get("data", {}).get("rows")
    if rows_a != rows_b:
        lines += [f"**Note:** evaluated on different rows ({rows_a} vs {rows_b}); differences are not paired.", ""]
    lines += [f"| metric | {name_a} | {name_b} | {name_b} minus {name_a} |", "|---|---:|---:|---:|"]
    pairs = [("macro-F1 (exact rows)", a["multiclass"]["macro_f1"], b["multiclass"]["macro_f1"]),
             ("weighted-F1 (exact rows)", a["multiclass"]["weighted_f1"], b["multiclass"]["weighted_f1"])]
    categories = list(dict.fromkeys(list(a["multiclass"]["per_category"]) + list(b["multiclass"]["per_category"])))
    for name in categories:
        pairs.append((f"F1 {name}", a["multiclass"]["per_category"].get(name, {}).get("f1"),
                      b["multiclass"]["per_category"].get(name, {}).get("f1")))
    binary_a, binary_b = dict(_binary_sections(a)), dict(_binary_sections(b))
    for source in list(dict.fromkeys(list(binary_a) + list(binary_b))):
        for key, label in BINARY_METRICS:
            pairs.append((f"{source} binary {label}", binary_a.get(source, {}).get(key),
                          binary_b.get(source, {}).get(key)))
    lines += [f"| {label} | {_num(x)} | {_num(y)} | {_delta(x, y)} |" for label, x, y in pairs]
    return "\n".join(lines) + "\n"
