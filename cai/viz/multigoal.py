"""The Multigoal world drawn: cost contours, goals, rollouts and action samples."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from cai.worlds.multigoal import MultiGoalEnv

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_multigoal"]


def plot_multigoal(ax: Optional[Axes] = None, env: Optional[MultiGoalEnv] = None, paths: Sequence[np.ndarray] = (),
                   action_samples: Optional[dict] = None, levels: int = 20) -> Axes:
    """Draw the multigoal world: cost contours, goals, rollouts and action samples.

    Args:
        ax: Matplotlib Axes (a new figure when None).
        env: The environment (default parameters when None).
        paths: Rollouts, each an array of positions ``(L, 2)`` (start included).
        action_samples: ``{(x, y): actions (K, 2)}``: sampled actions drawn as segments from the state.
        levels: Number of contour levels of ``min_g |s - g|^2``.

    Returns:
        matplotlib.axes.Axes: the axes drawn on.
    """
    import matplotlib.pyplot as plt

    env = env or MultiGoalEnv()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    b = env.bound
    xs = np.linspace(-b, b, 201)
    X, Y = np.meshgrid(xs, xs)
    C = env.goal_cost(np.stack([X, Y], -1))
    cs = ax.contour(X, Y, C, levels=levels, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, inline=True, fontsize=6, fmt="%.0f")
    ax.plot(env.goals[:, 0], env.goals[:, 1], "ro", markersize=8, label="goals")
    for path in paths:
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "b-", linewidth=0.7, alpha=0.7)
    for state, actions in (action_samples or {}).items():
        s = np.asarray(state, dtype=float)
        acts = np.asarray(actions)
        for a in acts:
            ax.plot([s[0], s[0] + a[0]], [s[1], s[1] + a[1]], "k-", linewidth=0.4, alpha=0.5)
        ax.plot(s[0] + acts[:, 0], s[1] + acts[:, 1], "k.", markersize=2)
        ax.plot(*s, "ks", markersize=4)
    ax.set_xlim(-b, b)
    ax.set_ylim(-b, b)
    ax.set_aspect("equal")
    return ax
