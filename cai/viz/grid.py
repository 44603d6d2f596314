"""Figures of one solution on a grid: values, soft Q, policy arrows, exact vs variational, trajectories."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from cai.typing import ArrayLike
from cai.viz.common import (
    _as_image,
    _colorbar,
    _draw_cells,
    _grid,
    _ink,
    _marked_cells,
    _need_grid,
    _new_ax,
    _np,
    _panel_size,
    _per_sa_at,
    _plt,
    _short,
    _values_at,
    action_moves,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.exact.sampling import Trajectories
    from cai.mdp.tabular import TabularMDP
    from cai.solution import Solution

__all__ = ["value_heatmap", "soft_q_heatmap", "policy_arrows", "compare_solutions", "trajectories_on_grid"]


def value_heatmap(mdp: TabularMDP, values: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                  cmap: str = "viridis", annotate: Optional[bool] = None, colorbar: bool = True, vmin: Optional[float] = None,
                  vmax: Optional[float] = None, title: Optional[str] = None, label: str = "V") -> Axes:
    """State values on the grid (or as bars for worlds without one).

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        values: a :class:`~cai.Solution` (its ``V[t]``), ``(T+1, S)`` or ``(S,)``.
        t: time step shown.
        annotate: write the numbers in the cells (default: when the grid has at most 100 cells).
        colorbar, cmap, vmin, vmax, title: the usual.
        label: colour-bar label.

    Returns:
        The Axes.
    """
    v = _values_at(values, t, "values", mdp)
    ax = _new_ax(ax)
    if _grid(mdp) is None:
        names = mdp.state_names or [str(s) for s in range(mdp.n_states)]
        ax.bar(range(mdp.n_states), v, color="#1f4e79")
        ax.set_xticks(range(mdp.n_states))
        ax.set_xticklabels(names, rotation=90 if mdp.n_states > 8 else 0, fontsize=8)
        ax.set_ylabel(label)
        ax.axhline(0, color="black", lw=0.6)
    else:
        img = _as_image(mdp, v)
        H, W = img.shape
        im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                       extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        _draw_cells(ax, mdp)
        if annotate is None:
            annotate = H * W <= 100
        if annotate:
            marked = _marked_cells(mdp)
            for (r, c), x in np.ndenumerate(img):
                if np.isfinite(x):
                    # in a cell with an S/G/L letter (top left) the number moves to the bottom right
                    at = (c + 0.44, r + 0.42, "right", "bottom") if (r, c) in marked else (c, r, "center", "center")
                    ax.text(at[0], at[1], _short(x), ha=at[2], va=at[3], fontsize=7,
                            color=_ink(im.cmap(im.norm(x))), zorder=4)
        if colorbar:
            _colorbar(ax, im, label)
    if title:
        ax.set_title(title)
    return ax


def soft_q_heatmap(mdp: TabularMDP, Q: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                   cmap: str = "viridis", colorbar: bool = True, title: Optional[str] = None) -> Axes:
    """Soft Q-values on the grid: each cell split into triangles, one per move direction.

    Args:
        Q: a :class:`~cai.Solution` (its ``Q_t``), ``(T, S, A)`` or ``(S, A)``.

    Actions that do not move (e.g. Taxi's pickup) are not shown. ``-inf`` (forbidden) is blank.

    Returns:
        The Axes.
    """
    from matplotlib.collections import PolyCollection

    H, W, coords = _need_grid(mdp, "soft_q_heatmap")
    q = _per_sa_at(Q, t, "Q", mdp, "Q")
    moves = action_moves(mdp)
    ax = _new_ax(ax)
    polys, vals = [], []
    for s, (r, c) in enumerate(coords):
        if r < 0:
            continue
        for a, (dr, dc) in enumerate(moves):
            if dr == 0 and dc == 0 or not np.isfinite(q[s, a]):
                continue
            # triangle from the cell centre to the side the action points at
            if dr != 0:
                y = r + 0.5 * dr
                tri = [(c, r), (c - 0.5, y), (c + 0.5, y)]
            else:
                x = c + 0.5 * dc
                tri = [(c, r), (x, r - 0.5), (x, r + 0.5)]
            polys.append(tri)
            vals.append(q[s, a])
    coll = PolyCollection(polys, array=np.asarray(vals), cmap=cmap, edgecolors="white", linewidths=0.3)
    ax.add_collection(coll)
    _draw_cells(ax, mdp)
    if colorbar:
        _colorbar(ax, coll, "Q")
    if title:
        ax.set_title(title)
    return ax


def policy_arrows(mdp: TabularMDP, policy: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                  background: Union[Solution, ArrayLike, None] = None, scale: float = 0.42, min_prob: float = 0.02,
                  color: str = "black", title: Optional[str] = None, **heatmap_kw: Any) -> Axes:
    """The policy as arrows whose lengths are proportional to the action probabilities.

    Args:
        policy: a :class:`~cai.Solution` (its ``pi_t``), ``(T, S, A)`` or ``(S, A)``.
        background: optional values (anything :func:`value_heatmap` takes) drawn underneath.
        scale: arrow length of probability 1, in cells.
        min_prob: actions below this probability get no arrow.

    Returns:
        The Axes.
    """
    H, W, coords = _need_grid(mdp, "policy_arrows")
    pi = _per_sa_at(policy, t, "policy", mdp, "policy")
    moves = action_moves(mdp)
    ax = _new_ax(ax)
    if background is not None:
        value_heatmap(mdp, background, t=t, ax=ax, annotate=False, **heatmap_kw)
    else:
        _draw_cells(ax, mdp)
    terminal = set(mdp.metadata.get("goals", [])) | set(mdp.metadata.get("lava", []))
    terminal |= set(mdp.metadata.get("terminal_states", []))
    X, Y, U, Vv = [], [], [], []
    for s, (r, c) in enumerate(coords):
        if r < 0 or s in terminal:
            continue
        for a, (dr, dc) in enumerate(moves):
            p = pi[s, a]
            if p < min_prob or (dr == 0 and dc == 0):
                continue
            X.append(c); Y.append(r); U.append(dc * p * scale); Vv.append(dr * p * scale)
    if X:
        ax.quiver(X, Y, U, Vv, angles="xy", scale_units="xy", scale=1, color=color, width=0.006,
                  headwidth=3.5, headlength=3.5, zorder=6)
    if title:
        ax.set_title(title)
    return ax


def compare_solutions(mdp: TabularMDP, exact: Solution, variational: Solution, *, t: int = 0,
                      ax: Optional[Sequence[Axes]] = None,
                      labels: Sequence[str] = ("exact inference", "variational (soft VI)"),
                      title: Optional[str] = None) -> np.ndarray:
    """Two solutions' values side by side, and their difference (``exact - variational``).

    With stochastic dynamics exact inference is optimistic (it assumes the agent controls its
    luck), so ``V_exact >= V_soft`` and the difference panel shows where that optimism lives.

    Args:
        exact, variational: :class:`~cai.Solution` objects or value arrays ``(T+1, S)``/``(S,)``
            (state marginals work too).
        ax: an array of 3 Axes, or ``None`` for a new figure.

    Returns:
        ``numpy`` array of the 3 Axes.
    """
    plt = _plt()
    v1 = _values_at(exact, t, "exact", mdp)
    v2 = _values_at(variational, t, "variational", mdp)
    if ax is None:
        w, h = _panel_size(mdp, 4.4)
        fig, axes = plt.subplots(1, 3, figsize=(3 * w + 1.5, h + 0.5))
        fig.subplots_adjust(wspace=0.45)
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if axes.size < 3:
            raise ValueError(f"ax: expected 3 Axes, got {axes.size}")
    lo, hi = float(min(v1.min(), v2.min())), float(max(v1.max(), v2.max()))
    value_heatmap(mdp, v1, ax=axes[0], vmin=lo, vmax=hi, title=labels[0])
    value_heatmap(mdp, v2, ax=axes[1], vmin=lo, vmax=hi, title=labels[1])
    d = v1 - v2
    lim = float(np.abs(d).max()) or 1.0
    value_heatmap(mdp, d, ax=axes[2], cmap="RdBu_r", vmin=-lim, vmax=lim, label="difference",
                  title=f"difference (max |.| = {lim:.3g})")
    if title:
        axes[0].figure.suptitle(title)
    return axes[:3]


# ---------------------------------------------------------------------------------------------
# trajectories

def trajectories_on_grid(mdp: TabularMDP, trajectories: Union[Trajectories, ArrayLike], *, ax: Optional[Axes] = None,
                         max_paths: int = 60, jitter: float = 0.12, seed: int = 0, color: str = "#d95f02",
                         alpha: float = 0.35, background: Union[Solution, ArrayLike, None] = None,
                         title: Optional[str] = None) -> Axes:
    """Sampled trajectories drawn over the grid, each path jittered so overlaps stay visible.

    Args:
        trajectories: :class:`~cai.Trajectories` or a long array of states ``(n, T+1)``
            (``-1`` entries, after death, end a path).
        max_paths: draw at most this many.
        jitter: the random offset of each path (cells); ``seed`` fixes it.
        background: optional values drawn underneath (anything :func:`value_heatmap` takes).

    Returns:
        The Axes.
    """
    H, W, coords = _need_grid(mdp, "trajectories_on_grid")
    states = getattr(trajectories, "states", trajectories)
    states = _np(states).astype(int)
    if states.ndim != 2:
        raise ValueError(f"trajectories: expected states of shape (n, T+1), got {states.shape}")
    if states.size and (states.max() >= mdp.n_states or states.min() < -1):
        raise ValueError(f"trajectories: expected state indices in [-1, {mdp.n_states - 1}]")
    ax = _new_ax(ax)
    if background is not None:
        value_heatmap(mdp, background, ax=ax, annotate=False, cmap="Greys", colorbar=False)
    else:
        _draw_cells(ax, mdp)
        ax.set_facecolor("#f7f7f7")
    rng = np.random.default_rng(seed)
    for path in states[:max_paths]:
        path = path[path >= 0]
        xy = coords[path]
        xy = xy[xy[:, 0] >= 0]                     # drop the off-grid exit state
        if len(xy) == 0:
            continue
        off = rng.uniform(-jitter, jitter, size=2)
        ax.plot(xy[:, 1] + off[1], xy[:, 0] + off[0], "-", color=color, alpha=alpha, lw=1.5, zorder=3)
        ax.plot(xy[-1, 1] + off[1], xy[-1, 0] + off[0], "o", color=color, alpha=alpha, ms=3, zorder=3)
    if title:
        ax.set_title(title)
    return ax
