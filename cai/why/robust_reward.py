r"""MaxEnt RL solves a robust-reward problem (Eysenbach and Levine, ICLR 2022, §4), exactly.

The robust set. For a temperature ``beta > 0`` and a budget ``epsilon >= 0``, the adversary may
replace the (expected) reward ``r_t(s,a)`` by any ``r~`` with, at every step and state::

    log sum_a exp((r_t(s,a) - r~_t(s,a)) / beta) <= epsilon                        (R_{beta,eps})

It may lower rewards, but the lowered amounts, exponentiated, must stay within a budget per
state; it cannot touch the terminal reward. (A state-wise, discrete-action form of the paper's
robust reward set, with its integral over actions a sum; the constants below are derived here,
not copied. Constraining the visitation-weighted average of the left side instead gives the same
worst-case value, since that value is linear in each state's spent budget.)

The inner minimisation, for a fixed policy ``pi``, separates over ``(t, s)`` and is solved in
closed form by Gibbs' inequality (``E_pi[x] <= log sum_a exp(x(a)) + H(pi)`` with equality iff
``x = log pi + const``)::

    r~*_t(s,a)  = r_t(s,a) - beta * (log pi_t(a|s) + epsilon)       (+inf where pi_t(a|s) = 0)
    min_{r~ in R} E_pi[sum_t gamma^t r~_t] = E_pi[sum_t gamma^t (r_t + beta H(pi_t(.|s_t)))] - beta epsilon D

with ``D = sum_t gamma^t``: the robust objective of *every* policy is its MaxEnt objective at
temperature ``beta``, less a constant. So (the theorem) the MaxEnt objective is a lower bound on
the return under every reward in the robust set, tight at the pessimistic reward ``r~*``; and the
soft-optimal policy at ``alpha = beta`` maximises the worst-case return over the set. A
deterministic (hard) policy gets no entropy credit: its worst case is its return less
``beta epsilon D``.

References:
    Eysenbach and Levine (2022), "Maximum Entropy RL (Provably) Solves Some Robust RL Problems",
    ICLR, §4 (robustness to adversarial rewards).
"""
from __future__ import annotations

import math
import numbers

import torch

from cai.dp.visitation import expected_return, expected_rewards
from cai.mdp.checks import as_tensor, check_policy
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["worst_case_reward", "robust_return"]


def _check(mdp, policy, beta, epsilon, fn):
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"{fn}: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    if mdp.horizon is None:
        raise ValueError(f"{fn}: mdp: expected a finite horizon, got horizon=None")
    if len(mdp.batch_shape):
        raise ValueError(f"{fn}: mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    for name, v, lo in (("beta", beta, 0.0), ("epsilon", epsilon, None)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or \
                (lo is not None and v <= lo) or (lo is None and v < 0):
            want = "a positive finite number" if lo is not None else "a finite number >= 0"
            raise ValueError(f"{name}: expected {want}, got {v!r}")
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    p = check_policy(p, (S, A), mdp.dtype, mdp.device).expand(T, S, A) if p.dim() == 2 else \
        check_policy(p, (T, S, A), mdp.dtype, mdp.device)
    if bool(((p > 0) & ~mdp.allowed).any()):
        raise ValueError("policy: expected no mass on forbidden actions (reward -inf)")
    return p


def worst_case_reward(mdp: TabularMDP, policy: ArrayLike, beta: float = 1.0, epsilon: float = 0.0) -> torch.Tensor:
    r"""The reward in the robust set ``R_{beta,eps}`` that minimises the policy's expected return.

    ``r~*_t(s,a) = r_t(s,a) - beta * (log pi_t(a|s) + epsilon)``; ``+inf`` where ``pi_t(a|s) = 0``
    (the adversary spends nothing there). Every ``(t, s)`` meets the constraint with equality.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch (``r`` is the expected
            reward over ``s'``).
        policy: ``(*b, T, S, A)`` or ``(S, A)``.
        beta: the adversary's temperature > 0.
        epsilon: the budget per state, >= 0.

    Returns:
        ``(*b, T, S, A)``.

    Raises:
        TypeError, ValueError: for a bad MDP, policy, ``beta`` or ``epsilon``.
    """
    p = _check(mdp, policy, beta, epsilon, "worst_case_reward")
    r = expected_rewards(mdp)
    pos = p > 0
    log_p = torch.log(torch.where(pos, p, torch.ones_like(p)))
    return torch.where(pos, r - beta * (log_p + epsilon), torch.full_like(p, math.inf))


def robust_return(mdp: TabularMDP, policy: ArrayLike, beta: float = 1.0, epsilon: float = 0.0) -> torch.Tensor:
    r"""The policy's worst-case expected return over the robust set ``R_{beta,eps}``.

    ``min_{r~ in R} E_pi[sum_t gamma^t r~_t(s_t,a_t) + gamma^T r_T(s_T)]``, evaluated as the
    expected return (:func:`cai.dp.expected_return`) under :func:`worst_case_reward`; it equals
    the MaxEnt objective at temperature ``beta`` less ``beta * epsilon * D``.

    Returns:
        ``(*b,)``.

    Raises:
        TypeError, ValueError: as :func:`worst_case_reward`.
    """
    p = _check(mdp, policy, beta, epsilon, "robust_return")
    return expected_return(mdp, p, worst_case_reward(mdp, p, beta, epsilon))
