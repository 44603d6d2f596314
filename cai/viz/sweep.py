"""The temperature sweep figure (its numbers: :func:`cai.report.sweeps.sweep_temperature`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from cai.report.sweeps import sweep_temperature
from cai.typing import ArrayLike
from cai.viz.common import _new_ax, _np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.mdp.tabular import TabularMDP

__all__ = ["temperature_sweep"]


def temperature_sweep(mdp: TabularMDP, alphas: Optional[ArrayLike] = None, *, ax: Optional[Axes] = None, exact: bool = True,
                      title: Optional[str] = None) -> Axes:
    """Policy entropy (right axis) and value (left axis) against the temperature ``alpha``.

    Left axis: the soft value (reward + alpha * entropy), the soft policy's expected return and,
    if ``exact``, ``alpha * log p(O)`` of exact inference (which is at least the soft value).
    Right axis: the mean policy entropy per decision, rising from 0 (greedy) towards ``log |A|``
    (the dotted line, labelled in the legend under the plot).

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP`.
        alphas: temperatures (default 20 values log-spaced in [0.01, 10]).
        ax: the Axes to draw in (default: a new figure).
        exact: also draw ``alpha * log p(O)`` of exact inference.
        title: the Axes title.

    Returns:
        The Axes (the twin Axes of the entropy is ``ax.entropy_ax``).
    """
    if alphas is None:
        alphas = np.logspace(-2, 1, 20)
    sw = sweep_temperature(mdp, alphas, exact=exact)
    ax = _new_ax(ax, figsize=(6, 4))
    x = _np(sw.alpha)
    ax.plot(x, _np(sw.soft_value), "-o", ms=3, color="#1f4e79", label="soft value (VI)")
    ax.plot(x, _np(sw.expected_return), "-s", ms=3, color="#2ca02c", label="expected return of soft policy")
    if sw.log_evidence is not None:
        ax.plot(x, _np(sw.log_evidence), "--", color="#7a0177", label=r"$\alpha \log p(O)$ (exact)")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("value (reward units)")
    ax2 = ax.twinx()
    ax2.plot(x, _np(sw.entropy), "-^", ms=3, color="#d95f02", label="policy entropy / decision")
    ax2.axhline(np.log(mdp.n_actions), color="#d95f02", lw=1.0, ls=":",
                label=rf"$\log|A| = {np.log(mdp.n_actions):.2f}$ (uniform policy's entropy)")
    ax2.set_ylabel("policy entropy per decision (nats)", color="#d95f02")
    ax2.set_ylim(0, np.log(mdp.n_actions) * 1.05)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # under the plot: a legend inside would cross the curves and the log|A| line
    ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)
    ax.entropy_ax = ax2
    if title:
        ax.set_title(title)
    return ax
