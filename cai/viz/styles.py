"""Figure styles (``paper``, ``slides``) and vector output (SVG, PDF) for every figure of :mod:`cai.viz`.

The figure functions size their text relative to ``font.size`` (``"small"``, ``"x-small"``), so one
style changes every figure::

    with cai.viz.style("slides"):
        ax = cai.viz.value_heatmap(mdp, solution)
        cai.viz.save_figure(ax.figure, "values.pdf")
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, Optional

from cai.typing import PathLike

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["STYLES", "FORMATS", "style", "save_figure"]

#: the output formats every figure can be written in
FORMATS = ("png", "svg", "pdf")

_VECTOR = {"svg.fonttype": "none", "pdf.fonttype": 42}   # text stays text: editable, searchable

#: the rcParams of each style: ``paper`` (matplotlib's sizes, for print) and ``slides`` (large
#: fonts and thick lines, readable from the back of a lecture hall)
STYLES: Dict[str, Dict[str, object]] = {
    "paper": {**_VECTOR, "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "lines.linewidth": 1.5,
              "legend.fontsize": 8},
    "slides": {**_VECTOR, "font.size": 16, "axes.titlesize": 18, "axes.labelsize": 16, "xtick.labelsize": 14,
               "ytick.labelsize": 14, "legend.fontsize": 13, "figure.titlesize": 20, "lines.linewidth": 3.0,
               "lines.markersize": 8, "axes.linewidth": 1.5, "xtick.major.width": 1.5, "ytick.major.width": 1.5,
               "patch.linewidth": 1.5, "font.weight": "normal", "axes.titleweight": "bold"},
}


@contextlib.contextmanager
def style(name: str = "paper") -> Iterator[Dict[str, object]]:
    """Use one of :data:`STYLES` for the figures drawn (and saved) inside the ``with`` block.

    Args:
        name: ``"paper"`` or ``"slides"``.

    Yields:
        The rcParams set (a dict).

    Raises:
        ValueError: an unknown style name.
    """
    if not isinstance(name, str) or name not in STYLES:
        raise ValueError(f"name: expected one of {', '.join(STYLES)}, got {name!r}")
    import matplotlib

    with matplotlib.rc_context(STYLES[name]):
        yield dict(STYLES[name])


def save_figure(fig: Figure, path: PathLike, *, format: Optional[str] = None, dpi: int = 110) -> Path:
    """Write a figure as PNG, SVG or PDF (tight bounding box) and return the path.

    Args:
        fig: the matplotlib Figure.
        path: output file; its suffix gives the format unless ``format`` is given.
        format: ``"png"``, ``"svg"`` or ``"pdf"`` (default: from the suffix of ``path``).
        dpi: resolution of PNG output (and of raster parts of vector output).

    Returns:
        The path written.

    Raises:
        ValueError: a format (or suffix) that is not one of :data:`FORMATS`, or a dpi that is not
            a positive integer.
    """
    path = Path(path)
    fmt = format if format is not None else path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)} (or a path ending in one), got {fmt!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        raise ValueError(f"dpi: expected a positive integer, got {dpi!r}")
    fig.savefig(path, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
