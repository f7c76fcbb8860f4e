"""The one plot helper of the benchmarks: side-by-side panels, legends and grids, saved as a PNG.

Built on matplotlib's Agg canvas without pyplot, so nothing here depends on a display or changes
matplotlib's global backend.
"""

from __future__ import annotations

from pathlib import Path

DPI = 110
PANEL_SIZE_IN = (5.5, 4.0)  # width and height of one panel, inches


def panels(count: int = 1, size_in: tuple[float, float] | None = None):
    """(figure, axes, ...): `count` panels side by side, PANEL_SIZE_IN each unless `size_in` (the figure's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_in or (PANEL_SIZE_IN[0] * count, PANEL_SIZE_IN[1]))
    FigureCanvasAgg(figure)
    return (figure, *figure.subplots(1, count, squeeze=False)[0])


def save(figure, path: Path, *axes, legend_fontsize: float | None = None) -> Path:
    """A legend (unless the axes has one already) and a light grid on each of `axes`, then the PNG."""
    for axis in axes:
        if axis.get_legend() is None:
            axis.legend(fontsize=legend_fontsize)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path
