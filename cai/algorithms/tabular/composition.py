r"""Composable soft Q-functions (Haarnoja et al. 2018).

Given the optimal soft Q-functions ``Q_i`` of tasks with rewards ``r_i`` (same dynamics,
temperature and action prior), the composed task with reward ``r_C = sum_i w_i r_i`` (convex
weights) is approached by ``Q_Sigma = sum_i w_i Q_i`` and its Boltzmann policy
``pi_Sigma ∝ rho exp(Q_Sigma / alpha)``. With

    V_Sigma(s)  = alpha log sum_a rho(a|s) exp(Q_Sigma(s,a) / alpha)
    delta(s)    = sum_i w_i V_i(s) - V_Sigma(s)  =  -alpha log sum_a rho prod_i (pi_i / rho)^{w_i}  >= 0

(a Rényi-type divergence between the tasks' policies, 0 iff they agree; for two tasks with
``w = (1/2, 1/2)`` and the counting prior it is ``(alpha/2) D_{1/2}(pi_1 || pi_2)``), the
composed task's optimal soft Q obeys (Haarnoja et al. 2018, Theorem 1)::

    Q_Sigma - C  <=  Q*_C  <=  Q_Sigma,      C(s,a) = gamma E_{s'}[ delta(s') + max_a' C(s',a') ]

and the composed policy's own soft Q (:func:`cai.soft_policy_evaluation`) is exactly
``Q^{pi_Sigma} = Q_Sigma - D`` with ``D(s,a) = gamma E_{s'}[ delta(s') + E_{pi_Sigma} D(s',.) ]``,
so its sub-optimality is bounded by computable quantities::

    0  <=  Q*_C - Q^{pi_Sigma}  <=  D  <=  C.

Both recursions are the backward recursion of the core on the zero-reward MDP (``q_backup``
with ``mode=EXPECTATION``) with the max semiring (``C``) or the policy expectation (``D``).
Finite horizons carry time-indexed ``Q``, ``delta``, ``C`` and ``D``; stationary problems iterate
to a fixed point (both are contractions with modulus ``gamma``).

References:
    Haarnoja, Pong, Zhou, Dalal, Abbeel and Levine (2018), "Composable deep reinforcement
    learning for robotic manipulation", ICRA, §IV and Theorem 1.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import torch

from cai.mdp.checks import as_tensor
from cai.methods import SOFT_VI
from cai.ops.backup import EXPECTATION, hard_max, policy_expectation, soft_max
from cai.ops.recursion import backward
from cai.solution import Solution
from cai.typing import ArrayLike

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["Composition", "compose", "combined_mdp"]


class Composition(NamedTuple):
    """The composed policy and its sub-optimality bounds.

    Shapes for a finite horizon ``T`` (stationary problems drop the time axis).

    Attributes:
        Q: ``(T, S, A)`` ``Q_Sigma = sum_i w_i Q_i`` (an upper bound on ``Q*_C``).
        V: ``(T+1, S)`` ``V_Sigma``, the soft maximum of ``Q_Sigma`` (``V_T = r_T`` of ``r_C``).
        policy, log_policy: ``(T, S, A)`` the composed policy ``pi_Sigma``.
        divergence: ``(T+1, S)`` ``delta = sum_i w_i V_i - V_Sigma >= 0`` (``delta_T = 0``).
        bound: ``(T, S, A)`` ``C`` of Haarnoja et al. (2018), Theorem 1:
            ``Q_Sigma - C <= Q*_C`` and ``Q*_C - Q^{pi_Sigma} <= C``.
        policy_gap: ``(T, S, A)`` ``D = Q_Sigma - Q^{pi_Sigma}`` exactly; ``Q*_C - Q^{pi_Sigma} <= D <= C``.
        value_gap_bound: ``(S,)`` at ``t = 0``: ``max_a C_0(s, a)``, a bound on
            ``V*_C(s) - V^{pi_Sigma}(s)``.
        value_gap: ``(S,)`` at ``t = 0``: ``sum_a pi_Sigma D_0 = V_Sigma - V^{pi_Sigma}`` (exact),
            also a bound on ``V*_C - V^{pi_Sigma}``.
        mdp: the composed task (reward ``sum_i w_i r_i``), to solve exactly for comparison.
        weights: ``(k,)``.
    """

    Q: torch.Tensor
    V: torch.Tensor
    policy: torch.Tensor
    log_policy: torch.Tensor
    divergence: torch.Tensor
    bound: torch.Tensor
    policy_gap: torch.Tensor
    value_gap_bound: torch.Tensor
    value_gap: torch.Tensor
    mdp: object
    weights: torch.Tensor


def _check_solutions(solutions) -> Sequence[Solution]:
    if isinstance(solutions, Solution) or not isinstance(solutions, Sequence) or len(solutions) == 0:
        raise TypeError(f"solutions: expected a non-empty sequence of cai.Solution from "
                        f"cai.soft_value_iteration, got {type(solutions).__name__}")
    ref = solutions[0]
    for i, s in enumerate(solutions):
        if not isinstance(s, Solution) or s.method != SOFT_VI:
            what = type(s).__name__ if not isinstance(s, Solution) else f"a Solution of method {s.method!r}"
            raise TypeError(f"solutions[{i}]: expected the result of cai.soft_value_iteration, got {what}")
        m, m0 = s.mdp, ref.mdp
        if s.V.shape != ref.V.shape or m.batch_shape != torch.Size([]) or s.alpha.dim() != 0:
            raise ValueError(f"solutions[{i}]: expected an unbatched solution with V of shape {tuple(ref.V.shape)}, "
                             f"got {tuple(s.V.shape)}")
        if not torch.equal(s.alpha, ref.alpha):
            raise ValueError(f"solutions[{i}]: expected the temperature {ref.alpha.item()!r} of solutions[0], "
                             f"got {s.alpha.item()!r}")
        same_prior = (s.log_prior is None and ref.log_prior is None) or (
            s.log_prior is not None and ref.log_prior is not None and torch.equal(s.log_prior, ref.log_prior))
        if not same_prior:
            raise ValueError(f"solutions[{i}]: expected the action prior of solutions[0]")
        if (m.horizon, m.discount, m.reward_layout) != (m0.horizon, m0.discount, m0.reward_layout):
            raise ValueError(f"solutions[{i}]: expected horizon, discount and reward layout "
                             f"{(m0.horizon, m0.discount, m0.reward_layout)} as solutions[0], got "
                             f"{(m.horizon, m.discount, m.reward_layout)}")
        if m is not m0 and not (torch.equal(m.dense_transitions(), m0.dense_transitions())
                                and torch.equal(m.initial, m0.initial)):
            raise ValueError(f"solutions[{i}]: expected the dynamics and initial distribution of solutions[0]")
    return solutions


def _check_weights(weights, k: int, dtype, device) -> torch.Tensor:
    w = as_tensor("weights", weights, dtype, device)
    if tuple(w.shape) != (k,):
        raise ValueError(f"weights: expected shape ({k},) (one per task), got {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or abs(float(w.sum()) - 1) > 1e-9:
        raise ValueError(f"weights: expected finite non-negative weights summing to 1, got {w.tolist()}; scaling a "
                         f"reward by c changes its soft Q like a temperature alpha / c, so only convex "
                         f"combinations compose")
    return w


def _wsum(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i x_i`` over the leading axis with ``0 * (-inf) = 0``."""
    wb = w.reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(wb > 0, wb * x, torch.zeros_like(x)).sum(0)


def combined_mdp(solutions: Sequence[Solution], weights: ArrayLike) -> TabularMDP:
    """The composed task: the tasks' common MDP with reward and terminal reward ``sum_i w_i r_i``."""
    solutions = _check_solutions(solutions)
    m0 = solutions[0].mdp
    w = _check_weights(weights, len(solutions), m0.dtype, m0.device)
    r = _wsum(w, torch.stack([s.mdp.rewards for s in solutions]))
    rT = _wsum(w, torch.stack([s.mdp.terminal_rewards for s in solutions]))
    return m0.replace(rewards=r, terminal_rewards=rT, reward_layout=m0.reward_layout)


def compose(solutions: Sequence[Solution], weights: ArrayLike) -> Composition:
    r"""Compose the soft Q-functions of several tasks into a policy for ``sum_i w_i r_i``.

    Args:
        solutions: results of :func:`cai.soft_value_iteration` for each task, on MDPs with the
            same dynamics, initial distribution, horizon/discount and reward layout, solved at
            the same temperature with the same action prior (unbatched).
        weights: ``(k,)`` convex weights.

    Returns:
        :class:`Composition`.

    Raises:
        TypeError: if ``solutions`` are not soft value iteration results.
        ValueError: for mismatched tasks or weights that are not convex.
    """
    solutions = _check_solutions(solutions)
    mdp_c = combined_mdp(solutions, weights)
    w = _check_weights(weights, len(solutions), mdp_c.dtype, mdp_c.device)
    ref = solutions[0]
    a, log_prior = ref.alpha, ref.log_prior
    Qs = torch.stack([s.Q for s in solutions])            # (k, [T,] S, A)
    Vs = torch.stack([s.V for s in solutions])            # (k, [T+1,] S)
    Q = _wsum(w, Qs)
    V_mix = _wsum(w, Vs)
    V_sig, log_pi = soft_max(Q, a, log_prior)
    finite = mdp_c.horizon is not None
    if finite:
        V_sig = torch.cat([V_sig, mdp_c.terminal_rewards.unsqueeze(0)], 0)
    delta = (V_mix - V_sig).clamp_min(0.0)                # >= 0 by Hölder; clamp rounding only
    allowed = torch.isfinite(Q)
    if log_prior is not None:
        allowed = allowed & torch.isfinite(log_prior)
    neg_inf = torch.full_like(Q, -float("inf"))
    zero = torch.zeros((), dtype=Q.dtype, device=Q.device)
    mdp0 = mdp_c.replace(rewards=torch.zeros(mdp_c.n_states, mdp_c.n_actions, dtype=Q.dtype, device=Q.device),
                         terminal_rewards=torch.zeros_like(mdp_c.initial), reward_layout="sa")

    def step(t):
        return (delta[t], allowed[t], log_pi[t]) if finite else (delta, allowed, log_pi)

    def agg_c(C, t):                                      # V'_t = delta_t + max_{allowed a} C_t
        d, ok, _ = step(t)
        return d + hard_max(torch.where(ok, C, neg_inf[0] if finite else neg_inf))[0], None

    def agg_d(D, t):                                      # V'_t = delta_t + E_{pi_Sigma} D_t
        d, _, lp = step(t)
        return d + policy_expectation(D, lp, zero, None), lp

    rec_c = backward(mdp0, zero, EXPECTATION, agg_c)
    rec_d = backward(mdp0, zero, EXPECTATION, agg_d)
    C = torch.stack(rec_c.Q, 0) if finite else rec_c.Q[0]
    D = torch.stack(rec_d.Q, 0) if finite else rec_d.Q[0]
    C0, D0, lp0 = (C[0], D[0], log_pi[0]) if finite else (C, D, log_pi)
    ok0 = allowed[0] if finite else allowed
    value_gap_bound = torch.where(ok0, C0, torch.full_like(C0, -float("inf"))).amax(-1)
    value_gap = policy_expectation(D0, lp0, zero, None)
    return Composition(Q, V_sig, torch.exp(log_pi), log_pi, delta, C, D, value_gap_bound, value_gap, mdp_c, w)
