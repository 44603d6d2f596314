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

:func:`policy_iteration` (Howard 1960) and :func:`modified_policy_iteration` (Puterman and Shin
1978) solve the stationary hard (``alpha=None``) or soft problem: each improvement is one full
backup ``Q = r + gamma P V``, ``V' = aggregate(Q)`` (``max`` or the log semiring), whose residual
``V' - V`` gives MacQueen's bounds on the optimum (:func:`cai.ops.recursion.span_bounds`); the
policy it yields is then evaluated exactly (a linear solve) or by ``sweeps`` backups.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import List, Optional

import torch

from cai.dp.soft_vi import _policy_log, soft_policy_evaluation
from cai.mdp.checks import check_positive_int, check_tol
from cai.mdp.tabular import TabularMDP, check_model
from cai.methods import MODIFIED_POLICY_ITERATION, POLICY_ITERATION, SOFT_MODIFIED_POLICY_ITERATION, SOFT_POLICY_ITERATION
from cai.ops.backup import EXPECTATION, action_operator, hard_max, policy_expectation, q_backup, soft_max
from cai.ops.recursion import ConvergenceWarning, Recursion, batch_shape_of, span_bounds
from cai.solution import Solution
from cai.typing import Alpha, ArrayLike

__all__ = ["soft_policy_iteration", "policy_iteration", "modified_policy_iteration"]


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


def policy_iteration(mdp: TabularMDP, alpha: Optional[Alpha] = None, action_prior: Optional[ArrayLike] = None, *,
                     policy: Optional[ArrayLike] = None, tol: float = 1e-10, max_iter: int = 1_000) -> Solution:
    r"""Policy iteration for the stationary problem: improve greedily (or soft-greedily), evaluate exactly.

    ::

        improve:   Q = r + gamma P V,   V' = max_a Q (hard)  or  alpha log sum_a rho exp(Q / alpha) (soft),
                   pi' = the greedy (first arg-max) or soft-greedy policy of Q
        evaluate:  V = (I - gamma P_pi')^{-1} r_pi',   P_pi'(s, s') = sum_a pi'(a|s) P(s'|s, a),
                   r_pi'(s) = sum_a pi'(a|s) [r(s, a) - alpha log(pi'(a|s) / rho(a|s))]

    It stops when MacQueen's bound from the last improvement (:func:`cai.ops.recursion.span_bounds`)
    guarantees ``max_s |V(s) - V*(s)| <= tol * max(1, max |V|)``, or (hard) when the greedy policy
    repeats; the returned ``V`` is the midpoint of the bounds. Hard policy iteration ends in at
    most as many improvements as there are deterministic policies, in practice a handful; the
    soft one converges quadratically (it is Newton's method on the soft Bellman equation).

    Each evaluation forms the dense ``(S, S)`` matrix ``P_pi`` and solves with it: ``O(S^3)``
    time and ``S^2`` memory. For large sparse MDPs use :func:`modified_policy_iteration`.

    Args:
        mdp: a stationary :class:`~cai.TabularMDP` (discount < 1).
        alpha: ``None`` for the hard problem (:func:`cai.value_iteration`'s), or a temperature > 0
            (scalar or batch) for the soft one (:func:`cai.soft_value_iteration`'s).
        action_prior: soft problem only: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        policy: optional starting policy ``(*b, S, A)``, evaluated first (default: start from
            ``V = 0``, i.e. the greedy policy of the immediate reward).
        tol: the guaranteed accuracy of the values (relative to ``max(1, max |V|)``).
        max_iter: most improvements (then a :class:`~cai.ConvergenceWarning`).

    Returns:
        :class:`~cai.Solution` with ``method="policy_iteration"`` (hard) or
        ``"soft_policy_iteration"`` (soft), ``iterations`` (improvements), ``residual``
        (``max |V' - V|`` at the last improvement) and ``error_bound``.

    Raises:
        ValueError: for a finite-horizon MDP (backward induction is already exact), a prior with the
            hard problem, or bad tolerances.

    References:
        Howard (1960), "Dynamic Programming and Markov Processes"; Puterman (1994), "Markov
        Decision Processes", §6.4; Haarnoja et al. (2018), "Soft Actor-Critic", Lemma 2.
    """
    return _iterate(mdp, alpha, action_prior, policy, None, tol, max_iter, "policy_iteration")


def modified_policy_iteration(mdp: TabularMDP, alpha: Optional[Alpha] = None, action_prior: Optional[ArrayLike] = None, *,
                              sweeps: int = 10, policy: Optional[ArrayLike] = None, tol: float = 1e-10,
                              max_iter: int = 10_000) -> Solution:
    r"""Modified policy iteration: improve, then evaluate partially by ``sweeps`` policy backups.

    Between :func:`cai.value_iteration` (``sweeps=0``) and :func:`policy_iteration`
    (``sweeps -> inf``): after each improvement (one full backup, as in :func:`policy_iteration`),
    the improved policy's values are approximated by ``sweeps`` backups ``V <- r_pi + gamma P_pi V``
    started from the improved values. Each sweep is one product with ``P`` (the same
    :func:`cai.ops.backup.q_backup` as value iteration: dense or sparse, on any device), so it
    suits large sparse MDPs where the linear solve of :func:`policy_iteration` does not fit.
    The stopping rule and the returned midpoint are :func:`policy_iteration`'s, so ``tol`` is
    the guaranteed sup-norm accuracy of ``V``.

    Args:
        mdp: a stationary :class:`~cai.TabularMDP` (discount < 1).
        alpha: ``None`` (hard problem) or a temperature > 0, scalar or batch (soft problem).
        action_prior: soft problem only: ``None`` or a normalised ``(S, A)`` prior.
        sweeps: policy-evaluation backups per improvement (an integer >= 0).
        policy: optional starting policy ``(*b, S, A)`` (evaluated by ``sweeps`` backups from 0).
        tol: the guaranteed accuracy of the values (relative to ``max(1, max |V|)``).
        max_iter: most improvements (then a :class:`~cai.ConvergenceWarning`).

    Returns:
        :class:`~cai.Solution` with ``method="modified_policy_iteration"`` (hard) or
        ``"soft_modified_policy_iteration"`` (soft), ``iterations``, ``residual`` and ``error_bound``.

    Raises:
        ValueError: for a finite-horizon MDP, a prior with the hard problem, a bad ``sweeps`` or
            tolerance.

    References:
        Puterman and Shin (1978), "Modified policy iteration algorithms for discounted Markov
        decision problems", Management Science 24; Puterman (1994), §6.5.
    """
    if isinstance(sweeps, bool) or not isinstance(sweeps, numbers.Integral) or sweeps < 0:
        raise ValueError(f"sweeps: expected an integer >= 0, got {sweeps!r}")
    return _iterate(mdp, alpha, action_prior, policy, int(sweeps), tol, max_iter, "modified_policy_iteration")


def _iterate(mdp, alpha, action_prior, policy, sweeps: Optional[int], tol, max_iter, fn: str) -> Solution:
    """Policy iteration (``sweeps=None``: exact evaluation) or modified policy iteration."""
    hard = alpha is None
    if hard and action_prior is not None:
        raise ValueError("action_prior: the hard problem (alpha=None) takes no prior, got one; give alpha for the soft problem")
    a, log_prior = check_model(mdp, 1.0 if hard else alpha, action_prior, fn)
    if hard:
        a = torch.zeros_like(a)
    if mdp.horizon is not None:
        raise ValueError(f"{fn}: mdp: expected a stationary MDP (horizon=None, discount < 1), got horizon "
                         f"{mdp.horizon}; backward induction (cai.value_iteration) is exact there")
    max_iter = check_positive_int("max_iter", max_iter, "an integer >= 1")
    tol = check_tol("tol", tol)
    gamma = mdp.gamma
    b = batch_shape_of(mdp, a)
    S = mdp.n_states
    if hard:
        agg = lambda Q, t=None: hard_max(Q)  # noqa: E731
    else:
        agg = lambda Q, t=None: soft_max(Q, a, log_prior)  # noqa: E731
    r_sa = q_backup(mdp, None, torch.zeros(*b, S, dtype=mdp.dtype, device=mdp.device), a, EXPECTATION)  # E r, (*b, S, A)

    def evaluate(log_pi, v0):
        if sweeps is None:
            return _solve_policy(mdp, log_pi, r_sa, a, log_prior)
        v = v0
        for _ in range(sweeps):
            v = policy_expectation(q_backup(mdp, None, v, a, EXPECTATION), log_pi, a, log_prior)
        return v

    v = torch.zeros(*b, S, dtype=mdp.dtype, device=mdp.device)
    if policy is not None:
        v = evaluate(_policy_log(mdp, policy).expand(*b, S, mdp.n_actions), v)
    residual = bound = math.inf
    prev_greedy = None
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        Q = q_backup(mdp, None, v, a, EXPECTATION)
        v_new, log_pi = agg(Q)
        diff = v_new - v
        residual = diff.abs().max().item() if diff.numel() else 0.0
        shift, bound = span_bounds(diff, gamma)
        scale = max(1.0, v_new.abs().max().item()) if v_new.numel() else 1.0
        greedy = Q.argmax(-1) if hard and sweeps is None else None
        if bound <= tol * scale or (greedy is not None and prev_greedy is not None and torch.equal(greedy, prev_greedy)):
            break
        prev_greedy = greedy
        v = evaluate(log_pi, v_new)
    else:
        warnings.warn(f"{fn} did not converge in max_iter={max_iter} improvements: error bound {bound:.3g} > tol "
                      f"{tol:g} (relative)", ConvergenceWarning, stacklevel=3)
    rec = Recursion(V=[v_new + shift], Q=[Q + shift.unsqueeze(-1)], log_policy=[log_pi], iterations=it,
                    residual=residual, error_bound=bound)
    if sweeps is None:
        method = POLICY_ITERATION if hard else SOFT_POLICY_ITERATION
    else:
        method = MODIFIED_POLICY_ITERATION if hard else SOFT_MODIFIED_POLICY_ITERATION
    final = (lambda Q, t: hard_max(Q)) if hard else (lambda Q, t: soft_max(Q, a, log_prior))  # noqa: E731
    return Solution(rec, mdp, a, EXPECTATION, final, method, log_prior)


def _solve_policy(mdp: TabularMDP, log_pi: torch.Tensor, r_sa: torch.Tensor, a: torch.Tensor,
                  log_prior: Optional[torch.Tensor]) -> torch.Tensor:
    """``V^pi = (I - gamma P_pi)^{-1} r_pi`` for a stationary ``(*b, S, A)`` log policy: ``(*b, S)``."""
    S = mdp.n_states
    pi = torch.exp(log_pi)
    r_pi = policy_expectation(r_sa, log_pi, a, log_prior)                  # (*b, S), KL term included
    if mdp.is_sparse:
        flat = pi.reshape(-1, S, mdp.n_actions)
        P_pi = torch.stack([action_operator(w, mdp.transitions).to_dense() for w in flat]).reshape(*pi.shape[:-1], S)
    else:
        P_pi = action_operator(pi, mdp.transitions)                         # (*b, S, S)
    eye = torch.eye(S, dtype=mdp.dtype, device=mdp.device)
    return torch.linalg.solve(eye - mdp.gamma * P_pi, r_pi.unsqueeze(-1)).squeeze(-1)
