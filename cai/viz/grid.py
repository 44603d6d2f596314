"""Figures of one solution on a grid: values, soft Q, policy arrows, exact vs variational, trajectories."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import torch

from cai.typing import ArrayLike
from cai.viz.common import (
    _as_image,
    _colorbar,
    _draw_cells,
    _fmt,
    _grid,
    _ink,
    _lava_cells,
    _marked_cells,
    _need_grid,
    _new_ax,
    _np,
    _panel_size,
    _per_sa_at,
    _plt,
    _values_at,
    action_moves,
    figure_size,
    number_format,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.exact.sampling import Trajectories
    from cai.mdp.tabular import TabularMDP
    from cai.solution import Solution

__all__ = ["value_heatmap", "soft_q_heatmap", "policy_arrows", "policy_bars", "policy_entropy", "compare_solutions",
           "trajectories_on_grid", "trajectory_comparison"]


def _action_names(mdp) -> list:
    return list(mdp.action_names) if mdp.action_names else [f"a{a}" for a in range(mdp.n_actions)]


def _state_names(mdp) -> list:
    return list(mdp.state_names) if mdp.state_names else [str(s) for s in range(mdp.n_states)]


def _colour_range(mdp, v: np.ndarray, vmin, vmax) -> tuple:
    """``(vmin, vmax)``: the given ones, else the range of the finite values outside lava (lava is
    filled red and its value written on it, so its penalty does not flatten the scale)."""
    if vmin is not None and vmax is not None:
        return vmin, vmax
    keep = np.isfinite(v)
    g = _grid(mdp)
    if g is not None:
        keep &= g[2][:, 0] >= 0                           # the exit state has no cell
        lava = list(mdp.metadata.get("lava", []))
        if lava and (keep.sum() - keep[lava].sum()) > 0:
            keep[lava] = False
    vals = v[keep] if keep.any() else np.zeros(1)
    return (float(vals.min()) if vmin is None else vmin), (float(vals.max()) if vmax is None else vmax)


def _state_bars(ax, mdp, v: np.ndarray, label: str, annotate: Optional[bool]):
    """Values of a world without a grid: one bar per state, the number on each (up to 20 states)."""
    names = _state_names(mdp)
    S = mdp.n_states
    fin = np.where(np.isfinite(v), v, 0.0)
    bars = ax.bar(range(S), fin, color="#1f4e79")
    ax.set_xticks(range(S))
    ax.set_xticklabels(names, rotation=90 if S > 8 else 0, fontsize="small")
    ax.set_xlabel("state")
    ax.set_ylabel(label)
    ax.axhline(0, color="black", lw=0.6)
    if not np.any(fin):
        ax.set_ylim(-1.0, 1.0)                            # all zero: no axis of 1e-17
    if annotate is None:
        annotate = S <= 20
    if annotate:
        spec = number_format(v)
        for b, x in zip(bars, v):
            if np.isfinite(x):
                ax.annotate(_fmt(x, spec), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                            va="bottom" if x >= 0 else "top", fontsize="x-small", xytext=(0, 2 if x >= 0 else -2),
                            textcoords="offset points")
        ax.margins(y=0.15)


def value_heatmap(mdp: TabularMDP, values: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                  cmap: Any = "viridis", annotate: Optional[bool] = None, colorbar: bool = True, vmin: Optional[float] = None,
                  vmax: Optional[float] = None, title: Optional[str] = None, label: str = "V",
                  legend: bool = True) -> Axes:
    """State values on the grid (or as bars, one per state, for worlds without one).

    Walls are filled dark grey and lava red (its value written on it in white and left out of the
    default colour range, so one penalty does not flatten the scale); the start and goals are
    outlined, and a legend of the cell kinds sits under the grid. The numbers written in the
    cells use :func:`number_format` of the values shown: enough decimals to tell them apart.

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        values: a :class:`~cai.Solution` (its ``V[t]``), ``(T+1, S)`` or ``(S,)``.
        t: time step shown.
        ax: the Axes to draw in (default: a new figure).
        cmap: colour map of the grid.
        annotate: write the numbers in the cells (on the bars) (default: when the grid has at most
            100 cells; at most 20 bars).
        colorbar: add a colour bar (grid worlds).
        vmin, vmax: colour range (default: the values outside lava).
        title: the Axes title.
        label: colour-bar (or y-axis) label.
        legend: add the legend of the cell kinds (grid worlds).

    Returns:
        The Axes.

    Raises:
        ValueError: values of the wrong shape, or a step ``t`` out of range.
    """
    v = _values_at(values, t, "values", mdp)
    ax = _new_ax(ax, figsize=_panel_size(mdp, 7.0) if _grid(mdp) is not None else (6, 4))
    if _grid(mdp) is None:
        _state_bars(ax, mdp, v, label, annotate)
    else:
        lo, hi = _colour_range(mdp, v, vmin, vmax)
        img = _as_image(mdp, v)
        H, W = img.shape
        im = ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest",
                       extent=(-0.5, W - 0.5, H - 0.5, -0.5))
        _draw_cells(ax, mdp, legend=legend)
        if annotate is None:
            annotate = H * W <= 100
        if annotate:
            marked, lava = _marked_cells(mdp), _lava_cells(mdp)
            spec = number_format(img)
            for (r, c), x in np.ndenumerate(img):
                if np.isfinite(x):
                    # in a cell with an S/G letter (top left) the number moves to the bottom right
                    at = (c + 0.44, r + 0.42, "right", "bottom") if (r, c) in marked else (c, r, "center", "center")
                    ink = "white" if (r, c) in lava else _ink(im.cmap(im.norm(x)))
                    ax.text(at[0], at[1], _fmt(x, spec), ha=at[2], va=at[3], fontsize="x-small", color=ink,
                            zorder=4)
        if colorbar:
            _colorbar(ax, im, label)
    if title:
        ax.set_title(title)
    return ax


def _grouped_bars(ax, mdp, x: np.ndarray, ylabel: str, *, ylim=None):
    """``(S, A)`` numbers of a world without a grid: a group of bars per state, one per action,
    named in the legend (``-inf``, a forbidden action, gets no bar); more than 30 states are drawn
    as an (actions x states) image."""
    S, A = x.shape
    names, states = _action_names(mdp), _state_names(mdp)
    if S > 30:
        im = ax.imshow(np.where(np.isfinite(x), x, np.nan).T, aspect="auto", interpolation="nearest",
                       cmap="viridis", vmin=None if ylim is None else ylim[0], vmax=None if ylim is None else ylim[1])
        ax.set_yticks(range(A))
        ax.set_yticklabels(names, fontsize="small")
        ax.set_xlabel("state")
        _colorbar(ax, im, ylabel)
        return
    width = 0.8 / A
    colours = _plt().get_cmap("tab10")
    for a in range(A):
        # -inf (a forbidden action) gets no bar, not a bar of height 0
        ax.bar(np.arange(S) - 0.4 + (a + 0.5) * width, np.where(np.isfinite(x[:, a]), x[:, a], np.nan), width,
               color=colours(a % 10), label=names[a])
    ax.set_xticks(range(S))
    ax.set_xticklabels(states, rotation=90 if S > 8 else 0, fontsize="small")
    ax.set_xlabel("state")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.axhline(0, color="black", lw=0.6)
    ax.legend(title="action", fontsize="x-small", title_fontsize="x-small", loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)


def _q_key(ax, mdp, moves: np.ndarray):
    """A small key left of the grid: one cell split into its triangles, each named by its action."""
    from matplotlib.patches import Polygon

    H, W, _ = _grid(mdp)
    k = 1.0                                           # key size in cells
    key = ax.inset_axes([-(k + 0.25) / W, 1 - k / H, k / W, k / H])
    key.set_xlim(-1.0, 1.0)
    key.set_ylim(1.0, -1.0)
    key.set_aspect("equal")
    key.axis("off")
    names = _action_names(mdp)
    still = []
    for a, (dr, dc) in enumerate(moves):
        if dr == 0 and dc == 0:
            still.append(names[a])
            continue
        tri = _triangle(0.0, 0.0, dr, dc, 0.5)
        key.add_patch(Polygon(tri, closed=True, facecolor="#d9d9d9", edgecolor="white", lw=1))
        key.text(0.78 * dc, 0.78 * dr, names[a], ha="center", va="center", fontsize="x-small",
                 rotation=90 if dc != 0 else 0)
    if still:
        key.text(0, 1.05, "not drawn: " + ", ".join(still), ha="center", va="top", fontsize="x-small")
    return key


def _triangle(r: float, c: float, dr: float, dc: float, half: float = 0.5) -> list:
    """The triangle from the centre of cell ``(r, c)`` to the side that the move ``(dr, dc)`` points at."""
    if dr != 0:
        y = r + half * np.sign(dr)
        return [(c, r), (c - half, y), (c + half, y)]
    x = c + half * np.sign(dc)
    return [(c, r), (x, r - half), (x, r + half)]


def soft_q_heatmap(mdp: TabularMDP, Q: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                   cmap: str = "viridis", colorbar: bool = True, title: Optional[str] = None,
                   annotate: Optional[bool] = None, key: bool = True, legend: bool = True) -> Axes:
    """Soft Q-values on the grid: each cell split into triangles, one per move direction.

    A key left of the grid names the action of each triangle; with ``annotate`` the value is
    written in its triangle (format from :func:`number_format`). Worlds without a grid get a group
    of bars per state, one per action, named in the legend. Actions that do not move (e.g. Taxi's
    pickup) have no triangle (the key lists them). ``-inf`` (forbidden) is blank; lava's triangles
    are coloured like the others (the value of acting in lava is its penalty).

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        Q: a :class:`~cai.Solution` (its ``Q_t``), ``(T, S, A)`` or ``(S, A)``.
        t: time step shown.
        ax: the Axes to draw in (default: a new figure).
        cmap: colour map.
        colorbar: add a colour bar (grid worlds).
        title: the Axes title.
        annotate: write each value in its triangle (default: when the grid has at most 40 cells).
        key: draw the key of the triangles' actions.
        legend: add the legend of the cell kinds.

    Returns:
        The Axes.

    Raises:
        ValueError: ``Q`` of the wrong shape, or a step ``t`` out of range.
    """
    from matplotlib.collections import PolyCollection

    q = _per_sa_at(Q, t, "Q", mdp, "Q")
    ax = _new_ax(ax, figsize=_panel_size(mdp, 8.0) if _grid(mdp) is not None else (7, 4))
    if _grid(mdp) is None:
        _grouped_bars(ax, mdp, q, "soft Q")
        if title:
            ax.set_title(title)
        return ax
    H, W, coords = _grid(mdp)
    moves = action_moves(mdp)
    polys, vals, where = [], [], []
    for s, (r, c) in enumerate(coords):
        if r < 0:
            continue
        for a, (dr, dc) in enumerate(moves):
            if dr == 0 and dc == 0 or not np.isfinite(q[s, a]):
                continue
            polys.append(_triangle(r, c, dr, dc))
            vals.append(q[s, a])
            where.append((r, c, dr, dc))
    vals = np.asarray(vals)
    coll = PolyCollection(polys, array=vals, cmap=cmap, edgecolors="white", linewidths=0.3)
    ax.add_collection(coll)
    _draw_cells(ax, mdp, lava="hatch", legend=legend)
    if annotate is None:
        annotate = H * W <= 40
    if annotate and len(vals):
        spec = number_format(vals)
        for (r, c, dr, dc), x in zip(where, vals):
            ax.text(c + 0.3 * np.sign(dc), r + 0.3 * np.sign(dr), _fmt(x, spec), ha="center", va="center",
                    fontsize="xx-small", color=_ink(coll.cmap(coll.norm(x))), zorder=4)
    if key:
        _q_key(ax, mdp, moves)
    if colorbar:
        _colorbar(ax, coll, "Q")
    if title:
        ax.set_title(title)
    return ax


def policy_bars(mdp: TabularMDP, policy: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                title: Optional[str] = None) -> Axes:
    """The policy of any world as bars: a group per state, one bar per action (named in the legend).

    More than 30 states are drawn as an (actions x states) image of the probabilities.

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        policy: a :class:`~cai.Solution` (its ``pi_t``), ``(T, S, A)`` or ``(S, A)``.
        t: time step shown.
        ax: the Axes to draw in (default: a new figure).
        title: the Axes title.

    Returns:
        The Axes.

    Raises:
        ValueError: a policy of the wrong shape, or a step ``t`` out of range.
    """
    pi = _per_sa_at(policy, t, "policy", mdp, "policy")
    ax = _new_ax(ax, figsize=(max(5.0, 0.5 * min(mdp.n_states, 30) * max(1, mdp.n_actions / 3)), 3.6))
    _grouped_bars(ax, mdp, pi, "pi(a | s)", ylim=(0.0, 1.0))
    if title:
        ax.set_title(title)
    return ax


def policy_entropy(policy: ArrayLike) -> np.ndarray:
    """``H(pi(. | s)) = -sum_a pi(a|s) log pi(a|s)`` per state, in nats (``0 log 0 = 0``).

    Args:
        policy: ``(..., A)`` probabilities.

    Returns:
        ``(...)`` entropies, ``0`` for a deterministic policy, ``log A`` for a uniform one.
    """
    p = _np(policy)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(-1)


def policy_arrows(mdp: TabularMDP, policy: Union[Solution, ArrayLike], *, t: int = 0, ax: Optional[Axes] = None,
                  background: Union[Solution, ArrayLike, str, None] = None, scale: float = 0.45,
                  min_prob: float = 0.02, color: str = "black", title: Optional[str] = None,
                  legend: bool = True, **heatmap_kw: Any) -> Axes:
    """The policy as arrows whose lengths are proportional to the action probabilities (and whose
    widths grow with them); each starts a tenth of a cell off the centre so that a near-uniform
    policy reads as a star.

    ``background="entropy"`` colours each cell by the policy's entropy ``H(pi(.|s))`` (0: greedy,
    ``log |A|``: uniform) with a colour bar: soft and hard policies then look different at a
    glance. Worlds without a grid get :func:`policy_bars`.

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        policy: a :class:`~cai.Solution` (its ``pi_t``), ``(T, S, A)`` or ``(S, A)``.
        t: time step shown.
        ax: the Axes to draw in (default: a new figure).
        background: ``"entropy"``, or values (anything :func:`value_heatmap` takes) drawn
            underneath, or ``None``.
        scale: arrow length of probability 1, in cells.
        min_prob: actions below this probability get no arrow.
        color: arrow colour.
        title: the Axes title.
        legend: add the legend of the cell kinds.
        **heatmap_kw: passed to :func:`value_heatmap` for a background of values.

    Returns:
        The Axes.

    Raises:
        ValueError: a policy of the wrong shape, a step ``t`` out of range, or an unknown background.
    """
    if _grid(mdp) is None:
        return policy_bars(mdp, policy, t=t, ax=ax, title=title)
    H, W, coords = _grid(mdp)
    pi = _per_sa_at(policy, t, "policy", mdp, "policy")
    moves = action_moves(mdp)
    ax = _new_ax(ax, figsize=_panel_size(mdp, 7.0))
    terminal = set(mdp.metadata.get("goals", [])) | set(mdp.metadata.get("lava", []))
    terminal |= set(mdp.metadata.get("terminal_states", []))
    if isinstance(background, str):
        if background != "entropy":
            raise ValueError(f"background: expected 'entropy', values or None, got {background!r}")
        h = policy_entropy(pi)
        h[sorted(terminal)] = np.nan                      # no choice made there: blank, not "greedy"
        from matplotlib.colors import ListedColormap

        light = ListedColormap(_plt().get_cmap("Blues")(np.linspace(0.0, 0.6, 256)))   # arrows stay readable
        value_heatmap(mdp, h, ax=ax, annotate=False, cmap=light, vmin=0.0, vmax=float(np.log(mdp.n_actions)),
                      label="entropy of pi(.|s) (nats)", legend=legend)
    elif background is not None:
        value_heatmap(mdp, background, t=t, ax=ax, annotate=False, legend=legend, **heatmap_kw)
    else:
        _draw_cells(ax, mdp, legend=legend)
    X, Y, U, Vv, P = [], [], [], [], []
    for s, (r, c) in enumerate(coords):
        if r < 0 or s in terminal:
            continue
        for a, (dr, dc) in enumerate(moves):
            p = pi[s, a]
            if p < min_prob or (dr == 0 and dc == 0):
                continue
            X.append(c + 0.1 * dc); Y.append(r + 0.1 * dr); U.append(dc * p * scale); Vv.append(dr * p * scale)
            P.append(p)
    if X:
        # one arrow per action, from just off the centre (so near-uniform policies read as a star),
        # its length scale * p and its width growing with p
        lw = _plt().rcParams["lines.linewidth"] / 1.5
        for x, y, u, v, p in zip(X, Y, U, Vv, P):
            ax.annotate("", xy=(x + u, y + v), xytext=(x, y),
                        arrowprops=dict(arrowstyle="-|>", color=color, lw=lw * (0.6 + 2.4 * p),
                                        mutation_scale=6 + 8 * p, shrinkA=0, shrinkB=0), zorder=6)
    if title:
        ax.set_title(title)
    return ax


def compare_solutions(mdp: TabularMDP, exact: Solution, variational: Solution, *, t: int = 0,
                      ax: Optional[Sequence[Axes]] = None,
                      labels: Sequence[str] = ("exact inference", "variational (soft VI)"),
                      title: Optional[str] = None) -> np.ndarray:
    """Two solutions' values side by side, and their difference (``exact - variational``).

    Differences below ``1e-9`` of the values' scale are rounding and drawn as 0.

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
        fig, axes = plt.subplots(1, 3, figsize=figure_size(3 * w + 1.5, h + 0.5))
        fig.subplots_adjust(wspace=0.45)
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if axes.size < 3:
            raise ValueError(f"ax: expected 3 Axes, got {axes.size}")
    # one colour range for both (lava left out: it is filled red with its value written on it)
    lo, hi = _colour_range(mdp, np.minimum(v1, v2), None, None)[0], _colour_range(mdp, np.maximum(v1, v2), None, None)[1]
    value_heatmap(mdp, v1, ax=axes[0], vmin=lo, vmax=hi, title=labels[0])
    value_heatmap(mdp, v2, ax=axes[1], vmin=lo, vmax=hi, title=labels[1])
    d = v1 - v2
    scale = max(1.0, float(np.abs(np.concatenate([v1, v2])[np.isfinite(np.concatenate([v1, v2]))]).max(initial=0.0)))
    d = np.where(np.abs(d) <= 1e-9 * scale, 0.0, d)       # rounding, not a difference
    fin = np.abs(d[np.isfinite(d)])
    lim = float(fin.max()) if fin.size and fin.max() > 0 else 1.0
    value_heatmap(mdp, d, ax=axes[2], cmap="RdBu_r", vmin=-lim, vmax=lim, label="difference",
                  title=f"difference (max |.| = {lim:.3g})")
    if title:
        axes[0].figure.suptitle(title, y=1.04)
    return axes[:3]


# ---------------------------------------------------------------------------------------------
# trajectories

def trajectories_on_grid(mdp: TabularMDP, trajectories: Union[Trajectories, ArrayLike], *, ax: Optional[Axes] = None,
                         max_paths: int = 60, jitter: float = 0.12, seed: int = 0, color: str = "#d95f02",
                         alpha: float = 0.35, background: Union[Solution, ArrayLike, None] = None,
                         title: Optional[str] = None, legend: bool = True) -> Axes:
    """Sampled trajectories drawn over the grid, each path jittered so overlaps stay visible.

    Args:
        trajectories: :class:`~cai.Trajectories` or a long array of states ``(n, T+1)``
            (``-1`` entries, after death, end a path).
        max_paths: draw at most this many.
        jitter: the random offset of each path (cells); ``seed`` fixes it.
        background: optional values drawn underneath (anything :func:`value_heatmap` takes).
        legend: add the legend of the cell kinds.

    Returns:
        The Axes.

    Raises:
        ValueError: a world without a grid, or states that are not ``(n, T+1)`` indices.
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
        value_heatmap(mdp, background, ax=ax, annotate=False, cmap="Greys", colorbar=False, legend=legend)
    else:
        _draw_cells(ax, mdp, legend=legend)
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


def _falls(mdp, states: np.ndarray) -> int:
    """How many of the paths ``(n, T+1)`` are in lava at a decision step (``t < T``)."""
    lava = list(mdp.metadata.get("lava", []))
    if not lava or states.shape[1] < 2:
        return 0
    return int(np.isin(states[:, :-1], lava).any(1).sum())


def trajectory_comparison(mdp: TabularMDP, exact: Solution, soft: Solution, *, n: int = 60,
                          generator: Optional[torch.Generator] = None, ax: Optional[Sequence[Axes]] = None,
                          title: Optional[str] = None) -> np.ndarray:
    """Three panels of sampled paths: the exact posterior, the exact posterior's policy run in the
    real dynamics, and the soft VI policy in the real dynamics; each title gives the probability
    of falling into lava (:func:`cai.report.lava_probability` of the panel's exact state
    marginals) and how many of the ``n`` drawn paths fell.

    The posterior controls its luck (its samples never fall); its policy, run where the slips are
    real, walks the edge and falls; the soft policy keeps away.

    Args:
        mdp: a finite-horizon grid world.
        exact: :func:`cai.backward_messages` of ``mdp`` (unbatched).
        soft: :func:`cai.soft_value_iteration` (or any Solution with a policy) of ``mdp``.
        n: paths drawn per panel.
        generator: a ``torch.Generator`` for reproducible samples.
        ax: an array of 3 Axes, or ``None`` for a new figure.
        title: the figure title.

    Returns:
        ``numpy`` array of the 3 Axes.

    Raises:
        ValueError: a world without a grid or without a finite horizon, or ``ax`` with fewer than 3 Axes.
    """
    import cai
    from cai.report.table import lava_probability

    _need_grid(mdp, "trajectory_comparison")
    if mdp.horizon is None:
        raise ValueError("trajectory_comparison: mdp: expected a finite horizon, got horizon=None")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    plt = _plt()
    if ax is None:
        w, h = _panel_size(mdp, 4.6)
        fig, axes = plt.subplots(1, 3, figsize=figure_size(3 * w, h + 0.6))
        fig.subplots_adjust(wspace=0.08)
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if axes.size < 3:
            raise ValueError(f"ax: expected 3 Axes, got {axes.size}")
    panels = (
        ("exact posterior p(tau | O)\n(it controls its luck)", cai.sample_posterior(mdp, exact, n, generator=generator),
         cai.forward_messages(mdp, exact).state, "#d95f02"),
        ("exact posterior's policy\nin the real dynamics", cai.sample_trajectories(mdp, exact.policy, n, generator=generator),
         cai.policy_marginals(mdp, exact.policy).state, "#7570b3"),
        ("soft VI policy\nin the real dynamics", cai.sample_trajectories(mdp, soft.policy, n, generator=generator),
         cai.policy_marginals(mdp, soft.policy).state, "#1b9e77"),
    )
    has_lava = bool(mdp.metadata.get("lava"))
    for a, (name, paths, marg, colour) in zip(axes, panels):
        states = _np(paths.states).astype(int)
        label = name
        if has_lava:
            label += f"\nP(fall) = {lava_probability(mdp, marg):.3f}; {_falls(mdp, states)}/{n} drawn fell"
        trajectories_on_grid(mdp, paths, ax=a, color=colour, max_paths=n, title=label)
    if title:
        axes[0].figure.suptitle(title)
    return axes[:3]
