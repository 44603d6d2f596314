r"""Marginals and expected visitation of a fixed policy under the MDP's own (true) dynamics.

Convention, package-wide: *marginals* are per step, ``p(s_t = s)`` of shape ``(T+1, S)`` and
``p(s_t = s, a_t = a)`` of shape ``(T, S, A)``; *visitation* is summed over time, the expected
counts ``sum_t p(s_t, a_t)`` of shape ``(S, A)`` (with a discount, of being alive: the discounted
occupancy). :class:`PolicyMarginals` and :class:`cai.exact.messages.ForwardMessages` follow it
(``.state``, ``.state_action`` per step, ``.visitation`` summed).

This is the forward pass that maximum causal entropy IRL needs: soft value iteration gives a
policy, and the expected feature counts come from pushing ``p0`` forward through that policy
and the true transitions (not through the posterior dynamics of exact inference, which
:func:`cai.forward_messages` uses)::

    mu_0(s)         = p0(s)
    d_t(s, a)       = mu_t(s) pi_t(a|s)
    mu_{t+1}(s')    = gamma * sum_{s,a} P(s'|s,a) d_t(s, a)

With a discount ``gamma < 1`` these are the marginals of being alive (death is the absorbing
state worth 0), so ``sum_t d_t`` are discounted visitation counts. For a stationary MDP the
discounted occupancy ``d = sum_t d_t`` is summed to a tolerance.

:func:`policy_marginals` returns the per-step state and state-action marginals (batched), the
one home of on-policy marginals; :func:`policy_visitation` the discounted occupancy of a
stationary MDP (for a finite horizon it still returns the per-step marginals, deprecated: the
name says summed; use ``policy_marginals(...).state_action`` or ``.visitation``).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Optional

import torch

from cai.mdp.checks import as_tensor, check_initial, check_policy, check_positive_int, check_tol
from cai.mdp.tabular import TabularMDP
from cai.ops.logspace import matmul, transpose_csr
from cai.ops.recursion import ConvergenceWarning
from cai.typing import ArrayLike

__all__ = ["policy_visitation", "policy_marginals", "PolicyMarginals", "expected_rewards", "expected_return"]


class PolicyMarginals(NamedTuple):
    """Marginals of a fixed policy under the true dynamics (alive marginals with a discount).

    Attributes:
        state: ``(*b, T+1, S)`` ``p(s_t = s)``.
        state_action: ``(*b, T, S, A)`` ``p(s_t = s, a_t = a)``.
    """

    state: torch.Tensor
    state_action: torch.Tensor

    @property
    def visitation(self) -> torch.Tensor:
        """Expected state-action visitation counts ``sum_t p(s_t, a_t)``, ``(*b, S, A)``."""
        return self.state_action.sum(-3)


def policy_marginals(mdp: TabularMDP, policy: ArrayLike, initial: Optional[ArrayLike] = None) -> PolicyMarginals:
    """Per-step marginals of a (batch of) policies under the true dynamics of a finite-horizon MDP.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP`.
        policy: ``(*b, T, S, A)``, or ``(S, A)`` used at every step; differentiable.
        initial: ``(S,)`` start distribution; default ``mdp.initial``.

    Returns:
        :class:`PolicyMarginals` with ``state (*b, T+1, S)`` and ``state_action (*b, T, S, A)``.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"policy_marginals: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    mdp.check_unchanged("policy_marginals")
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    if T is None:
        raise ValueError("policy_marginals: mdp: expected a finite horizon, got horizon=None "
                         "(use policy_visitation for the stationary occupancy)")
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    if p.dim() == 2:
        p = check_policy(p, (S, A), mdp.dtype, mdp.device).expand(T, S, A)
    else:
        p = check_policy(p, (T, S, A), mdp.dtype, mdp.device)
    b = p.shape[:-3]
    mu = check_initial(mdp, initial).expand(*b, S)
    PT = transpose_csr(mdp.transition_matrix)              # (S, S*A)
    states, joints = [mu], []
    for t in range(T):
        d = mu.unsqueeze(-1) * p[..., t, :, :]              # (*b, S, A)
        joints.append(d)
        mu = mdp.gamma * matmul(PT, d.reshape(-1, S * A).t()).t().reshape(*b, S)
        states.append(mu)
    return PolicyMarginals(torch.stack(states, -2), torch.stack(joints, -3))


def policy_visitation(mdp: TabularMDP, policy: ArrayLike, initial: Optional[ArrayLike] = None, *, tol: float = 1e-12,
                      max_iter: int = 100_000) -> torch.Tensor:
    r"""State-action visitation of ``policy`` under the true dynamics of ``mdp``.

    Args:
        mdp: a :class:`~cai.TabularMDP` (finite horizon or stationary).
        policy: ``(T, S, A)`` time-indexed or ``(S, A)`` stationary (used at every step);
            differentiable (the result is linear in each ``pi_t``).
        initial: ``(S,)`` start distribution; default ``mdp.initial``.
        tol: stationary MDPs stop summing when the newest term's mass is below ``tol`` times
            the accumulated mass.
        max_iter: stationary iteration limit (then a :class:`~cai.ConvergenceWarning`).

    Returns:
        Stationary: ``(S, A)`` discounted occupancy ``sum_t gamma^t p(s_t = s, a_t = a)``, which
        sums to ``1 / (1 - gamma)``. Finite horizon (deprecated, with a ``DeprecationWarning``;
        in 0.3 this returns the summed ``(S, A)`` counts): ``(T, S, A)`` per-step marginals
        ``p(s_t = s, a_t = a)``, which are ``policy_marginals(mdp, policy, initial).state_action``
        (``.visitation`` gives the counts).

    Raises:
        TypeError: if ``mdp`` is not a :class:`~cai.TabularMDP`.
        ValueError: for a policy or initial distribution of the wrong shape or not normalised.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"policy_visitation: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    mdp.check_unchanged("policy_visitation")
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    if T is not None:
        if p.dim() not in (2, 3):
            raise ValueError(f"policy: expected shape (T, S, A) = ({T}, {S}, {A}) or (S, A), got {tuple(p.shape)}")
        per_step = policy_marginals(mdp, p, initial).state_action
        warnings.warn("policy_visitation of a finite-horizon MDP returns per-step marginals (deprecated; in cai 0.3 "
                      "it returns the summed (S, A) counts): use policy_marginals(mdp, policy).state_action for the "
                      "marginals, .visitation for the counts", DeprecationWarning, stacklevel=2)
        return per_step
    if p.dim() != 2:
        raise ValueError(f"policy: expected shape (S, A) = ({S}, {A}), got {tuple(p.shape)}")
    p = check_policy(p, (S, A), mdp.dtype, mdp.device)
    mu = check_initial(mdp, initial)
    tol = check_tol("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter, "an integer >= 1")
    PT = transpose_csr(mdp.transition_matrix)              # (S, S*A)

    def push(d):                                           # d (S, A) -> mu' (S,)
        return mdp.gamma * matmul(PT, d.reshape(S * A, 1)).squeeze(-1)

    total = torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device)
    for _ in range(max_iter):
        d = mu.unsqueeze(-1) * p
        total = total + d
        if float(d.detach().sum()) <= tol * float(total.detach().sum()):
            break
        mu = push(d)
    else:
        warnings.warn(f"policy_visitation: occupancy did not converge in max_iter={max_iter} steps",
                      ConvergenceWarning, stacklevel=2)
    return total


def expected_rewards(mdp: TabularMDP) -> torch.Tensor:
    """``E[r_t(s, a, s')]`` over ``s'``, as ``(*batch, T, S, A)`` for a finite horizon ``T``.

    Forbidden actions (reward ``-inf``) get 0: a policy never takes them.

    Raises:
        ValueError: if the MDP has no finite horizon.
    """
    if mdp.horizon is None:
        raise ValueError("expected_rewards: mdp: expected a finite horizon, got horizon=None")
    T = mdp.horizon
    if mdp.reward_layout == "sas":
        P = mdp.dense_transitions()
        r = torch.where(P > 0, P * mdp.rewards, torch.zeros_like(P)).sum(-1)
    else:
        r = mdp.rewards
    r = torch.where(torch.isneginf(r), torch.zeros_like(r), r)
    if mdp.reward_layout == "tsa":
        return r
    return r.unsqueeze(-3).expand(*r.shape[:-2], T, *r.shape[-2:])


def expected_return(mdp: TabularMDP, policy: ArrayLike, rewards: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""Expected (discounted) return of a policy under the MDP's dynamics, by exact marginals.

    ::

        E[ sum_{t<T} gamma^t r_t(s_t, a_t) + gamma^T r_T(s_T) ] = sum_t sum_{s,a} d_t(s,a) r_t(s,a) + sum_s mu_T(s) r_T(s)

    with the marginals of :func:`policy_marginals` (no entropy term).

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP`.
        policy: ``(*b, T, S, A)`` or ``(S, A)``.
        rewards: optional ``(T, S, A)`` or ``(S, A)`` rewards to use instead of the MDP's (``+inf``
            or ``-inf`` allowed where the policy puts no mass; they contribute 0).

    Returns:
        ``(*b,)`` expected returns.

    Raises:
        ValueError: for a stationary MDP, a bad policy or rewards of the wrong shape.
    """
    m = policy_marginals(mdp, policy)
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    if rewards is None:
        r = expected_rewards(mdp)
    else:
        r = as_tensor("rewards", rewards, mdp.dtype, mdp.device)
        if r.shape not in ((T, S, A), (S, A)) and r.shape[-3:] != (T, S, A):
            raise ValueError(f"rewards: expected shape (T, S, A) = ({T}, {S}, {A}) or (S, A), got {tuple(r.shape)}")
        if bool(torch.isnan(r).any()):
            raise ValueError("rewards: expected no NaN entries")
    d = m.state_action
    if bool((torch.isinf(r) & (d > 0)).any()):
        raise ValueError("rewards: infinite where the policy goes (expected finite rewards on its support)")
    terms = torch.where(d > 0, d * torch.where(torch.isinf(r), torch.zeros_like(r), r), torch.zeros_like(d))
    return terms.sum((-1, -2, -3)) + (m.state[..., -1, :] * mdp.terminal_rewards).sum(-1)
