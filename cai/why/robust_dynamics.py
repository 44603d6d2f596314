r"""Robustness to the dynamics: hard and soft policies when a grid cell changes at test time.

A policy is trained (solved) in one grid and run in a *perturbed* one, where a cell becomes a
wall or lava; its return there is computed exactly from the perturbed world's marginals
(:func:`cai.dp.expected_return`), with no sampling. A hard policy commits to one route and
fails whenever the change falls on it; a soft policy spreads over every near-optimal route, so
some of its mass survives. (The theory: Eysenbach and Levine 2022, §5, show that the MaxEnt
objective lower-bounds a robust objective over a set of dynamics; this module demonstrates the
effect on a concrete change, it does not compute that set.)

References:
    Eysenbach and Levine (2022), "Maximum Entropy RL (Provably) Solves Some Robust RL Problems",
    ICLR, §5 and Figure 1 (obstacles added at test time).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from cai.dp.soft_vi import soft_value_iteration, value_iteration
from cai.dp.visitation import expected_return
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["perturb_cell", "PerturbedReturns", "perturbed_returns"]


def _cell_state(mdp, cell) -> int:
    coords = mdp.metadata.get("coords")
    if mdp.metadata.get("kind") != "grid" or coords is None:
        raise ValueError(f"mdp: expected a grid world (metadata kind 'grid'), got {mdp.metadata.get('kind')!r}")
    try:
        rc = [int(cell[0]), int(cell[1])]
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"cell: expected a (row, col) pair, got {cell!r}") from None
    if rc not in coords:
        raise ValueError(f"cell: expected an open cell of the grid, got {tuple(rc)} (a wall or outside)")
    return coords.index(rc)


def perturb_cell(mdp: TabularMDP, cell: Sequence[int], kind: str = "wall", *, lava_reward: float = -10.0) -> TabularMDP:
    """The same grid (same states, same indices) with one cell turned into a wall or lava.

    ``"wall"``: every move that would enter the cell leaves the agent where it was (the cell's
    own state stays, unreachable). ``"lava"``: any action in the cell pays ``lava_reward`` and
    ends the episode (moves to the ``exit`` state, or stays there if the world has none).

    Args:
        mdp: a grid world from :func:`cai.worlds.gridworld` (dense transitions, ``"sa"`` rewards).
        cell: ``(row, col)`` of an open cell.
        kind: ``"wall"`` or ``"lava"``.
        lava_reward: the reward of acting in a lava cell.

    Returns:
        A new :class:`~cai.TabularMDP`; ``metadata`` gains ``"perturbed": [row, col, kind]``.

    Raises:
        ValueError: for a non-grid world, a cell that is not open, a start cell, or an unknown kind.
    """
    s = _cell_state(mdp, cell)
    if kind not in ("wall", "lava"):
        raise ValueError(f"kind: expected 'wall' or 'lava', got {kind!r}")
    if s in mdp.metadata.get("start", []):
        raise ValueError(f"cell: expected a cell other than a start cell, got {tuple(cell)}")
    if mdp.reward_layout != "sa" or len(mdp.batch_shape):
        raise ValueError(f"mdp: expected (S, A) rewards without batch, got layout {mdp.reward_layout!r}")
    P = mdp.dense_transitions().clone()
    r = mdp.rewards.clone()
    meta = dict(mdp.metadata)
    if kind == "wall":
        into = P[:, :, s].clone()                       # (S, A) mass entering the cell
        into[s] = 0.0
        P[:, :, s] -= into
        idx = torch.arange(mdp.n_states)
        P[idx, :, idx] += into
    else:
        names = list(mdp.state_names or [])
        end = names.index("exit") if "exit" in names else s
        P[s] = 0.0
        P[s, :, end] = 1.0
        r[s] = float(lava_reward)
        meta["lava"] = sorted(set(meta.get("lava", [])) | {s})
    meta["perturbed"] = [int(cell[0]), int(cell[1]), kind]
    return mdp.replace(transitions=P, rewards=r, reward_layout="sa", metadata=meta)


class PerturbedReturns(NamedTuple):
    """Exact returns of policies solved in a training world and run in a test world.

    Attributes:
        alpha: ``(K,)`` temperatures of the soft policies.
        soft_test, soft_train: ``(K,)`` expected returns of the soft-optimal policies.
        hard_test, hard_train: the hard (value iteration) policy's expected returns.
    """

    alpha: torch.Tensor
    soft_test: torch.Tensor
    soft_train: torch.Tensor
    hard_test: float
    hard_train: float


def perturbed_returns(train: TabularMDP, test: TabularMDP, alphas: ArrayLike) -> PerturbedReturns:
    r"""Solve in ``train``, run in ``test``: expected returns ``E[sum_t gamma^t r_t + r_T]`` (no entropy).

    Args:
        train, test: finite-horizon MDPs with the same states, actions and horizon.
        alphas: ``(K,)`` positive temperatures (one batched solve).

    Returns:
        :class:`PerturbedReturns`.

    Raises:
        ValueError: if the two worlds' sizes or horizons differ, or for bad temperatures.
    """
    for name, m in (("train", train), ("test", test)):
        if not isinstance(m, TabularMDP):
            raise TypeError(f"{name}: expected a cai.TabularMDP, got {type(m).__name__}")
    if (train.n_states, train.n_actions, train.horizon) != (test.n_states, test.n_actions, test.horizon):
        raise ValueError(f"test: expected the train world's (S, A, T) = {(train.n_states, train.n_actions, train.horizon)}, "
                         f"got {(test.n_states, test.n_actions, test.horizon)}")
    a = torch.as_tensor(alphas, dtype=train.dtype).reshape(-1)
    pol = soft_value_iteration(train, a).policy
    hard = value_iteration(train).policy
    return PerturbedReturns(a, expected_return(test, pol), expected_return(train, pol),
                            float(expected_return(test, hard)), float(expected_return(train, hard)))
