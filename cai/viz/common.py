"""Helpers shared by the figure modules of :mod:`cai.viz`: geometry of grid worlds, array access, cells."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
import torch

from cai.typing import ArrayLike

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["action_moves", "check_step", "number_format", "figure_size"]

_MOVES = {"up": (-1, 0), "north": (-1, 0), "down": (1, 0), "south": (1, 0),
          "left": (0, -1), "west": (0, -1), "right": (0, 1), "east": (0, 1)}

def _plt():
    import matplotlib.pyplot as plt
    return plt


def figure_size(width: float, height: float) -> tuple:
    """``(width, height)`` in inches, scaled with the style's font size (``font.size / 10``, at
    least 1), so that the ``slides`` style's large text keeps the same room as ``paper``'s.

    Args:
        width, height: the size at the ``paper`` style's 10 pt text, inches.

    Returns:
        ``(width, height)`` for ``plt.subplots(figsize=...)``.
    """
    k = max(1.0, float(_plt().rcParams["font.size"]) / 10.0)
    return width * k, height * k


def _new_ax(ax, figsize=(5, 4)):
    if ax is None:
        _, ax = _plt().subplots(figsize=figure_size(*figsize))
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


def action_moves(mdp: TabularMDP) -> np.ndarray:
    """The ``(row, col)`` move of each action, ``(A, 2)``; ``(0, 0)`` for actions that do not move.

    From ``mdp.metadata["moves"]`` when present, else from the action names.
    """
    if "moves" in mdp.metadata:
        return np.asarray(mdp.metadata["moves"], dtype=float).reshape(mdp.n_actions, 2)
    names = mdp.action_names or [str(a) for a in range(mdp.n_actions)]
    return np.array([_MOVES.get(n.lower(), (0, 0)) for n in names], dtype=float)


def check_step(t: int, n_steps: int, name: str = "t") -> int:
    """``t`` as an ``int`` in ``[0, n_steps - 1]``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (numbers.Integral, np.integer)) \
            or not (0 <= int(t) < n_steps):
        raise ValueError(f"{name}: expected an integer step in [0, {n_steps - 1}], got {t!r}")
    return int(t)


def _unbatched(sol, name: str, mdp):
    """Refuse a batched Solution (a temperature sweep, a batch of rewards): plots show one."""
    core = 2 if sol.mdp.horizon is not None else 1
    if sol.V.dim() != core:
        raise ValueError(f"{name}: expected an unbatched Solution, got one with batch shape "
                         f"{tuple(sol.V.shape[:-core])}; plot one member, e.g. by solving at one temperature")
    if sol.mdp.n_states != mdp.n_states or sol.mdp.n_actions != mdp.n_actions:
        raise ValueError(f"{name}: expected a Solution of this MDP (S={mdp.n_states}, A={mdp.n_actions}), got one "
                         f"with S={sol.mdp.n_states}, A={sol.mdp.n_actions}")


def _values_at(values, t: int, name: str, mdp) -> np.ndarray:
    """``(S,)`` values from a Solution (``V[t]``), a ``(T+1, S)`` array (row ``t``) or ``(S,)``."""
    from cai.solution import Solution

    S, T = mdp.n_states, mdp.horizon
    if isinstance(values, Solution):
        _unbatched(values, name, mdp)
        if values.mdp.horizon is None:
            check_step(t, 1)
            return _np(values.V)
        values = values.V
    v = _np(values)
    if v.ndim == 2:
        if T is None or v.shape != (T + 1, S):
            want = f"(T+1, S) = ({T + 1}, {S}) or " if T is not None else ""
            raise ValueError(f"{name}: expected values of shape {want}(S,) = ({S},), got shape {v.shape}")
        v = v[check_step(t, T + 1)]
    else:
        check_step(t, 1 if T is None else T + 1)
    if v.shape != (S,):
        raise ValueError(f"{name}: expected {S} values per state (or a Solution), got shape {v.shape}")
    return v


def _per_sa_at(x, t: int, name: str, mdp, what: str) -> np.ndarray:
    """``(S, A)`` Q-values or policy at step ``t`` from a Solution or an array."""
    from cai.solution import Solution

    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    if isinstance(x, Solution):
        _unbatched(x, name, mdp)
        if x.mdp.horizon is None:
            check_step(t, 1)
            tt = None
        else:
            tt = check_step(t, x.mdp.horizon)
        return _np(x.q_at(tt) if what == "Q" else x.policy_at(tt))
    arr = _np(x)
    if arr.ndim == 3:
        if T is None or arr.shape != (T, S, A):
            want = f"(T, S, A) = ({T}, {S}, {A}), " if T is not None else ""
            raise ValueError(f"{name}: expected shape {want}(S, A) = ({S}, {A}) or a Solution, got {arr.shape}")
        arr = arr[check_step(t, T)]
    else:
        check_step(t, 1 if T is None else T)
    if arr.shape != (S, A):
        raise ValueError(f"{name}: expected shape (S, A) = ({S}, {A}), (T, S, A) or a Solution, got {arr.shape}")
    return arr


def _as_image(mdp, v: np.ndarray) -> np.ndarray:
    H, W, coords = _grid(mdp)
    img = np.full((H, W), np.nan)
    ok = coords[:, 0] >= 0
    img[coords[ok, 0], coords[ok, 1]] = v[ok]
    return img


#: colours of the special cells, shared by every grid figure and its legend
WALL_COLOUR, LAVA_COLOUR, GOAL_COLOUR, START_COLOUR = "#3a3a3a", "#d7301f", "#e6ab02", "#1b9e77"


def _cell_sets(mdp):
    """``(walls (H, W) bool, {kind: [(row, col), ...]})`` for start, goals and lava."""
    H, W, coords = _grid(mdp)
    wall = np.ones((H, W), dtype=bool)
    ok = coords[:, 0] >= 0
    wall[coords[ok, 0], coords[ok, 1]] = False
    meta = mdp.metadata
    cells = {key: [tuple(int(v) for v in coords[s]) for s in meta.get(key, []) if coords[s][0] >= 0]
             for key in ("start", "goals", "lava")}
    return wall, cells


def _draw_cells(ax, mdp, *, marks: bool = True, lava: str = "fill", legend: bool = True):
    """Walls filled dark grey, lava filled red (``lava="fill"``) or hatched red over the data
    (``lava="hatch"``), goals and the start outlined (gold, green) with G/S in a corner; a legend
    of the cell kinds under the grid (``legend``)."""
    from matplotlib.patches import Rectangle

    H, W, coords = _grid(mdp)
    wall, cells = _cell_sets(mdp)
    for r, c in zip(*np.nonzero(wall)):
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=WALL_COLOUR, edgecolor="none", zorder=2))
    if marks:
        for r, c in cells["lava"]:
            if lava == "fill":
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=LAVA_COLOUR, edgecolor="none", zorder=3))
            else:
                ax.add_patch(Rectangle((c - 0.45, r - 0.45), 0.9, 0.9, facecolor="none", edgecolor=LAVA_COLOUR,
                                       hatch="///", lw=1.5, zorder=3))
        for key, letter, colour in (("start", "S", START_COLOUR), ("goals", "G", GOAL_COLOUR)):
            for r, c in cells[key]:
                ax.add_patch(Rectangle((c - 0.46, r - 0.46), 0.92, 0.92, facecolor="none", edgecolor=colour,
                                       lw=2.0, zorder=3))
                ax.text(c - 0.40, r - 0.40, letter, ha="left", va="top", fontsize="x-small", fontweight="bold",
                        color=colour, zorder=5)
    if legend:
        handles = _cell_legend_handles(mdp, lava=lava)
        if handles:
            ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=len(handles),
                      fontsize="x-small", frameon=False, handlelength=1.2, columnspacing=1.0, borderaxespad=0.2)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks(np.arange(-0.5, W, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, H, 1.0), minor=True)
    ax.grid(which="minor", color="white", lw=0.6, alpha=0.8)
    ax.tick_params(which="both", length=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal")


def _cell_legend_handles(mdp, *, lava: str = "fill") -> list:
    """Legend patches for the cell kinds present in the grid (wall, lava, goal, start)."""
    from matplotlib.patches import Patch

    wall, cells = _cell_sets(mdp)
    out = []
    if wall.any():
        out.append(Patch(facecolor=WALL_COLOUR, label="wall"))
    if cells["lava"]:
        out.append(Patch(facecolor=LAVA_COLOUR, label="lava (cliff)") if lava == "fill" else
                   Patch(facecolor="none", edgecolor=LAVA_COLOUR, hatch="///", label="lava (cliff)"))
    if cells["goals"]:
        out.append(Patch(facecolor="none", edgecolor=GOAL_COLOUR, lw=2, label="goal (G)"))
    if cells["start"]:
        out.append(Patch(facecolor="none", edgecolor=START_COLOUR, lw=2, label="start (S)"))
    return out


def _marked_cells(mdp) -> set:
    """``{(row, col)}`` of the cells that :func:`_draw_cells` marks with S or G (numbers move aside)."""
    _, cells = _cell_sets(mdp)
    return set(cells["start"]) | set(cells["goals"])


def _lava_cells(mdp) -> set:
    """``{(row, col)}`` of the lava cells (filled red: their numbers are written in white)."""
    return set(_cell_sets(mdp)[1]["lava"]) if _grid(mdp) is not None else set()


def number_format(values: ArrayLike) -> str:
    """The format spec (for :func:`format`) that tells the shown numbers apart, chosen from their range.

    Fixed-point with as many decimals as a twentieth of the range needs: ``-100..106`` gives
    ``".0f"``, ``0..1`` gives ``".2f"``, ``13.9..14.4`` gives ``".2f"`` (``13.93``, not ``14``).
    Magnitudes of ``1e5`` and more, or below ``1e-3``, use 3 significant digits in ``g`` format.

    Args:
        values: the numbers to be shown (any shape; non-finite entries are ignored).

    Returns:
        A format spec such as ``".1f"``.
    """
    v = np.asarray(_np(values), dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return ".3g"
    big = float(np.abs(v).max())
    if big >= 1e5 or 0 < big < 1e-3:
        return ".3g"
    span = float(v.max() - v.min())
    if span == 0.0:
        return ".3g" if big < 100 else ".0f"
    decimals = int(np.ceil(-np.log10(span / 20)))
    return f".{min(max(decimals, 0), 6)}f"


def _fmt(x: float, spec: str) -> str:
    """``format(x, spec)`` without a minus sign on a number that rounds to zero."""
    s = format(float(x), spec)
    return s[1:] if s.startswith("-") and float(s) == 0.0 else s


def _ink(rgba) -> str:
    """Black or white, whichever reads better on the colour ``rgba`` (by its relative luminance)."""
    r, g, b = rgba[:3]
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


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
