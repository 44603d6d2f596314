r"""Soft policy iteration and the soft policy improvement theorem.

Soft policy iteration alternates exact soft policy evaluation with the soft-greedy improvement::

    evaluate:  Q^pi_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V^pi_{t+1}(s')
               V^pi_t(s)   = sum_a pi_t(a|s) [Q^pi_t(s,a) - alpha * log(pi_t(a|s) / rho(a|s))]
    improve:   pi'_t(a|s) ∝ rho(a|s) exp(Q^pi_t(s,a) / alpha)

The soft policy improvement theorem (Haarnoja et al. 2017, Theorem 4; Haarnoja et al. 2018,
Lemma 2) says ``V^{pi'}_t(s) >= V^pi_t(s)`` at every state and step, so the objective rises
monotonically everywhere, and the only fixed point is the soft-optimal policy that soft value
iteration finds. With a finite horizon ``T`` the iteration is exact after at most ``T``
improvements (after ``k`` of them the last ``k`` steps are optimal).
"""
from __future__ import annotations

import numbers
import warnings
from typing import List, Optional

import torch

from cai.dp.soft_vi import soft_policy_evaluation
from cai.mdp.tabular import TabularMDP, check_model
from cai.methods import SOFT_POLICY_ITERATION
from cai.ops.backup import EXPECTATION, soft_max
from cai.ops.recursion import ConvergenceWarning, Recursion
from cai.solution import Solution
from cai.typing import Alpha, ArrayLike

__all__ = ["soft_policy_iteration"]


def soft_policy_iteration(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *,
                          policy: Optional[ArrayLike] = None, tol: float = 1e-12,
                          max_iter: int = 1_000, eval_tol: Optional[float] = None,
                          history: Optional[List[torch.Tensor]] = None) -> Solution:
    r"""Soft policy iteration: evaluate the policy exactly, improve it soft-greedily, repeat.

    ::

        pi_{k+1,t}(a|s) = rho(a|s) exp((Q^{pi_k}_t(s,a) - V_t(s)) / alpha),
        V_t(s) = alpha * log sum_a rho(a|s) exp(Q^{pi_k}_t(s,a) / alpha)

    Each evaluation is :func:`cai.soft_policy_evaluation`; each improvement is the same log
    semiring over actions as :func:`cai.soft_value_iteration` (:func:`cai.ops.backup.soft_max`).
    The iteration stops when ``max |V^{pi_{k+1}} - V^{pi_k}| <= tol * max(1, max |V|)``.

    Args:
        mdp: :class:`~cai.TabularMDP` (finite horizon, or stationary with a discount < 1).
        alpha: temperature > 0; a scalar or a batch (broadcast against the reward batch).
        action_prior: ``None`` (entropy bonus) or an ``(S, A)`` prior ``rho`` (KL penalty).
        policy: the starting policy, ``(*b, T, S, A)``, ``(S, A)`` or, stationary, ``(*b, S, A)``;
            default ``rho`` (uniform over actions for the counting measure; forbidden actions
            are given no mass).
        tol: relative stopping tolerance on the values between two iterates.
        max_iter: most improvements (then a :class:`~cai.ConvergenceWarning`).
        eval_tol: tolerance of each stationary policy evaluation (default ``tol / 10``).
        history: if a list is given, the values ``V^{pi_k}`` of every evaluated policy
            (``(*b, T+1, S)`` or ``(*b, S)``) are appended to it, starting with ``pi_0``.

    Returns:
        :class:`~cai.Solution` with ``method="soft_policy_iteration"``: ``V`` and ``Q`` of the last
        evaluated policy, ``policy`` its improvement (the two coincide at convergence), and
        ``iterations`` (improvements made) and ``residual`` (last change in V).

    Raises:
        TypeError, ValueError: for a bad MDP, temperature, prior, starting policy or tolerances.

    References:
        Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement Learning with Deep Energy-Based
        Policies", Theorem 4 (soft policy improvement); Haarnoja, Zhou, Abbeel and Levine (2018),
        "Soft Actor-Critic", Lemmas 1-2 and Theorem 1 (soft policy iteration converges).
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "soft_policy_iteration")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol: expected a number >= 0, got {tol!r}")
    ev_tol = tol / 10 if eval_tol is None else eval_tol
    finite = mdp.horizon is not None
    # alpha against Q: (*b, 1, 1) for (*b, S, A), one more axis for the time axis of (*b, T, S, A)
    a_q = a.unsqueeze(-1) if finite else a

    if policy is None:
        allowed = mdp.allowed.to(mdp.dtype)                            # (S, A)
        w = allowed if log_prior is None else allowed * torch.exp(log_prior)
        policy = w / w.sum(-1, keepdim=True)
    sol = soft_policy_evaluation(mdp, policy, a, action_prior, tol=ev_tol)
    if history is not None:
        history.append(sol.V)
    residual = float("inf")
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        _, log_pi = soft_max(sol.Q, a_q, log_prior)
        new = soft_policy_evaluation(mdp, torch.exp(log_pi), a, action_prior, tol=ev_tol)
        if history is not None:
            history.append(new.V)
        diff = (new.V - sol.V).abs()
        residual = diff.max().item() if diff.numel() else 0.0
        scale = max(1.0, new.V.abs().max().item()) if new.V.numel() else 1.0
        sol = new
        if residual <= tol * scale:
            break
    else:
        warnings.warn(f"soft_policy_iteration did not converge in max_iter={max_iter} improvements: "
                      f"last change {residual:.3g} > tol {tol:g} (relative)", ConvergenceWarning, stacklevel=2)
    Q = sol.Q
    _, log_pi = soft_max(Q, a_q, log_prior)
    if finite:
        rec = Recursion(V=list(sol.V.unbind(-2)), Q=list(Q.unbind(-3)), log_policy=list(log_pi.unbind(-3)),
                        iterations=it, residual=residual)
    else:
        rec = Recursion(V=[sol.V], Q=[Q], log_policy=[log_pi], iterations=it, residual=residual)
    agg = lambda Q, t: soft_max(Q, a, log_prior)  # noqa: E731
    return Solution(rec, mdp, a, EXPECTATION, agg, SOFT_POLICY_ITERATION, log_prior)
