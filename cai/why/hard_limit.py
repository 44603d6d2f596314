r"""The hard limit: as ``alpha -> 0`` soft value iteration recovers hard value iteration, and
breaks ties by spreading its mass over *all* optimal behaviours.

Expanding soft value iteration in ``alpha`` (finite horizon or discounted, any dynamics)::

    V^alpha_t(s) = V*_t(s) + alpha * H_t(s) + o(alpha)
    H_t(s)       = log sum_{a in A*_t(s)} rho(a|s) exp(gamma * sum_s' P(s'|s,a) H_{t+1}(s')),   H_T = 0
    pi^alpha_t(a|s) -> pi^0_t(a|s) = 1[a in A*_t(s)] rho(a|s) exp(gamma * P H_{t+1}(s,a) - H_t(s))

where ``V*`` and ``A*_t(s) = argmax_a Q*_t(s, a)`` come from hard value iteration. (Non-optimal
actions are suppressed like ``exp(-gap / alpha)``, so the corrections are exponentially small
once ``alpha`` is well below the smallest gap of Q-values.) ``H`` is soft value iteration at
``alpha = 1`` with zero reward on the hard-optimal actions and every other action forbidden: the
limit policy is the *maximum causal entropy policy among the optimal ones*. With deterministic
dynamics and no prior, ``exp(H_t(s))`` is the number of optimal action sequences from ``s``, and
the limit policy is uniform over optimal trajectories, not over optimal actions.

Hard value iteration, by contrast, returns one optimal action (the first arg-max) and no
information about the others.

References:
    Ziebart (2010), "Modeling Purposeful Adaptive Behavior with the Principle of Maximum Causal
    Entropy", §6; Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference", §2.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from cai.dp.soft_vi import soft_value_iteration, value_iteration
from cai.mdp.tabular import TabularMDP, check_model
from cai.solution import Solution
from cai.typing import ArrayLike

__all__ = ["ZeroTemperatureLimit", "zero_temperature_limit"]


class ZeroTemperatureLimit(NamedTuple):
    """The ``alpha -> 0`` limit of soft value iteration.

    Attributes:
        policy: ``(T, S, A)`` (or ``(S, A)`` stationary) limit of the soft-optimal policy.
        entropy: ``(T+1, S)`` (or ``(S,)``) the first-order term ``H``, in nats:
            ``V^alpha = V* + alpha * H + o(alpha)``.
        optimal: ``(T, S, A)`` (or ``(S, A)``) bool, the hard-optimal actions ``A*``.
        hard: the :class:`~cai.Solution` of hard value iteration.
    """

    policy: torch.Tensor
    entropy: torch.Tensor
    optimal: torch.Tensor
    hard: Solution


def zero_temperature_limit(mdp: TabularMDP, action_prior: Optional[ArrayLike] = None, *, atol: float = 1e-9) -> ZeroTemperatureLimit:
    r"""The limit of the soft-optimal policy and values as ``alpha -> 0``.

    ::

        A*_t(s)  = {a : Q*_t(s,a) >= V*_t(s) - atol * max(1, |V*_t(s)|)}
        H_t(s)   = log sum_{a in A*_t(s)} rho(a|s) exp(gamma * sum_s' P(s'|s,a) H_{t+1}(s'))
        pi^0_t   ∝ 1[A*] rho exp(gamma * P H_{t+1})

    Args:
        mdp: a :class:`~cai.TabularMDP` without reward batch.
        action_prior: ``None`` (counting measure) or an ``(S, A)`` prior ``rho``.
        atol: relative tolerance under which two Q-values count as tied.

    Returns:
        :class:`ZeroTemperatureLimit` (shapes there).

    Raises:
        TypeError: if ``mdp`` is not a :class:`~cai.TabularMDP`.
        ValueError: for a reward batch, a bad prior or a negative ``atol``.
    """
    check_model(mdp, 1.0, action_prior, "zero_temperature_limit")
    if len(mdp.batch_shape) or mdp.terminal_rewards.dim() > 1:
        raise ValueError(f"mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    if not (isinstance(atol, (int, float)) and atol >= 0):
        raise ValueError(f"atol: expected a number >= 0, got {atol!r}")
    hard = value_iteration(mdp)
    Q, V = hard.Q, hard.V
    Vt = V[..., :-1, :] if mdp.horizon is not None else V
    threshold = (Vt - atol * Vt.abs().clamp_min(1.0)).unsqueeze(-1)
    optimal = threshold <= Q
    if action_prior is not None:
        optimal = optimal & (torch.as_tensor(action_prior, dtype=mdp.dtype) > 0)
    r = torch.where(optimal, torch.zeros_like(Q), torch.full_like(Q, -float("inf")))
    restricted = mdp.replace(rewards=r, reward_layout="tsa" if mdp.horizon is not None else "sa",
                             terminal_rewards=torch.zeros_like(mdp.terminal_rewards))
    sol = soft_value_iteration(restricted, 1.0, action_prior)
    return ZeroTemperatureLimit(sol.policy, sol.V, optimal, hard)
