"""Two side-by-side panels, legends and grids, saved as a PNG: the shape of the load-test plots.

Built on matplotlib's Agg canvas without pyplot, so nothing here depends on a display or changes
matplotlib's global backend.
"""

from __future__ import annotations

from pathlib import Path

DPI = 110


def two_panels():
    """(figure, left axes, right axes), 11 x 4 inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    return figure, left, right


def save(figure, path: Path, *axes) -> None:
    """Legend and a light grid on each of `axes`, then the PNG."""
    for axis in axes:
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
