"""Standard figures of the built-in sweep studies (:mod:`cai.sweep.studies`), drawn from their tables."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from cai.viz.common import _colorbar, _new_ax

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["optimism_heatmap", "garnet_histogram", "irl_curve", "multimodality_curve", "study_figure"]


def _ok(df):
    return df[df["error"].isna()] if "error" in df else df


def optimism_heatmap(df: pd.DataFrame, *, ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """The optimism gap ``log p(O) - max ELBO`` (nats) over slip (rows) x alpha (columns).

    Args:
        df: the table of the ``optimism`` study (columns ``slip``, ``alpha``, ``optimism_gap``).
    """
    d = _ok(df)
    table = d.pivot_table(index="slip", columns="alpha", values="optimism_gap", aggfunc="mean")
    ax = _new_ax(ax, figsize=(1.1 * table.shape[1] + 2.5, 0.6 * table.shape[0] + 1.8))
    im = ax.imshow(table.values, cmap="magma", aspect="auto", origin="lower")
    ax.set_xticks(range(table.shape[1]), [f"{a:g}" for a in table.columns])
    ax.set_yticks(range(table.shape[0]), [f"{s:g}" for s in table.index])
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("slip probability")
    vmax = np.nanmax(table.values) if table.size else 0.0
    for (i, j), v in np.ndenumerate(table.values):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 * vmax else "black")
    _colorbar(ax, im, "log p(O) - max ELBO (nats)")
    ax.set_title(title or "optimism of exact inference")
    return ax


def garnet_histogram(df: pd.DataFrame, *, ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Histogram of the optimism gap (nats) over the Garnet MDPs of the ``garnet`` study."""
    d = _ok(df)
    ax = _new_ax(ax, figsize=(5, 3.5))
    ax.hist(d["optimism_gap"], bins=min(40, max(5, len(d) // 5)), color="#7a0177")
    ax.set_xlabel("log p(O) - max ELBO (nats)")
    ax.set_ylabel("number of MDPs")
    ax.set_title(title or f"optimism gap over {len(d)} Garnet MDPs")
    return ax


def irl_curve(df: pd.DataFrame, *, ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Policy error of MaxEnt IRL against the number of demonstrations (mean and range over seeds)."""
    d = _ok(df)
    g = d.groupby("n_demos")["policy_tv"]
    x, m, lo, hi = g.mean().index.values, g.mean().values, g.min().values, g.max().values
    ax = _new_ax(ax, figsize=(5, 3.5))
    ax.plot(x, m, "-o", color="#1f4e79", label="mean over seeds")
    ax.fill_between(x, lo, hi, color="#1f4e79", alpha=0.2, label="min-max over seeds")
    ax.set_xscale("log")
    ax.set_xlabel("number of demonstrations")
    ax.set_ylabel("visitation-weighted TV to the true policy")
    ax.legend(fontsize=8)
    ax.set_title(title or "MaxEnt IRL: recovery from demonstrations")
    return ax


def multimodality_curve(df: pd.DataFrame, *, ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Entropy of the reached goals (nats) against alpha, one line per algorithm (mean over seeds);
    the dotted line is ``log 4``, all four goals equally often."""
    d = _ok(df)
    ax = _new_ax(ax, figsize=(5, 3.5))
    for algo, g in d.groupby("algo"):
        m = g.groupby("alpha")["goal_entropy"].mean()
        ax.plot(m.index.values, m.values, "-o", label=str(algo).upper())
    ax.axhline(np.log(4), color="0.5", lw=0.8, ls=":", label="log 4 (four goals equally)")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("entropy of the reached goals (nats)")
    ax.legend(fontsize=8)
    ax.set_title(title or "multimodality on Multigoal")
    return ax


def study_figure(study: str, df: pd.DataFrame, *, ax: Optional[Axes] = None) -> Axes:
    """The standard figure of a built-in study by name (``optimism``, ``garnet``, ``irl``)."""
    fns = {"optimism": optimism_heatmap, "garnet": garnet_histogram, "irl": irl_curve,
           "multimodality": multimodality_curve}
    if study not in fns:
        raise ValueError(f"study: expected one of {', '.join(fns)}, got {study!r}")
    return fns[study](df, ax=ax)
