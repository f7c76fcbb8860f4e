"""Figures are real PNG files, also for degenerate data; the comparison and summary tables."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.fixed_predictions import ALLOWED, NAMES, PROBS, SOURCES
from training import plots, tables
from training.evaluate import build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000, path


def test_every_figure_is_written_as_png(tmp_path):
    figures = plots.write_all(PROBS, ALLOWED, NAMES, SOURCES, tmp_path)
    assert set(figures) == {"confusion_matrix", "roc", "precision_recall", "calibration"}
    for name in figures.values():
        assert_png(tmp_path / name)


@pytest.mark.parametrize("rows", [slice(0, 2), slice(2, 6), slice(7, 8)],
                         ids=["clean-only", "toxic-only", "unknown-only"])
def test_figures_survive_data_without_both_classes(tmp_path, rows):
    figures = plots.write_all(PROBS[rows], ALLOWED[rows], NAMES, SOURCES[rows], tmp_path)
    for name in figures.values():
        assert_png(tmp_path / name)


def test_binary_groups_are_pooled_plus_sources_with_both_classes():
    groups = plots._binary_groups(PROBS, ALLOWED, SOURCES)
    assert [name for name, _, _ in groups] == ["pooled", "A", "B"]
    single = plots._binary_groups(PROBS, ALLOWED, ["A"] * len(PROBS))
    assert [name for name, _, _ in single] == ["pooled"]  # one source: no duplicate line


def other_report() -> dict:
    better = PROBS.copy()
    better[1] = [0.8, 0.1, 0.1]  # row 2 (non_toxic) now right: fixes the false alarm
    return build_report(better, ALLOWED, NAMES, SOURCES, scorer_info={"name": "better"})


def test_compare_table_lists_metrics_side_by_side():
    base = build_report(PROBS, ALLOWED, NAMES, SOURCES, scorer_info={"name": "base"})
    text = tables.compare_markdown(base, other_report())
    assert "`base` vs `better`" in text
    # macro-F1: base (2/3 + 0.4 + 0.5) / 3; better: non_toxic F1 1, profanity P 1/2 R 1/2 -> 0.5
    assert "| macro-F1 (exact rows) | 0.522 | 0.667 | +0.144 |" in text
    assert "| F1 non_toxic | 0.667 | 1.000 | +0.333 |" in text
    assert "| pooled binary P | 0.833 | 1.000 | +0.167 |" in text
    assert "| B binary AUC | 0.167 | 1.000 | +0.833 |" in text
    for source in ("pooled", "A", "B"):
        for label in ("P", "R", "F1", "AUC"):
            assert f"| {source} binary {label} |" in text
    assert "different rows" not in text


def test_compare_flags_reports_on_different_rows_and_same_names():
    a = build_report(PROBS, ALLOWED, NAMES, SOURCES, scorer_info={"name": "m"})
    b = build_report(PROBS[:6], ALLOWED[:6], NAMES, SOURCES[:6], scorer_info={"name": "m"})
    a["data"], b["data"] = {"rows": 8}, {"rows": 6}
    text = tables.compare_markdown(a, b)
    assert "different rows (8 vs 6)" in text and "`A: m` vs `B: m`" in text


def test_summary_and_stdout_tables():
    report = build_report(PROBS, ALLOWED, NAMES, SOURCES, scorer_info={"name": "fixed", "kind": "checkpoint"})
    report.update(data={"rows": 8, "split": "val", "summary": {"A": {"non_toxic": 1}}},
                  timing={"ms_per_text": 1.5}, figures={"roc": "roc.png"})
    summary = tables.summary_markdown(report)
    assert "![roc](roc.png)" in summary and "| B | 4 | 0.750 | 1.000 | 0.857 |" in summary
    assert np.isclose(report["calibration"]["ece"], 1.5 / 7) and "0.214" in summary
    assert tables.stdout_table(report).startswith("fixed: 8 val rows, 1.50 ms per text")
