"""The explorer's pure model: a grid world and the controls in, every number and array to draw out.

Nothing here needs a browser or Panel. :func:`solve` builds the grid world with
:func:`cai.worlds.gridworld` and solves it with cai's own routines:

* exact inference: :func:`cai.backward_messages` (values ``alpha log beta``, the posterior policy
  ``p(a_t | s_t, O)``, the log evidence) and :func:`cai.forward_messages` (posterior marginals);
* soft VI: :func:`cai.soft_value_iteration` (values, policy, the maximal ELBO);
* hard VI: :func:`cai.value_iteration`;

and runs each method's policy in the real dynamics with :func:`cai.policy_marginals` (the
probability of entering lava) and scores it with :func:`cai.elbo`. The result is a
:class:`Frame`; :meth:`Frame.to_json` is what the browser view draws.

Bad input raises ``ValueError`` naming the argument (:func:`check_layout`, :func:`check_controls`);
the view shows the message and keeps its previous state.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from cai.dp import elbo, policy_marginals, soft_value_iteration, value_iteration
from cai.exact import backward_messages, forward_messages
from cai.mdp.tabular import TabularMDP
from cai.report.table import lava_probability
from cai.worlds.builders import GRID_ACTIONS, gridworld, parse_layout

__all__ = [
    "BRUSHES", "METHODS", "METHOD_LABELS", "DEFINITIONS", "ALPHA_RANGE", "HORIZON_RANGE",
    "Controls", "GridWorldSpec", "MethodResult", "Frame",
    "check_layout", "check_controls", "edit_layout", "spec_from_mdp", "solve",
]

#: brush name -> layout character
BRUSHES: Dict[str, str] = {"wall": "#", "lava": "L", "goal": "G", "start": "S", "free": "."}
#: the methods shown side by side
METHODS: Tuple[str, ...] = ("exact", "soft", "hard")
METHOD_LABELS: Dict[str, str] = {"exact": "exact inference", "soft": "soft VI", "hard": "hard VI"}
#: the smallest and largest temperature the controls accept
ALPHA_RANGE: Tuple[float, float] = (1e-2, 1e2)
#: the shortest and longest horizon the controls accept
HORIZON_RANGE: Tuple[int, int] = (1, 100)

#: one-line definitions printed next to every number the explorer shows
DEFINITIONS: Dict[str, str] = {
    "log_evidence": "log p(O_0:T-1 = 1) = log sum over trajectories of p(tau) exp(sum_t r_t / alpha) "
                    "(exact inference, backward messages)",
    "max_elbo": "max over policies of E_q[sum_t r_t / alpha + entropy of pi_t] with the real dynamics "
                "(soft VI's value / alpha)",
    "gap": "log evidence - max ELBO >= 0: what exact inference gains by assuming it controls its luck",
    "value": "sum_s p0(s) V_0(s): the method's own value of the start, in reward units",
    "elbo": "ELBO(pi) = E[sum_t r_t / alpha + entropy of pi_t] when this policy runs in the real dynamics",
    "p_lava": "P(the agent is in a lava cell at a decision step t < T, where the penalty is paid) when "
              "this policy runs in the real dynamics",
    "p_lava_posterior": "P(a lava cell at a decision step t < T) under the exact posterior itself, "
                        "whose dynamics are tilted towards success",
}


@dataclass(frozen=True)
class Controls:
    """The explorer's sliders.

    Attributes:
        alpha: temperature in :data:`ALPHA_RANGE`.
        slip: probability in [0, 1) that a move is replaced by a uniformly random one.
        horizon: number of decisions T, an integer in :data:`HORIZON_RANGE`.
    """

    alpha: float = 1.0
    slip: float = 0.0
    horizon: int = 20


@dataclass(frozen=True)
class GridWorldSpec:
    """A grid world as the explorer edits it: the layout and the rewards of :func:`cai.worlds.gridworld`.

    Attributes:
        layout: text layout (``#`` wall, ``S`` start, ``G`` goal, ``L`` lava, ``.`` free).
        step_cost: reward of every action in a free or start cell.
        goal_reward: reward of the action taken in a goal cell (then the episode exits).
        lava_reward: reward of the action taken in a lava cell (then the episode exits).
        name: a label for the page title.
    """

    layout: str
    step_cost: float = -1.0
    goal_reward: float = 10.0
    lava_reward: float = -10.0
    name: str = "grid"

    def build(self, controls: Controls) -> TabularMDP:
        """The :class:`~cai.TabularMDP` of this layout under ``controls`` (slip and horizon)."""
        return gridworld(self.layout, slip=controls.slip, horizon=controls.horizon, step_cost=self.step_cost,
                         goal_reward=self.goal_reward, lava_reward=self.lava_reward)


@dataclass(frozen=True)
class MethodResult:
    """One method's solution, as arrays over the open cells (and the exit state, if any).

    Attributes:
        V: ``(T+1, S)`` values in reward units (exact: ``alpha log beta_t``).
        policy: ``(T, S, A)`` action probabilities (exact: the posterior ``p(a_t | s_t, O)``).
        marginals: ``(T+1, S)`` state marginals: the exact posterior ``p(s_t | O)`` for exact
            inference; for the VI methods, ``p(s_t)`` with their policy in the real dynamics.
        value: ``sum_s p0(s) V_0(s)``.
        elbo: ELBO of the policy (:func:`cai.elbo`).
        p_lava: probability of entering lava within T steps with the policy in the real dynamics.
    """

    V: np.ndarray
    policy: np.ndarray
    marginals: np.ndarray
    value: float
    elbo: float
    p_lava: float


@dataclass(frozen=True)
class Frame:
    """Everything the explorer draws for one world and one setting of the controls.

    Attributes:
        spec, controls: the inputs.
        rows: the layout's rows (``H`` strings of width ``W``).
        coords: ``(S, 2)`` (row, col) of every state; ``(-1, -1)`` for the exit state.
        methods: method name -> :class:`MethodResult` (keys from :data:`METHODS`).
        log_evidence: ``log p(O)`` from exact inference.
        max_elbo: soft VI's maximal ELBO.
        p_lava_posterior: probability of a lava cell within T steps under the exact posterior.
    """

    spec: GridWorldSpec
    controls: Controls
    rows: List[str]
    coords: np.ndarray
    methods: Dict[str, MethodResult]
    log_evidence: float
    max_elbo: float
    p_lava_posterior: float
    action_names: List[str] = field(default_factory=lambda: [n for n, _ in GRID_ACTIONS])

    @property
    def gap(self) -> float:
        """``log_evidence - max_elbo`` (>= 0)."""
        return self.log_evidence - self.max_elbo

    def to_json(self, digits: int = 6) -> dict:
        """A JSON-ready dict for the browser view (the summary numbers rounded to ``digits``
        significant digits; the arrays to 2 decimals for values and action probabilities and 3
        for marginals, which is what the view can show; ``-inf``/``nan`` become ``None``).

        Returns:
            ``{"name", "rows", "cells", "alpha", "slip", "horizon", "numbers", "definitions",
            "labels", "methods": {name: {"V", "policy", "marginals"}}}`` where ``cells`` lists the
            (row, col) of each open cell, ``V`` and ``marginals`` are ``(T+1, n_cells)`` and
            ``policy`` is ``(T, n_cells, 4)``.
        """
        cells = [i for i, (r, _) in enumerate(self.coords) if r >= 0]
        numbers = {"log_evidence": self.log_evidence, "max_elbo": self.max_elbo, "gap": self.gap,
                   "p_lava_posterior": self.p_lava_posterior}
        methods = {}
        for m, res in self.methods.items():
            for k in ("value", "elbo", "p_lava"):
                numbers[f"{k}_{m}"] = getattr(res, k)
            methods[m] = {"V": _rounded(res.V[:, cells], 2), "policy": _rounded(res.policy[:, cells], 2),
                          "marginals": _rounded(res.marginals[:, cells], 3)}
        return {
            "name": self.spec.name,
            "rows": list(self.rows),
            "cells": [[int(r), int(c)] for r, c in self.coords[cells]],
            "alpha": self.controls.alpha, "slip": self.controls.slip, "horizon": self.controls.horizon,
            "numbers": {k: _sig(v, digits) for k, v in numbers.items()},
            "definitions": DEFINITIONS,
            "labels": METHOD_LABELS,
            "methods": methods,
        }


def _sig(x: float, digits: int) -> Optional[float]:
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _rounded(a: np.ndarray, decimals: int) -> list:
    a = np.round(a, decimals)
    if np.isfinite(a).all():
        return a.tolist()
    return np.where(np.isfinite(a), a, np.nan).astype(object).tolist()  # pragma: no cover - not for grids


# ---------------------------------------------------------------------------------------------
# input checks

def check_layout(layout: str) -> List[str]:
    """Validate a layout for the explorer; return its rows.

    On top of :func:`cai.worlds.parse_layout` (ragged rows, unknown characters, no start), the
    explorer needs a goal that an agent can walk to: some ``G`` must be reachable from some
    ``S`` through free and start cells (walls block; lava ends the episode).

    Raises:
        TypeError: ``layout`` is not a string.
        ValueError: naming the problem (unknown character, no start, no goal, unreachable goal).
    """
    rows = parse_layout(layout)
    H, W = len(rows), len(rows[0])
    goals = [(i, j) for i in range(H) for j in range(W) if rows[i][j] == "G"]
    if not goals:
        raise ValueError("layout: expected at least one goal cell 'G', found none")
    seen = {(i, j) for i in range(H) for j in range(W) if rows[i][j] == "S"}
    todo = deque(seen)
    while todo:
        i, j = todo.popleft()
        for _, (di, dj) in GRID_ACTIONS:
            ni, nj = i + di, j + dj
            if 0 <= ni < H and 0 <= nj < W and (ni, nj) not in seen:
                c = rows[ni][nj]
                if c == "G":
                    return rows
                if c in ".S":
                    seen.add((ni, nj))
                    todo.append((ni, nj))
    raise ValueError("layout: no goal 'G' is reachable from a start 'S' (walls '#' block the way "
                     "and lava 'L' ends the episode)")


def check_controls(controls: Controls) -> Controls:
    """Validate the controls; return them with plain Python numbers.

    Raises:
        TypeError: ``controls`` is not a :class:`Controls`.
        ValueError: naming the control, the accepted range and the value that came.
    """
    if not isinstance(controls, Controls):
        raise TypeError(f"controls: expected a cai.app.model.Controls, got {type(controls).__name__}")
    lo, hi = ALPHA_RANGE
    try:
        alpha = float(controls.alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha: expected a number in [{lo:g}, {hi:g}], got {controls.alpha!r}") from None
    if not (math.isfinite(alpha) and lo <= alpha <= hi):
        raise ValueError(f"alpha: expected a number in [{lo:g}, {hi:g}], got {controls.alpha!r}")
    try:
        slip = float(controls.slip)
    except (TypeError, ValueError):
        raise ValueError(f"slip: expected a probability in [0, 1), got {controls.slip!r}") from None
    if not (0.0 <= slip < 1.0):
        raise ValueError(f"slip: expected a probability in [0, 1), got {controls.slip!r}")
    h = controls.horizon
    tlo, thi = HORIZON_RANGE
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not (tlo <= h <= thi):
        raise ValueError(f"horizon: expected an integer in [{tlo}, {thi}], got {h!r}")
    return Controls(alpha=alpha, slip=slip, horizon=int(h))


def edit_layout(layout: str, row: int, col: int, brush: str) -> str:
    """The layout with cell ``(row, col)`` painted with ``brush`` (a key of :data:`BRUSHES`).

    The result is not validated (see :func:`check_layout`): painting over the last start gives a
    layout the explorer refuses, with a message.

    Raises:
        ValueError: unknown brush, or a cell outside the grid.
    """
    if brush not in BRUSHES:
        raise ValueError(f"brush: expected one of {', '.join(BRUSHES)}, got {brush!r}")
    rows = [list(r) for r in parse_layout(layout)]
    H, W = len(rows), len(rows[0])
    if isinstance(row, bool) or isinstance(col, bool) or not (0 <= int(row) < H and 0 <= int(col) < W):
        raise ValueError(f"cell: expected row in [0, {H - 1}] and col in [0, {W - 1}], got ({row!r}, {col!r})")
    rows[int(row)][int(col)] = BRUSHES[brush]
    return "\n".join("".join(r) for r in rows)


def spec_from_mdp(mdp: TabularMDP, name: str = "grid") -> Tuple[GridWorldSpec, Controls]:
    """Recover the editable grid world and the controls from a grid world built by
    :func:`cai.worlds.gridworld` (any registry grid world, or a loaded layout).

    The rewards are read back from the MDP's reward table (a world without lava gets
    ``lava_reward = -goal_reward``); alpha starts at 1; a horizon beyond :data:`HORIZON_RANGE` is
    clipped to it.

    Returns:
        ``(GridWorldSpec, Controls)``.

    Raises:
        TypeError: ``mdp`` is not a :class:`~cai.TabularMDP`.
        ValueError: ``mdp`` is not a finite-horizon grid world.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp: expected a cai.TabularMDP grid world, got {type(mdp).__name__}")
    meta = mdp.metadata or {}
    if meta.get("kind") != "grid" or "layout" not in meta:
        raise ValueError(f"mdp: expected a grid world built by cai.worlds.gridworld, got metadata kind "
                         f"{meta.get('kind')!r}")
    if mdp.horizon is None:
        raise ValueError("mdp: expected a finite horizon (the explorer steps through time), got horizon=None")
    r = mdp.reward_at(0).detach().cpu().numpy()                          # (S, A) for a grid world
    step = float(r[meta["start"][0], 0]) if meta.get("start") else -1.0
    goal = float(r[meta["goals"][0], 0]) if meta.get("goals") else 10.0
    lava = float(r[meta["lava"][0], 0]) if meta.get("lava") else -abs(goal)
    horizon = int(min(max(mdp.horizon, HORIZON_RANGE[0]), HORIZON_RANGE[1]))
    return (GridWorldSpec(meta["layout"], step_cost=step, goal_reward=goal, lava_reward=lava, name=name),
            Controls(alpha=1.0, slip=float(meta.get("slip", 0.0)), horizon=horizon))


# ---------------------------------------------------------------------------------------------
# solving

def solve(spec: GridWorldSpec, controls: Controls) -> Frame:
    """Solve the world by exact inference, soft VI and hard VI; collect every number to draw.

    Args:
        spec: the grid world.
        controls: alpha, slip and horizon.

    Returns:
        :class:`Frame` (arrays ``(T+1, S)`` / ``(T, S, A)`` per method, see :class:`MethodResult`).

    Raises:
        ValueError: invalid layout or controls (the message names the argument).
    """
    check_layout(spec.layout)
    controls = check_controls(controls)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)           # a few hundred states: more threads only add overhead
    try:
        return _solve(spec, controls)
    finally:
        torch.set_num_threads(threads)


def _solve(spec: GridWorldSpec, controls: Controls) -> Frame:
    mdp = spec.build(controls)
    alpha = controls.alpha

    exact = backward_messages(mdp, alpha=alpha)
    post = forward_messages(mdp, exact)
    soft = soft_value_iteration(mdp, alpha=alpha)
    hard = value_iteration(mdp)
    sols = {"exact": exact, "soft": soft, "hard": hard}
    policies = torch.stack([s.policy for s in sols.values()])            # (3, T, S, A)
    run = policy_marginals(mdp, policies).state                           # (3, T+1, S)
    elbos = elbo(mdp, policies, alpha)                                    # (3,)
    results = {}
    for k, (m, s) in enumerate(sols.items()):
        marg = post.state if m == "exact" else run[k]
        results[m] = MethodResult(
            V=s.V.detach().cpu().numpy(), policy=s.policy.detach().cpu().numpy(),
            marginals=marg.detach().cpu().numpy(), value=float(s.value), elbo=float(elbos[k]),
            p_lava=lava_probability(mdp, run[k]))
    return Frame(spec=spec, controls=controls, rows=parse_layout(spec.layout),
                 coords=np.asarray(mdp.metadata["coords"], dtype=np.int64), methods=results,
                 log_evidence=float(exact.log_evidence), max_elbo=float(soft.max_elbo),
                 p_lava_posterior=lava_probability(mdp, post.state))

