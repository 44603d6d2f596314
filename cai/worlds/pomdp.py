"""The named partially observable worlds: the tiger problem and a grid world with a noisy position sensor.

Both return a :class:`~cai.pomdp.POMDP` and are registered in :data:`cai.worlds.WORLDS` with
``kind="pomdp"``.
"""
from __future__ import annotations

from typing import Optional

import torch

from cai.mdp.tabular import TabularMDP
from cai.pomdp.model import POMDP
from cai.worlds.builders import gridworld

__all__ = ["tiger", "noisy_grid", "NOISY_GRID_LAYOUT", "TIGER_ACTIONS", "TIGER_OBSERVATIONS"]

TIGER_ACTIONS = ("listen", "open-left", "open-right")
TIGER_OBSERVATIONS = ("hear-left", "hear-right")

#: Two start corners the agent cannot tell apart and a goal between them, one row down: after a
#: step down, only the sensor says whether the goal is to the left or to the right.
NOISY_GRID_LAYOUT = "S.S\n.G.\n"


def tiger(horizon: int = 3, *, listen_accuracy: float = 0.85, listen_cost: float = -1.0, tiger_reward: float = -100.0,
          treasure_reward: float = 10.0) -> POMDP:
    """The tiger problem (Kaelbling, Littman & Cassandra 1998).

    A tiger is behind the left or the right door (states ``tiger-left``, ``tiger-right``, equally
    likely at first). ``listen`` costs ``listen_cost`` and hears the tiger on its side with
    probability ``listen_accuracy``; opening a door earns ``tiger_reward`` where the tiger is and
    ``treasure_reward`` otherwise, after which the tiger is placed again at random and the
    observation (after an opening) is uninformative (each with probability 1/2).

    Args:
        horizon: number of decisions.
        listen_accuracy: ``p(hear-left | tiger-left, listen)`` in [0.5, 1].
        listen_cost, tiger_reward, treasure_reward: the rewards.

    Returns:
        :class:`~cai.pomdp.POMDP` with ``S = 2``, ``A = 3`` (:data:`TIGER_ACTIONS`), ``O = 2``
        (:data:`TIGER_OBSERVATIONS`).

    Raises:
        ValueError: an accuracy outside [0.5, 1] or a bad horizon.

    References:
        Kaelbling, Littman & Cassandra (1998), "Planning and acting in partially observable
        stochastic domains", Artificial Intelligence 101, §5.
    """
    acc = float(listen_accuracy)
    if not 0.5 <= acc <= 1.0:
        raise ValueError(f"listen_accuracy: expected a probability in [0.5, 1], got {listen_accuracy!r}")
    P = torch.zeros(2, 3, 2, dtype=torch.float64)
    P[:, 0, :] = torch.eye(2, dtype=torch.float64)
    P[:, 1:, :] = 0.5
    r = torch.tensor([[listen_cost, tiger_reward, treasure_reward],
                      [listen_cost, treasure_reward, tiger_reward]], dtype=torch.float64)
    mdp = TabularMDP(P, r, [0.5, 0.5], horizon=horizon, state_names=["tiger-left", "tiger-right"],
                     action_names=list(TIGER_ACTIONS), metadata={"kind": "tiger"})
    Z = torch.full((2, 3, 2), 0.5, dtype=torch.float64)
    Z[:, 0, :] = torch.tensor([[acc, 1 - acc], [1 - acc, acc]], dtype=torch.float64)
    return POMDP(mdp, Z, observation_names=list(TIGER_OBSERVATIONS))


def noisy_grid(layout: str = NOISY_GRID_LAYOUT, *, accuracy: float = 0.8, slip: float = 0.0,
               horizon: Optional[int] = 3, **grid_kwargs) -> POMDP:
    """A grid world (:func:`cai.worlds.gridworld`) whose position sensor is noisy.

    After each move the agent observes its state (cell, or the ``exit``) correctly with
    probability ``accuracy`` and otherwise one of the other states uniformly at random. The
    initial belief is uniform over the ``S`` cells. In a POMDP the agent may not know it stands
    on a goal, so the actions a grid world forbids there (all but one) are given the allowed
    action's reward and moves: every action at a goal, lava cell or the exit does what the single
    action does.

    Args:
        layout: a text layout (default :data:`NOISY_GRID_LAYOUT`).
        accuracy: probability in ``[1/S, 1]`` of reading the true state.
        slip, horizon, grid_kwargs: as :func:`cai.worlds.gridworld` (``horizon`` must be finite).

    Returns:
        :class:`~cai.pomdp.POMDP` with ``O = S`` (observation names = state names).

    Raises:
        ValueError: an accuracy out of range, or invalid grid settings.
    """
    if horizon is None:
        raise ValueError("horizon: expected a finite horizon for a POMDP, got None")
    grid = gridworld(layout, slip=slip, horizon=horizon, **grid_kwargs)
    S, A = grid.n_states, grid.n_actions
    acc = float(accuracy)
    if not 1.0 / S <= acc <= 1.0:
        raise ValueError(f"accuracy: expected a probability in [1/S, 1] = [{1 / S:.3g}, 1], got {accuracy!r}")
    P = grid.dense_transitions().clone()
    r = grid.rewards.clone()
    for s in range(S):
        ok = ~torch.isneginf(r[s])
        first = int(ok.nonzero()[0])
        for a in range(A):
            if not bool(ok[a]):
                r[s, a], P[s, a] = r[s, first], P[s, first]
    mdp = grid.replace(transitions=P, rewards=r)
    Z = torch.full((S, S), (1 - acc) / (S - 1), dtype=torch.float64) if S > 1 else torch.ones(1, 1, dtype=torch.float64)
    Z.fill_diagonal_(acc)
    return POMDP(mdp, Z, observation_names=list(mdp.state_names) if mdp.state_names else None)
