"""Ready-made worlds, each returned as a :class:`~cai.TabularMDP` with names and geometry.

* :func:`gridworld` — a text layout (``#`` wall, ``S`` start, ``G`` goal, ``L`` lava, ``.`` free);
* :func:`chain` — a corridor with a small reward at one end and a large one at the other;
* :func:`random_mdp` — Garnet-style random MDPs (``S``, ``A``, branching factor, seed);
* :func:`lottery` — a safe action against a gamble: the optimism of exact inference;
* :func:`two_route` — a grid where two equally good routes reach the goal;
* :func:`options_fork` — a fork between a one-option corridor and a many-option hub;
* :func:`bandit`, :func:`goal_lattice` — goal-reaching worlds for the meta-POMDP of :mod:`cai.why.meta_pomdp`.

Geometry for plotting lives in ``mdp.metadata`` (JSON-serialisable): for grids
``{"kind": "grid", "shape": [H, W], "coords": [[row, col] per state, [-1, -1] for the exit],
"start": [...], "goals": [...], "lava": [...], "layout": text}``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP

__all__ = ["gridworld", "parse_layout", "chain", "random_mdp", "lottery", "options_fork", "two_route", "cliff", "square", "square_layout", "GRID_ACTIONS",
           "bandit", "goal_lattice", "TWO_ROUTE_LAYOUT", "CLIFF_LAYOUT"]

#: The grid's actions and their (row, col) moves.
GRID_ACTIONS = (("up", (-1, 0)), ("right", (0, 1)), ("down", (1, 0)), ("left", (0, -1)))
_CELLS = set("#SGL.")

TWO_ROUTE_LAYOUT = """
#######
#.....#
#.###.#
#S###G#
#.###.#
#.....#
#######
"""

CLIFF_LAYOUT = """
.........
.........
.........
SLLLLLLLG
"""


def parse_layout(layout: str) -> list:
    """Split a text layout into equal-length rows, validating its characters.

    Blank lines and surrounding whitespace are ignored. Raises ``ValueError`` naming the
    offending row/character when the layout is ragged, has unknown characters or no ``S``.
    """
    if not isinstance(layout, str):
        raise TypeError(f"layout: expected a string, got {type(layout).__name__}")
    rows = [line.strip() for line in layout.strip("\n").splitlines() if line.strip()]
    if not rows:
        raise ValueError("layout: expected at least one non-empty row, got an empty layout")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"layout: expected every row to have {width} cells, row {i} has {len(row)}: {row!r}")
        bad = set(row) - _CELLS
        if bad:
            raise ValueError(f"layout: unknown cell {sorted(bad)[0]!r} in row {i} (expected one of '#SGL.')")
    if not any("S" in row for row in rows):
        raise ValueError("layout: expected at least one start cell 'S', found none")
    return rows


def gridworld(
    layout: str,
    *,
    slip: float = 0.0,
    step_cost: float = -1.0,
    goal_reward: float = 10.0,
    lava_reward: float = -10.0,
    terminal: str = "exit",
    horizon: Optional[int] = 20,
    discount: Optional[float] = None,
    sparse: bool = False,
) -> TabularMDP:
    """A grid world from a text layout.

    Cells: ``#`` wall, ``S`` start (the initial distribution is uniform over them), ``G`` goal,
    ``L`` lava/cliff, ``.`` free. Actions ``up, right, down, left``; a move into a wall or off
    the grid leaves the agent in place. With probability ``slip`` the move is replaced by one
    drawn uniformly from all four.

    Rewards: ``step_cost`` for every action in a free or start cell. ``G`` and ``L`` are
    terminal; with ``terminal="exit"`` (default) any action there earns ``goal_reward`` /
    ``lava_reward`` once and moves to an absorbing, reward-free ``exit`` state; with
    ``"absorb"`` the terminal cell keeps the agent and pays its reward at every step; with
    ``"restart"`` it pays once and returns the agent to a start cell.

    Terminal cells and the ``exit`` state have a single action (the first, ``up``; the others are
    forbidden with a ``-inf`` reward): there is nothing to choose there, so under the counting
    prior they earn no entropy bonus ``alpha * log|A|`` per step, the exit is worth ``V = 0`` and a
    goal ``V = goal_reward``. State and action counts are those of the layout (four actions).

    Args:
        layout: the text layout.
        slip: probability in [0, 1) that the move is random.
        horizon, discount: passed to :class:`~cai.TabularMDP`.
        sparse: store the transitions as a sparse ``(S*A, S)`` matrix (for large grids).

    Returns:
        :class:`~cai.TabularMDP` with state names ``"(row,col)"`` (and ``"exit"``), action names,
        and grid geometry in ``metadata``.
    """
    rows = parse_layout(layout)
    if not (0.0 <= float(slip) < 1.0):
        raise ValueError(f"slip: expected a probability in [0, 1), got {slip!r}")
    if terminal not in ("exit", "absorb", "restart"):
        raise ValueError(f"terminal: expected 'exit', 'absorb' or 'restart', got {terminal!r}")
    H, W = len(rows), len(rows[0])
    grid = np.array([list(r) for r in rows])
    open_mask = grid != "#"
    index = -np.ones((H, W), dtype=np.int64)
    index[open_mask] = np.arange(open_mask.sum())
    coords = np.argwhere(open_mask)                           # (n_cells, 2), row-major
    n_cells = len(coords)
    kinds = grid[open_mask]
    has_exit = terminal == "exit" and bool(np.isin(kinds, ["G", "L"]).any())
    S = n_cells + int(has_exit)
    A = len(GRID_ACTIONS)
    exit_state = n_cells

    # deterministic successor of each (cell, move)
    succ = np.empty((n_cells, A), dtype=np.int64)
    for k, (dr, dc) in enumerate(m for _, m in GRID_ACTIONS):
        rr, cc = coords[:, 0] + dr, coords[:, 1] + dc
        inside = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
        rr_c, cc_c = np.clip(rr, 0, H - 1), np.clip(cc, 0, W - 1)
        ok = inside & open_mask[rr_c, cc_c]
        succ[:, k] = np.where(ok, index[rr_c, cc_c], np.arange(n_cells))
    # slip: intended move w.p. 1 - slip, a uniformly random move w.p. slip
    mix = np.full((A, A), slip / A) + np.eye(A) * (1 - slip)   # mix[a, k] = P(move k | action a)
    starts = np.flatnonzero(kinds == "S")
    rows_i, rows_a, cols, vals = [], [], [], []
    r = np.full((S, A), float(step_cost))
    for s in range(n_cells):
        kind = kinds[s]
        if kind in ("G", "L"):
            r[s, 0] = goal_reward if kind == "G" else lava_reward
            r[s, 1:] = -np.inf                                 # one action: nothing to choose here
            if terminal == "exit":
                targets = [(exit_state, 1.0)]
            elif terminal == "absorb":
                targets = [(s, 1.0)]
            else:
                targets = [(int(j), 1.0 / len(starts)) for j in starts]
            for a in range(A):
                for j, p in targets:
                    rows_i.append(s); rows_a.append(a); cols.append(j); vals.append(p)
            continue
        for a in range(A):
            for k in range(A):
                if mix[a, k] > 0:
                    rows_i.append(s); rows_a.append(a); cols.append(int(succ[s, k])); vals.append(mix[a, k])
    if has_exit:
        r[exit_state, 0] = 0.0
        r[exit_state, 1:] = -np.inf
        for a in range(A):
            rows_i.append(exit_state); rows_a.append(a); cols.append(exit_state); vals.append(1.0)
    flat = np.asarray(rows_i) * A + np.asarray(rows_a)
    if sparse:
        import scipy.sparse as sp
        P = sp.csr_matrix((np.asarray(vals), (flat, np.asarray(cols))), shape=(S * A, S))
    else:
        P = np.zeros((S * A, S))
        np.add.at(P, (flat, np.asarray(cols)), np.asarray(vals))
        P = P.reshape(S, A, S)
    p0 = np.zeros(S)
    p0[starts] = 1.0 / len(starts)
    names = [f"({int(i)},{int(j)})" for i, j in coords] + (["exit"] if has_exit else [])
    meta = {
        "kind": "grid",
        "shape": [H, W],
        "coords": [[int(i), int(j)] for i, j in coords] + ([[-1, -1]] if has_exit else []),
        "start": [int(x) for x in starts],
        "goals": [int(x) for x in np.flatnonzero(kinds == "G")],
        "lava": [int(x) for x in np.flatnonzero(kinds == "L")],
        "layout": "\n".join(rows),
        "slip": float(slip),
    }
    return TabularMDP(P, r, p0, horizon=horizon, discount=discount, state_names=names,
                      action_names=[n for n, _ in GRID_ACTIONS], metadata=meta)


def two_route(*, slip: float = 0.0, horizon: Optional[int] = 12, **kwargs) -> TabularMDP:
    """Two equally long corridors from ``S`` to ``G`` around a wall (the "try every way" demo).

    The soft-optimal policy at the start splits its mass between going up and going down,
    where hard value iteration commits to one. Keyword arguments go to :func:`gridworld`.
    """
    return gridworld(TWO_ROUTE_LAYOUT, slip=slip, horizon=horizon, **kwargs)


def cliff(*, slip: float = 0.0, horizon: Optional[int] = 30, step_cost: float = -1.0,
          goal_reward: float = 100.0, lava_reward: float = -100.0, **kwargs) -> TabularMDP:
    """The cliff walk (Sutton and Barto, Example 6.6) on :data:`CLIFF_LAYOUT`, at their reward scale.

    At this scale hard value iteration hugs the cliff edge while the soft policy at alpha of
    about 1 to 2 keeps away from it. Keyword arguments go to :func:`gridworld`.
    """
    return gridworld(CLIFF_LAYOUT, slip=slip, horizon=horizon, step_cost=step_cost,
                     goal_reward=goal_reward, lava_reward=lava_reward, **kwargs)


def chain(
    n: int = 6,
    *,
    slip: float = 0.0,
    small_reward: float = 0.2,
    large_reward: float = 1.0,
    horizon: Optional[int] = 10,
    discount: Optional[float] = None,
) -> TabularMDP:
    """A corridor of ``n`` states with actions ``left`` and ``right``.

    The agent starts in state 1. Acting in state 0 pays ``small_reward`` (a nearby distractor);
    acting in state ``n-1`` pays ``large_reward``; every other state pays 0. With probability
    ``slip`` the move goes the other way. Both ends are reflecting.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n: expected an integer >= 2, got {n!r}")
    if not (0.0 <= float(slip) < 1.0):
        raise ValueError(f"slip: expected a probability in [0, 1), got {slip!r}")
    P = np.zeros((n, 2, n))
    for s in range(n):
        left, right = max(s - 1, 0), min(s + 1, n - 1)
        P[s, 0, left] += 1 - slip
        P[s, 0, right] += slip
        P[s, 1, right] += 1 - slip
        P[s, 1, left] += slip
    r = np.zeros((n, 2))
    r[0, :] = small_reward
    r[n - 1, :] = large_reward
    p0 = np.zeros(n)
    p0[1] = 1.0
    meta = {"kind": "chain", "shape": [1, n], "coords": [[0, s] for s in range(n)], "start": [1]}
    return TabularMDP(P, r, p0, horizon=horizon, discount=discount, state_names=[str(s) for s in range(n)],
                      action_names=["left", "right"], metadata=meta)


def random_mdp(
    n_states: int,
    n_actions: int,
    branching: int = 3,
    *,
    seed: int = 0,
    horizon: Optional[int] = 10,
    discount: Optional[float] = None,
    reward_scale: float = 1.0,
    sparse: bool = False,
) -> TabularMDP:
    """A Garnet-style random MDP.

    Each ``(s, a)`` reaches ``branching`` distinct successors chosen uniformly, with
    probabilities from a uniform partition of [0, 1] (Dirichlet(1, ..., 1)); rewards are
    ``reward_scale * N(0, 1)`` per ``(s, a)``; the initial distribution is uniform.

    References:
        Archibald, McKinnon and Thomas (1995), "On the generation of Markov decision processes".
    """
    for nm, v, lo in (("n_states", n_states, 1), ("n_actions", n_actions, 1), ("branching", branching, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{nm}: expected an integer >= {lo}, got {v!r}")
    if branching > n_states:
        raise ValueError(f"branching: expected at most n_states={n_states}, got {branching}")
    rng = np.random.default_rng(seed)
    S, A, B = int(n_states), int(n_actions), int(branching)
    if B == S:
        cols = np.tile(np.arange(S), (S * A, 1))
    elif B * B <= S:
        # draw with replacement and redraw the rows that repeat a successor (rare when B^2 <= S)
        cols = rng.integers(0, S, size=(S * A, B))
        while True:
            srt = np.sort(cols, axis=1)
            dup = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
            if not dup.any():
                break
            cols[dup] = rng.integers(0, S, size=(int(dup.sum()), B))
    else:
        cols = np.argsort(rng.random((S * A, S)), axis=1)[:, :B]
    vals = rng.dirichlet(np.ones(B), size=S * A)
    r = reward_scale * rng.standard_normal((S, A))
    rows = np.repeat(np.arange(S * A), B)
    if sparse:
        import scipy.sparse as sp
        P = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(S * A, S))
    else:
        P = np.zeros((S * A, S))
        P[rows, cols.ravel()] = vals.ravel()
        P = P.reshape(S, A, S)
    return TabularMDP(P, r, None, horizon=horizon, discount=discount,
                      metadata={"kind": "random", "branching": B, "seed": int(seed)})


def options_fork(n_options: int = 4, *, corridor_bonus: float = 0.0, horizon: Optional[int] = 2,
                 discount: Optional[float] = None, slip: Optional[float] = None) -> TabularMDP:
    """A fork between a corridor with one way on and a hub with ``n_options`` ways on.

    States ``fork, corridor, hub, end``; actions ``0 .. n_options-1``. At the fork, action 0 goes
    to the corridor (paying ``corridor_bonus``) and action 1 to the hub; the other actions are
    forbidden (reward ``-inf``). In the corridor only action 0 is allowed; in the hub every action
    is allowed; both lead to the absorbing ``end`` (where every action is allowed and all pay 0).
    Both routes reach ``end`` at the same step, so with ``corridor_bonus = 0`` they are equally
    rewarding and differ only in how many options follow the fork.

    With ``horizon=2`` and temperature ``alpha`` (derived in :mod:`cai.why.future_entropy`): the
    soft-optimal policy goes to the hub w.p. ``n / (n + exp(c / alpha))`` and the myopic one
    w.p. ``1 / (1 + exp(c / alpha))`` (``n = n_options``, ``c = corridor_bonus``).

    Args:
        n_options: actions in the hub (and the number of actions, ``>= 2``).
        corridor_bonus: reward for taking the corridor.
        horizon, discount: passed to :class:`~cai.TabularMDP`.
        slip: must be ``None`` or 0 (the world is deterministic; accepted for the registry).

    Raises:
        ValueError: for ``n_options < 2``, a non-finite bonus, a slip, or a bad horizon/discount.
    """
    if slip not in (None, 0, 0.0):
        raise ValueError(f"slip: expected None (options_fork is deterministic), got {slip!r}")
    if isinstance(n_options, bool) or not isinstance(n_options, (int, np.integer)) or n_options < 2:
        raise ValueError(f"n_options: expected an integer >= 2, got {n_options!r}")
    if not np.isfinite(corridor_bonus):
        raise ValueError(f"corridor_bonus: expected a finite number, got {corridor_bonus!r}")
    k = int(n_options)
    P = np.zeros((4, k, 4))
    P[0, :, 3] = 1.0
    P[0, 0, :], P[0, 1, :] = 0.0, 0.0
    P[0, 0, 1], P[0, 1, 2] = 1.0, 1.0
    P[1:, :, 3] = 1.0
    r = np.zeros((4, k))
    r[0, 0] = corridor_bonus
    r[0, 2:] = -np.inf
    r[1, 1:] = -np.inf
    return TabularMDP(P, r, [1.0, 0.0, 0.0, 0.0], horizon=horizon, discount=discount,
                      state_names=["fork", "corridor", "hub", "end"],
                      action_names=[str(a) for a in range(k)],
                      metadata={"kind": "options_fork", "n_options": k, "corridor_bonus": float(corridor_bonus)})


def lottery(
    *,
    p_win: float = 0.1,
    win: float = 10.0,
    lose: float = -1.0,
    safe: float = 0.5,
) -> TabularMDP:
    """One decision: a sure ``safe`` reward against a gamble paying ``win`` w.p. ``p_win``.

    States ``start, safe, win, lose``; actions ``safe, gamble``; horizon 1; the outcome's
    reward is the terminal reward. For ``alpha = 1`` and the defaults, soft value iteration
    compares ``Q(safe) = 0.5`` with ``E[r] = 0.1 * 10 - 0.9 = 0.1`` and prefers the sure thing,
    while exact inference compares with ``log(0.1 e^10 + 0.9 e^-1) ≈ 7.70`` and gambles: it
    assumes it can choose to win.
    """
    if not (0.0 < p_win < 1.0):
        raise ValueError(f"p_win: expected a probability in (0, 1), got {p_win!r}")
    P = np.zeros((4, 2, 4))
    P[0, 0, 1] = 1.0
    P[0, 1, 2], P[0, 1, 3] = p_win, 1 - p_win
    for s in (1, 2, 3):
        P[s, :, s] = 1.0
    r = np.zeros((4, 2))
    r[1:, 1] = -np.inf                                  # the outcomes absorb: one action, nothing to choose
    return TabularMDP(P, r, [1.0, 0.0, 0.0, 0.0], horizon=1,
                      terminal_rewards=[0.0, safe, win, lose],
                      state_names=["start", "safe", "win", "lose"], action_names=["safe", "gamble"],
                      metadata={"kind": "lottery", "p_win": p_win, "win": win, "lose": lose, "safe": safe})


def square_layout(n: int, lava: bool = True) -> str:
    """An ``n x n`` open grid: start top-left, goal bottom-right, a lava strip across the middle
    row with gaps at both ends (``n >= 3``)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n: expected an integer >= 3, got {n!r}")
    rows = [["."] * n for _ in range(n)]
    rows[0][0], rows[n - 1][n - 1] = "S", "G"
    if lava:
        for j in range(1, n - 1):
            rows[n // 2][j] = "L"
    return "\n".join("".join(r) for r in rows)


def square(n: int = 5, *, lava: bool = True, slip: float = 0.0, horizon: Optional[int] = 10, **kwargs) -> TabularMDP:
    """An ``n x n`` grid (:func:`square_layout`): start top-left, goal bottom-right, lava across the middle."""
    return gridworld(square_layout(n, lava), slip=slip, horizon=horizon, **kwargs)


def bandit(n_arms: int = 3) -> TabularMDP:
    """A ``n_arms``-armed bandit as a one-decision MDP: arm ``k`` leads to the outcome state ``k + 1``.

    States ``start, arm 0, ..., arm K-1``; actions ``0 .. K-1``; horizon 1; every reward 0 (put
    the task in ``terminal_rewards``). The outcome states absorb with one allowed action. The
    goal-reaching meta-POMDP of :mod:`cai.why.meta_pomdp` hides one outcome as the goal.

    Args:
        n_arms: number of arms ``K >= 2``.

    Returns:
        :class:`~cai.TabularMDP` with ``metadata["goals"] = [1, ..., K]`` (the outcome states).

    Raises:
        ValueError: for ``n_arms`` not an integer ``>= 2``.
    """
    if isinstance(n_arms, bool) or not isinstance(n_arms, (int, np.integer)) or n_arms < 2:
        raise ValueError(f"n_arms: expected an integer >= 2, got {n_arms!r}")
    k = int(n_arms)
    P = np.zeros((k + 1, k, k + 1))
    P[0, np.arange(k), np.arange(1, k + 1)] = 1.0
    P[np.arange(1, k + 1), :, np.arange(1, k + 1)] = 1.0
    r = np.zeros((k + 1, k))
    r[1:, 1:] = -np.inf                                  # the outcomes absorb: nothing to choose
    return TabularMDP(P, r, np.eye(k + 1)[0], horizon=1,
                      state_names=["start"] + [f"arm {i}" for i in range(k)],
                      action_names=[str(i) for i in range(k)],
                      metadata={"kind": "bandit", "n_arms": k, "goals": list(range(1, k + 1))})


def goal_lattice(depth: int = 3) -> TabularMDP:
    """A deterministic triangle of cells ``(i, j)``, ``i + j <= depth``, walked right or down from ``(0, 0)``.

    Actions ``right`` (``i + 1``) and ``down`` (``j + 1``); the horizon is ``depth``, so every
    episode ends on the diagonal ``i + j = depth`` (the ``depth + 1`` goal cells, which absorb
    with one allowed action). The cell ``(i, depth - i)`` is the end of ``binomial(depth, i)``
    action sequences: goals differ in how many paths reach them, the subtlety of
    :mod:`cai.why.meta_pomdp`. Every reward is 0 (put the task in ``terminal_rewards``).

    Args:
        depth: the number of steps ``>= 1``.

    Returns:
        :class:`~cai.TabularMDP` with ``metadata["goals"]`` (the diagonal cells in order of
        ``i``) and ``metadata["cells"]`` (``[i, j]`` per state).

    Raises:
        ValueError: for ``depth`` not an integer ``>= 1``.
    """
    d = check_positive_int("depth", depth, "an integer >= 1")
    cells = [(i, s - i) for s in range(d + 1) for i in range(s + 1)]
    index = {c: n for n, c in enumerate(cells)}
    S = len(cells)
    P = np.zeros((S, 2, S))
    r = np.zeros((S, 2))
    for n, (i, j) in enumerate(cells):
        if i + j < d:
            P[n, 0, index[(i + 1, j)]] = 1.0
            P[n, 1, index[(i, j + 1)]] = 1.0
        else:
            P[n, :, n] = 1.0
            r[n, 1] = -np.inf
    return TabularMDP(P, r, np.eye(S)[0], horizon=d,
                      state_names=[f"({i},{j})" for i, j in cells], action_names=["right", "down"],
                      metadata={"kind": "goal_lattice", "depth": d, "cells": [list(c) for c in cells],
                                "goals": [index[(i, d - i)] for i in range(d + 1)]})
