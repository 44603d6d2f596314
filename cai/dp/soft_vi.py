"""Direct dynamic programming: soft and hard value iteration, soft policy evaluation, the ELBO.

These are the references exact inference is checked against. They share the backup with
:mod:`cai.exact.messages` (:func:`cai.ops.backup.q_backup` with ``mode=EXPECTATION``).
"""
from __future__ import annotations

from typing import Optional

import torch

from cai.mdp.checks import check_policy
from cai.mdp.tabular import TabularMDP, check_model
from cai.methods import POLICY_EVALUATION, SOFT_VI, VI
from cai.ops.backup import EXPECTATION, hard_max, policy_expectation, q_backup, soft_max
from cai.ops.recursion import backward, check_keep
from cai.ops.values_step import SoftValueStep
from cai.solution import Solution
from cai.typing import Alpha, ArrayLike

__all__ = ["soft_value_iteration", "value_iteration", "soft_policy_evaluation", "elbo"]


def soft_value_iteration(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, keep: str = "all",
                         tol: float = 1e-10, max_iter: int = 10_000) -> Solution:
    r"""Soft value iteration: the optimum of variational trajectory inference with fixed dynamics.

    ::

        Q_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V_{t+1}(s')
        V_t(s)   = alpha * log sum_a rho(a|s) exp(Q_t(s,a) / alpha)
        pi_t     = rho * exp((Q_t - V_t) / alpha)

    Args:
        mdp: :class:`~cai.TabularMDP` (finite horizon, or stationary with a discount < 1).
        alpha: temperature > 0; a scalar or a tensor of shape ``batch`` (broadcast against the
            reward batch: one call solves a sweep).
        action_prior: ``None`` (counting measure: entropy-regularised objective) or an
            ``(S, A)`` normalised prior (KL-regularised objective).
        keep: ``"all"``, ``"values"`` or ``"first"``: which Q/policy steps to store (the rest is
            recomputed lazily from V); ``"V0"``: only ``V_0`` (with ``.value`` and ``.max_elbo``), in
            memory independent of the horizon (:data:`cai.ops.recursion.KEEP`).
        tol, max_iter: stationary iteration control (relative tolerance on V).

    Returns:
        :class:`~cai.Solution` with ``.Q (*b,T,S,A)``, ``.V (*b,T+1,S)``, ``.policy (*b,T,S,A)``,
        ``.max_elbo (*b,)``.

    References:
        Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference", §2.4.
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "soft_value_iteration")
    _check_keep(keep)
    agg = lambda Q, t: soft_max(Q, a, log_prior)  # noqa: E731
    rec = backward(mdp, a, EXPECTATION, agg, keep=keep, tol=tol, max_iter=max_iter,
                   step=SoftValueStep.for_solver(mdp, a, EXPECTATION, log_prior))
    return Solution(rec, mdp, a, EXPECTATION, agg, SOFT_VI, log_prior)


def value_iteration(mdp: TabularMDP, *, keep: str = "all", tol: float = 1e-10, max_iter: int = 10_000) -> Solution:
    """Hard (ordinary) value iteration: the ``alpha -> 0`` limit of soft value iteration.

    ``Q_t = r_t + gamma P V_{t+1}``, ``V_t = max_a Q_t``; the policy is greedy (first arg-max).
    Same fields as :func:`soft_value_iteration` (``alpha`` is reported as 0).
    """
    a, _ = check_model(mdp, 1.0, None, "value_iteration")
    _check_keep(keep)
    agg = lambda Q, t: hard_max(Q)  # noqa: E731
    rec = backward(mdp, a, EXPECTATION, agg, keep=keep, tol=tol, max_iter=max_iter, step=_hard_values_step(mdp, a))
    return Solution(rec, mdp, torch.zeros_like(a), EXPECTATION, agg, VI, None)


def _hard_values_step(mdp: TabularMDP, a: torch.Tensor):
    """The values-only hard backup ``V_t = max_a (r + gamma P V_{t+1})``: ``hard_max(q_backup(.))[0]``
    without the greedy policy (its arg-max, one-hot and log are a pass each over ``(S, A)``).
    Plain torch, so it runs on any device; :func:`cai.ops.recursion.backward` uses it where no
    ``Q`` is stored."""
    def step(v_next: torch.Tensor, t: Optional[int], with_live: bool = False) -> torch.Tensor:
        return q_backup(mdp, t, v_next, a, EXPECTATION).amax(-1)
    step.full = lambda v_next, t, out=None: None         # steps that store Q run the general backup
    return step


def soft_policy_evaluation(mdp: TabularMDP, policy: ArrayLike, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, tol: float = 1e-10,
                           max_iter: int = 10_000) -> Solution:
    r"""Soft value of a fixed policy.

    ::

        Q^pi_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V^pi_{t+1}(s')
        V^pi_t(s)   = sum_a pi_t(a|s) [Q^pi_t(s,a) - alpha * log(pi_t(a|s) / rho(a|s))]

    Args:
        policy: ``(*b, T, S, A)`` for a finite horizon (a stationary ``(S, A)`` policy is
            broadcast over time), ``(*b, S, A)`` for stationary MDPs.

    Returns:
        :class:`~cai.Solution` with the policy's ``Q``, ``V`` and the policy itself.
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "soft_policy_evaluation")
    return _evaluate(mdp, _policy_log(mdp, policy), a, log_prior, alpha, tol, max_iter)


def _evaluate(mdp, log_pi: torch.Tensor, a: torch.Tensor, log_prior, alpha, tol: float, max_iter: int,
              keep: str = "all") -> Solution:
    """Soft policy evaluation of a validated log policy (``(*b, T, S, A)`` or ``(*b, S, A)``)."""
    # a batch of policies broadcasts against the rewards' and alpha's batches
    pol_batch = log_pi.shape[:-3] if mdp.horizon is not None else log_pi.shape[:-2]
    try:
        torch.broadcast_shapes(a.shape, mdp.batch_shape, mdp.terminal_rewards.shape[:-1], pol_batch)
    except RuntimeError:
        raise ValueError(
            f"policy: expected a batch shape that broadcasts against the rewards' {tuple(mdp.batch_shape)} "
            f"and alpha's {tuple(torch.as_tensor(alpha).shape)}, got {tuple(pol_batch)}"
        ) from None
    if mdp.horizon is not None:
        agg = lambda Q, t: (policy_expectation(Q, log_pi[..., t, :, :], a, log_prior),  # noqa: E731
                            log_pi[..., t, :, :])
    else:
        agg = lambda Q, t: (policy_expectation(Q, log_pi, a, log_prior), log_pi)  # noqa: E731
    rec = backward(mdp, a, EXPECTATION, agg, keep=keep, tol=tol, max_iter=max_iter, batch_shape=pol_batch)
    return Solution(rec, mdp, a, EXPECTATION, agg, POLICY_EVALUATION, log_prior)


def elbo(mdp: TabularMDP, policy: Optional[ArrayLike] = None, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *,
         log_policy: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""The ELBO of a policy: of the trajectory distribution ``q = p0 * prod P * prod pi_t``.

    ::

        ELBO(pi) = (1/alpha) E_q[ sum_t r_t + r_T - alpha log(pi_t / rho) ]
                 = (1/alpha) sum_s p0(s) V^pi_0(s)        <=  log p(O_{0:T-1})

    computed in closed form by backward soft policy evaluation. This is the one home of the
    quantity: :func:`cai.ppl.svi.guide_elbo` evaluates the same number forward (through the
    policy's state marginals) for Pyro's SVI and is tested equal to it. Maximised by the soft
    value iteration policy, where it equals ``.max_elbo``. Differentiable in ``policy`` (or
    ``log_policy``), ``alpha`` and the MDP's rewards.

    Args:
        mdp: a :class:`~cai.TabularMDP`.
        policy: ``(*b, T, S, A)`` (a stationary ``(S, A)`` policy is used at every step), or
            ``(*b, S, A)`` for stationary MDPs.
        alpha: temperature > 0, scalar or batch.
        action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        log_policy: instead of ``policy``, its log (same shapes, ``-inf`` for actions never
            taken): gradients then stay finite where the policy is 0 (masked logits).

    Returns:
        ``(*b,)``, ``-inf`` if the policy takes a forbidden action.

    Raises:
        ValueError: if neither or both of ``policy`` and ``log_policy`` are given, or for a
            policy of the wrong shape or not normalised.
    """
    if (policy is None) == (log_policy is None):
        raise ValueError("policy/log_policy: expected exactly one of them, got "
                         f"{'both' if policy is not None else 'neither'}")
    a, log_prior = check_model(mdp, alpha, action_prior, "elbo")
    log_pi = _policy_log(mdp, policy) if policy is not None else _checked_log_policy(mdp, log_policy)
    sol = _evaluate(mdp, log_pi, a, log_prior, alpha, 1e-10, 10_000, keep="values")   # only V_0 is needed
    return sol.value / sol.alpha


def _checked_log_policy(mdp, log_policy) -> torch.Tensor:
    """Validate a log policy for ``mdp`` (its exponential must be a policy); ``(*b, T, S, A)`` or ``(*b, S, A)``."""
    from cai.mdp.checks import as_tensor

    lp = as_tensor("log_policy", log_policy, mdp.dtype, mdp.device)
    S, A = mdp.n_states, mdp.n_actions
    shape = (mdp.horizon, S, A) if mdp.horizon is not None and lp.dim() != 2 else (S, A)
    check_policy(torch.exp(lp.detach()), shape, mdp.dtype, mdp.device, "log_policy")
    if mdp.horizon is not None and lp.dim() == 2:
        lp = lp.unsqueeze(-3).expand(mdp.horizon, S, A)
    return lp


def _policy_log(mdp, policy) -> torch.Tensor:
    """Validate a policy for ``mdp`` and return its log, ``(*b, T, S, A)`` or ``(*b, S, A)``."""
    from cai.mdp.checks import as_tensor

    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    S, A = mdp.n_states, mdp.n_actions
    if mdp.horizon is not None and p.dim() != 2:
        p = check_policy(p, (mdp.horizon, S, A), mdp.dtype, mdp.device)
    else:
        p = check_policy(p, (S, A), mdp.dtype, mdp.device)
        if mdp.horizon is not None:  # a stationary policy used at every step
            p = p.unsqueeze(-3).expand(mdp.horizon, S, A)
    # log with a zero (not NaN) gradient where the policy is exactly 0
    pos = p > 0
    return torch.where(pos, torch.log(torch.where(pos, p, torch.ones_like(p))), torch.full_like(p, -float("inf")))


def _check_keep(keep):
    check_keep(keep)
