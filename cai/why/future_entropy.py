r"""Don't ignore future entropy: the MaxEnt objective against a myopic entropy bonus.

A *myopic* agent adds the entropy bonus to the current step only and assumes it will act
optimally (greedily) afterwards::

    Q^my_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V*_{t+1}(s')        (hard values after t)
    pi^my_t(a|s) ∝ rho(a|s) exp(Q^my_t(s,a) / alpha)                       (Boltzmann over Q*)

This is Boltzmann exploration over the optimal Q-function. The MaxEnt agent maximises reward plus
entropy of *all* future steps, ``Q = r + gamma P V^soft`` with ``V^soft = alpha log sum rho
exp(Q / alpha)``. Since ``V^soft_{t+1} - V*_{t+1} >= 0`` measures how many good options lie ahead
(``alpha * log(#optimal continuations)`` in the deterministic, zero-temperature limit), the two
policies differ exactly where successors differ in future options::

    pi^soft_t(a|s) / pi^my_t(a|s) ∝ exp(gamma * sum_s' P(s'|s,a) (V^soft_{t+1} - V*_{t+1})(s') / alpha)

and coincide at every state whose actions all lead to futures of equal option value (in
particular at the last step). MaxEnt RL steers towards states where it keeps options open.

References:
    Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement Learning with Deep Energy-Based
    Policies", §2 (the MaxEnt objective maximises the entropy of entire trajectories, not only of
    the current action); Levine (2018), §2.4.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from cai.dp.soft_vi import value_iteration
from cai.mdp.tabular import TabularMDP, check_model
from cai.ops.backup import soft_max
from cai.typing import Alpha, ArrayLike

__all__ = ["MyopicPolicy", "myopic_policy"]


class MyopicPolicy(NamedTuple):
    """The myopic (one-step entropy bonus) policy.

    Attributes:
        policy: ``(*k, T, S, A)`` (or ``(*k, S, A)`` stationary; ``*k`` is alpha's shape), ``∝ rho exp(Q* / alpha)``.
        Q: the hard-optimal Q-values ``Q*`` it is a Boltzmann distribution over, ``(T, S, A)``.
    """

    policy: torch.Tensor
    Q: torch.Tensor


def myopic_policy(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None) -> MyopicPolicy:
    r"""The policy that adds an entropy bonus to the current step only: ``pi ∝ rho exp(Q*/alpha)``.

    ``Q*_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V*_{t+1}(s')`` from hard value iteration.

    Args:
        mdp: a :class:`~cai.TabularMDP`.
        alpha: temperature > 0, a scalar or a batch ``(*k)`` (prepended to the policy's shape).
        action_prior: ``None`` or an ``(S, A)`` prior ``rho``.

    Returns:
        :class:`MyopicPolicy` with ``policy`` of shape ``(*k, T, S, A)`` (``(*k, S, A)``
        stationary).

    Raises:
        TypeError, ValueError: for a bad MDP, temperature or prior.
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "myopic_policy")
    Q = value_iteration(mdp).Q
    # alpha (*k) against Q (*k, [T,] S, A): one trailing axis per time axis
    a_q = a.reshape(tuple(a.shape) + (1,) * (Q.dim() - 2))
    Q_b = Q.expand(*a.shape, *Q.shape) if a.dim() else Q
    _, log_pi = soft_max(Q_b, a_q, log_prior)
    return MyopicPolicy(torch.exp(log_pi), Q)
