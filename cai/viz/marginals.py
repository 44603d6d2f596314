"""Posterior (or on-policy) state marginals over time: small multiples and an animation."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np

from cai.typing import ArrayLike, PathLike
from cai.viz.common import (
    _as_image,
    _cell_legend_handles,
    _draw_cells,
    _grid,
    _np,
    _panel_size,
    _plt,
    check_step,
    figure_size,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.exact.messages import ForwardMessages
    from cai.mdp.tabular import TabularMDP

__all__ = ["state_marginals", "marginals_animation"]


def _marginal_array(marginals, mdp) -> np.ndarray:
    from cai.exact.messages import ForwardMessages

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


def _marginal_panel(mdp, p: np.ndarray, ax, cmap, norm, legend: bool = False):
    img = _as_image(mdp, p)
    H, W = img.shape
    im = ax.imshow(img, cmap=cmap, norm=norm, interpolation="nearest", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
    _draw_cells(ax, mdp, lava="hatch", legend=legend)
    return im


#: the default panels stop where less than this much probability is left on the grid
MIN_ON_GRID = 0.05


def _default_times(on_grid: np.ndarray, n: int = 8) -> list:
    """Up to ``n`` evenly spaced steps from ``0`` to the last step with at least :data:`MIN_ON_GRID`
    of the probability on the grid (``on_grid`` ``(T+1,)``), both included: no empty panels."""
    ok = np.nonzero(on_grid >= MIN_ON_GRID)[0]
    last = int(ok.max()) if ok.size else 0
    return sorted(set(np.linspace(0, last, min(last + 1, n)).round().astype(int).tolist()))


#: how the panels name the mass that has left the grid (a grid world's absorbing exit state)
_EXIT_NOTE = ("exit = probability mass in the absorbing exit state (the episode has ended at a goal or "
              "the cliff); it has no cell and is not drawn")


def state_marginals(mdp: TabularMDP, marginals: Union[ForwardMessages, ArrayLike], *, times: Optional[Sequence[int]] = None,
                    ax: Optional[Sequence[Axes]] = None, ncols: int = 4, cmap: str = "magma", colorbar: bool = True,
                    title: Optional[str] = None) -> np.ndarray:
    """Small multiples of the state marginals ``p(s_t)`` over time, one panel per ``t``.

    All panels share one colour scale (square-root, so that small probabilities stay visible)
    and, on grids, one colour bar and one legend of the cell kinds (lava is hatched, so the
    probability in it shows through). Mass in states without a cell (a grid world's absorbing exit
    state, reached after a goal or lava) is given in the panel titles as ``exit NN%`` and
    explained under the figure; by default the panels stop at the last step with at least 5% of
    the probability still on the grid, and the note under the figure says so.

    Args:
        marginals: :class:`~cai.ForwardMessages` (``.state``) or an array ``(T+1, S)`` (e.g.
            :func:`cai.policy_marginals` ``.state``).
        times: which steps (default: up to 8 evenly spaced from ``0`` to the last step with at
            least 5% of the probability on the grid, both included).
        ax: an array of at least ``len(times)`` Axes, or ``None`` for a new figure.
        ncols: panels per row of a new figure.
        colorbar: add one colour bar shared by the panels (grid worlds).
        cmap: colour map.
        title: the figure title.

    Returns:
        ``numpy`` array of the Axes used (one per time).

    Raises:
        ValueError: marginals of the wrong shape, steps out of range, or too few Axes.
    """
    plt = _plt()
    m = _marginal_array(marginals, mdp)
    T1 = m.shape[0]
    off_grid = _off_grid_mass(mdp, m)                                  # (T+1,)
    cut = None
    if times is None:
        times = _default_times(1.0 - off_grid if _grid(mdp) is not None else np.ones(T1))
        cut = times[-1] if times[-1] < T1 - 1 else None
    if isinstance(times, (str, bytes)) or not isinstance(times, Sequence) or len(times) == 0:
        raise ValueError(f"times: expected a non-empty sequence of steps in [0, {T1 - 1}], got {times!r}")
    times = [check_step(t, T1, "times") for t in times]
    if ax is None:
        ncols = min(ncols, len(times))
        nrows = int(np.ceil(len(times) / ncols))
        w, h = _panel_size(mdp, 2.8)
        fig, axes = plt.subplots(nrows, ncols, figsize=figure_size(w * ncols + 0.8, (h - 0.2) * nrows + 0.8), squeeze=False,
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
        a.set_title(f"t = {t}{extra}", fontsize="small")
    fig = axes[0].figure
    if im is not None and colorbar:
        cb = fig.colorbar(im, ax=list(axes), shrink=0.85, pad=0.02, aspect=30)
        cb.set_label("p(s_t = s)")
    notes = []
    if im is not None:
        handles = _cell_legend_handles(mdp, lava="hatch")
        if handles:
            fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                       fontsize="small", frameon=False)
            notes.append("")
    if (off_grid[list(times)] >= 0.005).any():
        notes.append(_EXIT_NOTE)
    if cut is not None:
        hidden = f"t = {cut + 1}" if cut + 1 == T1 - 1 else f"t = {cut + 1}..{T1 - 1}"
        notes.append(f"{hidden} not shown: from t = {cut + 1} on, at least "
                     f"{100 * (1 - MIN_ON_GRID):.0f}% of the probability is in the exit state "
                     f"({100 * off_grid[cut + 1]:.1f}% at t = {cut + 1}): every episode has ended")
    if notes:
        fig.text(0.5, -0.06 if notes[0] == "" else 0.0, "\n".join(n for n in notes if n), ha="center", va="top",
                 fontsize="x-small", color="#444444")
    if title:
        fig.suptitle(title)
    return axes


def marginals_animation(mdp: TabularMDP, marginals: Union[ForwardMessages, ArrayLike], path: PathLike, *, fps: int = 2,
                        cmap: str = "magma", title: str = "p(s_t | O)", dpi: int = 100) -> str:
    """Write an animated GIF of the state marginals over time (needs pillow).

    Args:
        marginals: as in :func:`state_marginals`.
        path: output file (``.gif``).
        fps: frames per second.
        cmap: colour map (one colour bar, fixed over the frames).
        title: the title of each frame (``, t = ...`` and the exit mass are added).
        dpi: resolution of the frames.

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
    off_grid = _off_grid_mass(mdp, m)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import PowerNorm

    vmax = float(m.max()) or 1.0
    norm = PowerNorm(0.5, vmin=0, vmax=vmax)
    if _grid(mdp) is None:
        fig, ax = plt.subplots(figsize=figure_size(5, 3.6))
    else:
        w, h = _panel_size(mdp, 4.4)
        fig, ax = plt.subplots(figsize=figure_size(w + 1.0, h + 0.6))
        fig.subplots_adjust(left=0.04, right=0.80, bottom=0.14, top=0.86)
        cax = fig.add_axes([0.84, 0.18, 0.03, 0.64])
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)     # fixed: the same in every frame
        cb.set_label("p(s_t = s)")

    def frame(t):
        ax.clear()
        if _grid(mdp) is None:
            ax.bar(range(mdp.n_states), m[t], color="#7a0177")
            ax.set_ylim(0, vmax)
            ax.set_xlabel("state")
            ax.set_ylabel("p(s_t = s)")
        else:
            _marginal_panel(mdp, m[t], ax, cmap, norm, legend=True)
        extra = f", exit {100 * off_grid[t]:.0f}%" if off_grid[t] >= 0.005 else ""
        ax.set_title(f"{title}, t = {t}{extra}", fontsize="small")
        return []

    anim = FuncAnimation(fig, frame, frames=m.shape[0], blit=False)
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi <= 0:
        plt.close(fig)
        raise ValueError(f"dpi: expected a positive integer, got {dpi!r}")
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return str(path)
