r"""Lecture figures with matplotlib. Every function takes ``ax=None`` and returns its Axes.

Grid figures read the geometry that the builders store in ``mdp.metadata`` (``"shape"``,
``"coords"``, ``"start"``, ``"goals"``, ``"lava"``; :func:`cai.mdp.gridworld`,
:func:`cai.mdp.gym.from_gymnasium`); the directions of the actions come from
``metadata["moves"]`` or from action names such as ``up``/``north``. Worlds without a grid
(``lottery``, ``random_mdp``) get bar charts instead of heatmaps where that makes sense.

Arguments that hold values or policies accept a :class:`~cai.Solution` (the step ``t`` is taken
from it) or an array.

* :func:`value_heatmap`, :func:`soft_q_heatmap`, :func:`policy_arrows` — one solution;
* :func:`state_marginals`, :func:`marginals_animation` — posterior ``p(s_t | O)`` over time;
* :func:`compare_solutions` — exact inference vs variational (soft VI) side by side, with the
  difference;
* :func:`trajectories_on_grid` — sampled trajectories overlaid on the grid;
* :func:`temperature_sweep` (data: :func:`sweep_temperature`) — policy entropy, value and return
  against ``alpha``, from one batched solve.

Small multiples (:func:`state_marginals`, :func:`compare_solutions`) take and return an array of
Axes.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

__all__ = [
    "value_heatmap",
    "soft_q_heatmap",
    "policy_arrows",
    "state_marginals",
    "marginals_animation",
    "compare_solutions",
    "trajectories_on_grid",
    "temperature_sweep",
    "sweep_temperature",
    "policy_state_marginals",
    "TemperatureSweep",
    "action_moves",
]

_MOVES = {"up": (-1, 0), "north": (-1, 0), "down": (1, 0), "south": (1, 0),
          "left": (0, -1), "west": (0, -1), "right": (0, 1), "east": (0, 1)}


# ---------------------------------------------------------------------------------------------
# helpers

def _plt():
    import matplotlib.pyplot as plt
    return plt


def _new_ax(ax, figsize=(5, 4)):
    if ax is None:
        _, ax = _plt().subplots(figsize=figsize)
    return ax


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _grid(mdp):
    """``(H, W, coords (S, 2))`` for worlds with grid geometry, else ``None``."""
    meta = mdp.metadata
    if "shape" not in meta or "coords" not in meta:
        return None
    H, W = (int(x) for x in meta["shape"])
    coords = np.asarray(meta["coords"], dtype=int)
    if coords.shape != (mdp.n_states, 2):
        return None
    return H, W, coords


def _need_grid(mdp, fn):
    g = _grid(mdp)
    if g is None:
        raise ValueError(f"{fn}: mdp: expected a world with grid geometry in mdp.metadata "
                         f"(\"shape\" and \"coords\"), got metadata kind {mdp.metadata.get('kind')!r}")
    return g


def action_moves(mdp) -> np.ndarray:
    """The ``(row, col)`` move of each action, ``(A, 2)``; ``(0, 0)`` for actions that do not move.

    From ``mdp.metadata["moves"]`` when present, else from the action names.
    """
    if "moves" in mdp.metadata:
        return np.asarray(mdp.metadata["moves"], dtype=float).reshape(mdp.n_actions, 2)
    names = mdp.action_names or [str(a) for a in range(mdp.n_actions)]
    return np.array([_MOVES.get(n.lower(), (0, 0)) for n in names], dtype=float)


def _values_at(values, t: int, name: str, n_states: int) -> np.ndarray:
    """``(S,)`` values from a Solution (``V[t]``), a ``(T+1, S)`` array (row ``t``) or ``(S,)``."""
    from .solution import Solution

    if isinstance(values, Solution):
        V = values.V
        values = V[t] if values.mdp.horizon is not None else V
    v = _np(values)
    if v.ndim == 2:
        v = v[t]
    if v.shape != (n_states,):
        raise ValueError(f"{name}: expected {n_states} values per state (or a Solution), got shape {v.shape}")
    return v


def _per_sa_at(x, t: int, name: str, mdp, what: str) -> np.ndarray:
    """``(S, A)`` Q-values or policy at step ``t`` from a Solution or an array."""
    from .solution import Solution

    S, A = mdp.n_states, mdp.n_actions
    if isinstance(x, Solution):
        tt = t if x.mdp.horizon is not None else None
        x = x.q_at(tt) if what == "Q" else x.policy_at(tt)
    arr = _np(x)
    if arr.ndim == 3:
        arr = arr[t]
    if arr.shape != (S, A):
        raise ValueError(f"{name}: expected shape (S, A) = ({S}, {A}), (T, S, A) or a Solution, got {arr.shape}")
    return arr


def _as_image(mdp, v: np.ndarray) -> np.ndarray:
    H, W, coords = _grid(mdp)
    img = np.full((H, W), np.nan)
    ok = coords[:, 0] >= 0
    img[coords[ok, 0], coords[ok, 1]] = v[ok]
    return img


def _draw_cells(ax, mdp, *, marks: bool = True):
    """Walls in grey, and S/G/L letters in the corners of their cells."""
    H, W, coords = _grid(mdp)
    wall = np.ones((H, W), dtype=bool)
    ok = coords[:, 0] >= 0
    wall[coords[ok, 0], coords[ok, 1]] = False
    if wall.any():
        ax.imshow(np.where(wall, 1.0, np.nan), cmap="Greys", vmin=0, vmax=1.4, interpolation="nearest",
                  extent=(-0.5, W - 0.5, H - 0.5, -0.5), zorder=2)
    if marks:
        meta = mdp.metadata
        for key, letter, colour in (("start", "S", "#1b7837"), ("goals", "G", "#b8860b"), ("lava", "L", "#b2182b")):
            for s in meta.get(key, []):
                r, c = coords[s]
                if r >= 0:
                    ax.text(c - 0.42, r - 0.42, letter, ha="left", va="top", fontsize=7, fontweight="bold",
                            color=colour, zorder=5)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks(np.arange(-0.5, W, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, H, 1.0), minor=True)
    ax.grid(which="minor", color="white", lw=0.6, alpha=0.8)
    ax.tick_params(which="both", length=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")


def _marked_cells(mdp) -> set:
    """``{(row, col)}`` of the cells that :func:`_draw_cells` marks with S, G or L."""
    H, W, coords = _grid(mdp)
    meta = mdp.metadata
    return {tuple(int(v) for v in coords[s]) for key in ("start", "goals", "lava") for s in meta.get(key, [])
            if coords[s][0] >= 0}


def _ink(rgba) -> str:
    """Black or white, whichever reads better on the colour ``rgba`` (by its relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def _short(x: float) -> str:
    """A cell label of at most 4 characters or so: 118, -58, 4.7, 0.84."""
    if abs(x) >= 9.95:
        return f"{x:.0f}"
    return f"{x:.2g}" if abs(x) >= 0.005 else "0"


def _panel_size(mdp, width: float) -> tuple:
    """``(width, height)`` of a panel that fits the grid's aspect ratio."""
    g = _grid(mdp)
    if g is None:
        return width, 0.75 * width
    H, W, _ = g
    return width, width * H / W + 0.7


def _colorbar(ax, mappable, label=None):
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cax = make_axes_locatable(ax).append_axes("right", size="4%", pad=0.08)
    cb = ax.figure.colorbar(mappable, cax=cax)
    if label:
        # a one- or two-letter label (V, Q) reads upright; a word runs along the bar
        cb.set_label(label, rotation=0 if len(label) <= 2 else 90, labelpad=8 if len(label) <= 2 else 4)
    return cb


# ---------------------------------------------------------------------------------------------
# single-solution figures

def value_heatmap(mdp, values, *, t: int = 0, ax=None, cmap: str = "viridis", annotate: Optional[bool] = None,
                  colorbar: bool = True, vmin=None, vmax=None, title: Optional[str] = None, label: str = "V"):
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
    v = _values_at(values, t, "values", mdp.n_states)
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


def soft_q_heatmap(mdp, Q, *, t: int = 0, ax=None, cmap: str = "viridis", colorbar: bool = True,
                   title: Optional[str] = None):
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


def policy_arrows(mdp, policy, *, t: int = 0, ax=None, background=None, scale: float = 0.42,
                  min_prob: float = 0.02, color: str = "black", title: Optional[str] = None, **heatmap_kw):
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


# ---------------------------------------------------------------------------------------------
# marginals over time

def _marginal_array(marginals, mdp) -> np.ndarray:
    from .inference.messages import ForwardMessages

    m = marginals.state if isinstance(marginals, ForwardMessages) else marginals
    m = _np(m)
    if m.ndim != 2 or m.shape[1] != mdp.n_states:
        raise ValueError(f"marginals: expected ForwardMessages or a (T+1, S) array with S={mdp.n_states}, "
                         f"got shape {m.shape}")
    return m


def _off_grid_mass(mdp, m: np.ndarray) -> np.ndarray:
    """Mass of states without a cell (a grid world's exit state), per step."""
    g = _grid(mdp)
    if g is None:
        return np.zeros(m.shape[0])
    return m[:, g[2][:, 0] < 0].sum(-1)


def _marginal_panel(mdp, p: np.ndarray, ax, cmap, norm):
    img = _as_image(mdp, p)
    H, W = img.shape
    im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    _draw_cells(ax, mdp)
    return im


def _default_times(T1: int, n: int = 8) -> list:
    """Up to ``n`` evenly spaced steps from ``0`` to the last step ``T1 - 1``, both included."""
    return sorted(set(np.linspace(0, T1 - 1, min(T1, n)).round().astype(int).tolist()))


#: how the panels name the mass that has left the grid (a grid world's absorbing exit state)
_EXIT_NOTE = ("exit = probability mass in the absorbing exit state (the episode has ended at a goal or "
              "the cliff); it has no cell and is not drawn")


def state_marginals(mdp, marginals, *, times: Optional[Sequence[int]] = None, ax=None, ncols: int = 4,
                    cmap: str = "magma", colorbar: bool = True, title: Optional[str] = None):
    """Small multiples of the state marginals ``p(s_t)`` over time, one panel per ``t``.

    All panels share one colour scale (square-root, so that small probabilities stay visible)
    and, on grids, one colour bar. Mass in states without a cell (a grid world's absorbing exit
    state, reached after a goal or lava) is given in the panel titles as ``exit NN%`` and
    explained under the figure.

    Args:
        marginals: :class:`~cai.ForwardMessages` (``.state``) or an array ``(T+1, S)`` (e.g.
            :func:`policy_state_marginals`).
        times: which steps (default: up to 8 evenly spaced from ``0`` to the last step ``T``,
            both included).
        ax: an array of at least ``len(times)`` Axes, or ``None`` for a new figure.
        ncols: panels per row of a new figure.
        colorbar: add one colour bar shared by the panels (grid worlds).

    Returns:
        ``numpy`` array of the Axes used (one per time).
    """
    plt = _plt()
    m = _marginal_array(marginals, mdp)
    T1 = m.shape[0]
    off_grid = _off_grid_mass(mdp, m)                                  # (T+1,)
    if times is None:
        times = _default_times(T1)
    for t in times:
        if not (0 <= t < T1):
            raise ValueError(f"times: expected steps in [0, {T1 - 1}], got {t}")
    if ax is None:
        ncols = min(ncols, len(times))
        nrows = int(np.ceil(len(times) / ncols))
        w, h = _panel_size(mdp, 2.8)
        fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols + 0.8, (h - 0.2) * nrows + 0.8), squeeze=False,
                                 constrained_layout=True)
        for extra in axes.ravel()[len(times):]:
            extra.axis("off")
    else:
        axes = np.asarray(ax, dtype=object)
        if axes.size < len(times):
            raise ValueError(f"ax: expected at least {len(times)} Axes, got {axes.size}")
    axes = axes.ravel()[: len(times)]
    from matplotlib.colors import PowerNorm

    vmax = float(m[list(times)].max()) or 1.0
    norm = PowerNorm(0.5, vmin=0, vmax=vmax)
    im = None
    for a, t in zip(axes, times):
        if _grid(mdp) is None:
            a.bar(range(mdp.n_states), m[t], color="#7a0177")
            a.set_ylim(0, vmax)
        else:
            im = _marginal_panel(mdp, m[t], a, cmap, norm)
        extra = f",  exit {100 * off_grid[t]:.0f}%" if off_grid[t] >= 0.005 else ""
        a.set_title(f"t = {t}{extra}", fontsize=9)
    fig = axes[0].figure
    if im is not None and colorbar:
        cb = fig.colorbar(im, ax=list(axes), shrink=0.85, pad=0.02, aspect=30)
        cb.set_label("p(s_t = s)")
    if (off_grid[list(times)] >= 0.005).any():
        fig.text(0.5, 0.0, _EXIT_NOTE, ha="center", va="top", fontsize=8, color="#444444")
    if title:
        fig.suptitle(title)
    return axes


def marginals_animation(mdp, marginals, path, *, fps: int = 2, cmap: str = "magma", title: str = "p(s_t | O)"):
    """Write an animated GIF of the state marginals over time (needs pillow).

    Args:
        marginals: as in :func:`state_marginals`.
        path: output file (``.gif``).
        fps: frames per second.

    Returns:
        The path written, as a string.

    Raises:
        ImportError: if pillow is not installed.
    """
    plt = _plt()
    from matplotlib.animation import FuncAnimation, PillowWriter

    try:
        import PIL  # noqa: F401
    except ImportError as exc:  # pragma: no cover - pillow ships with matplotlib's wheels
        raise ImportError("marginals_animation needs pillow: pip install pillow") from exc
    m = _marginal_array(marginals, mdp)
    fig, ax = plt.subplots(figsize=(4, 3.4))
    vmax = float(m.max()) or 1.0

    from matplotlib.colors import PowerNorm

    def frame(t):
        ax.clear()
        if _grid(mdp) is None:
            ax.bar(range(mdp.n_states), m[t], color="#7a0177")
            ax.set_ylim(0, vmax)
        else:
            _marginal_panel(mdp, m[t], ax, cmap, PowerNorm(0.5, vmin=0, vmax=vmax))
        ax.set_title(f"{title}, t = {t}")
        return []

    anim = FuncAnimation(fig, frame, frames=m.shape[0], blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------------------------------------
# exact vs variational

def compare_solutions(mdp, exact, variational, *, t: int = 0, ax=None,
                      labels: Sequence[str] = ("exact inference", "variational (soft VI)"),
                      title: Optional[str] = None):
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
    v1 = _values_at(exact, t, "exact", mdp.n_states)
    v2 = _values_at(variational, t, "variational", mdp.n_states)
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

def trajectories_on_grid(mdp, trajectories, *, ax=None, max_paths: int = 60, jitter: float = 0.12,
                         seed: int = 0, color: str = "#d95f02", alpha: float = 0.35, background=None,
                         title: Optional[str] = None):
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


# ---------------------------------------------------------------------------------------------
# temperature sweep

def policy_state_marginals(mdp, policy) -> torch.Tensor:
    """State marginals ``p(s_t)`` of a policy in the MDP's *own* dynamics, ``(*b, T+1, S)``.

    Unlike :func:`cai.forward_messages`, whose posterior also bends the dynamics. With a
    discount ``gamma < 1`` these are alive marginals (summing to ``gamma^t``). A shortcut for
    ``cai.policy_marginals(mdp, policy).state``.
    """
    from .dp.visitation import policy_marginals

    return policy_marginals(mdp, policy).state


class TemperatureSweep(NamedTuple):
    """What :func:`sweep_temperature` measures, one entry per temperature.

    Attributes:
        alpha: ``(K,)`` temperatures.
        entropy: ``(K,)`` expected policy entropy per decision along the policy's own
            trajectories, ``sum_t E_{s_t}[H(pi_t(.|s_t)) 1{s_t decides}] / sum_t P(s_t decides)``
            (nats). States where every action has the same dynamics and reward (an exit state)
            decide nothing, are uniform at every alpha and are left out.
        soft_value: ``(K,)`` ``sum_s p0(s) V_0(s)`` of soft value iteration (reward + alpha * entropy).
        expected_return: ``(K,)`` the soft policy's expected (discounted) return
            ``E[sum_t gamma^t r_t + gamma^T r_T]``.
        log_evidence: ``(K,)`` ``alpha * log p(O)`` from exact inference (reward units), or ``None``.
    """

    alpha: torch.Tensor
    entropy: torch.Tensor
    soft_value: torch.Tensor
    expected_return: torch.Tensor
    log_evidence: Optional[torch.Tensor]


def sweep_temperature(mdp, alphas, *, exact: bool = True) -> TemperatureSweep:
    """Solve ``mdp`` at many temperatures in one batched call and measure each soft policy.

    Uses ``cai.soft_value_iteration(mdp, alpha=torch.tensor(alphas))`` (batch-first results)
    and :func:`policy_state_marginals` for the on-policy state distribution. The identity
    The soft value is the expected return plus ``alpha`` times the expected entropy of all steps
    (counting prior); the tests hold the three to that identity.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch.
        alphas: ``(K,)`` positive temperatures.
        exact: also compute the exact log evidence (scaled by ``alpha``, in reward units).

    Returns:
        :class:`TemperatureSweep`.
    """
    from .dp import soft_value_iteration
    from .inference import backward_messages

    if mdp.horizon is None:
        raise ValueError("mdp: sweep_temperature needs a finite horizon, got horizon=None")
    if len(mdp.batch_shape):
        raise ValueError(f"mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    a = torch.as_tensor(alphas, dtype=mdp.dtype, device=mdp.device).reshape(-1)
    sol = soft_value_iteration(mdp, alpha=a)
    pi = sol.policy                                        # (K, T, S, A)
    d = policy_state_marginals(mdp, pi)                    # (K, T+1, S)
    log_pi = sol.log_policy
    H = -(torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi))).sum(-1)      # (K, T, S)
    w = d[:, :-1] * _decision_states(mdp).to(d.dtype)
    ent = (w * H).sum((-1, -2)) / w.sum((-1, -2)).clamp_min(torch.finfo(d.dtype).tiny)
    r_sa = _expected_reward(mdp)                            # (T, S, A)
    ret = (d[:, :-1].unsqueeze(-1) * pi * r_sa).sum((-1, -2, -3)) + (d[:, -1] * mdp.terminal_rewards).sum(-1)
    le = None
    if exact:
        le = a * backward_messages(mdp, alpha=a, keep="values").log_evidence
    return TemperatureSweep(a, ent, sol.value, ret, le)


def _decision_states(mdp) -> torch.Tensor:
    """``(S,)`` bool: states whose actions differ (in dynamics or reward); in the others (an exit
    state, a goal that pays the same whatever one does) every policy is uniform at any alpha."""
    P = mdp.dense_transitions()
    r = mdp.rewards
    if mdp.reward_layout == "tsa":
        r = r.permute(1, 2, 0)                                 # (S, A, T)
    same_P = (P - P[:, :1]).abs().amax((-1, -2)) == 0
    same_r = (r - r[:, :1]).abs().reshape(mdp.n_states, -1).amax(-1) == 0
    return ~(same_P & same_r)


def _expected_reward(mdp) -> torch.Tensor:
    """``E[r_t(s, a, s')]`` over ``s'`` as ``(T, S, A)`` (forbidden actions give 0: never taken)."""
    T = mdp.horizon
    if mdp.reward_layout == "sas":
        P = mdp.dense_transitions()
        r = torch.where(P > 0, P * mdp.rewards, torch.zeros_like(P)).sum(-1)
    else:
        r = mdp.rewards
    r = torch.where(torch.isneginf(r), torch.zeros_like(r), r)
    return r if r.dim() == 3 and mdp.reward_layout == "tsa" else r.expand(T, *r.shape[-2:])


def temperature_sweep(mdp, alphas=None, *, ax=None, exact: bool = True, title: Optional[str] = None):
    """Policy entropy (right axis) and value (left axis) against the temperature ``alpha``.

    Left axis: the soft value (reward + alpha * entropy), the soft policy's expected return and,
    if ``exact``, ``alpha * log p(O)`` of exact inference (which is at least the soft value).
    Right axis: the mean policy entropy per decision, rising from 0 (greedy) towards ``log |A|``.

    Args:
        alphas: temperatures (default 20 values log-spaced in [0.01, 10]).

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
    ax2.axhline(np.log(mdp.n_actions), color="#d95f02", lw=0.6, ls=":")
    ax2.set_ylabel("policy entropy per decision (nats)", color="#d95f02")
    ax2.set_ylim(0, np.log(mdp.n_actions) * 1.05)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    ax.entropy_ax = ax2
    if title:
        ax.set_title(title)
    return ax
