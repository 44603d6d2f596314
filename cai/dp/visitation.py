r"""Expected visitation of a fixed policy under the MDP's own (true) dynamics.

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

:func:`policy_marginals` returns the per-step state and state-action marginals (batched);
:func:`policy_visitation` the state-action marginals, or the discounted occupancy of a
stationary MDP.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from cai.mdp.checks import as_tensor, check_initial, check_policy, check_positive_int, check_tol
from cai.mdp.tabular import TabularMDP
from cai.ops.logspace import matmul, transpose_csr
from cai.ops.recursion import ConvergenceWarning

__all__ = ["policy_visitation", "policy_marginals", "PolicyMarginals"]


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


def policy_marginals(mdp: TabularMDP, policy, initial=None) -> PolicyMarginals:
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


def policy_visitation(mdp: TabularMDP, policy, initial=None, *, tol: float = 1e-12,
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
        Finite horizon: ``(T, S, A)`` per-step marginals ``d_t(s, a) = p(s_t = s, a_t = a)``
        (``.sum(0)`` gives expected visitation counts). Stationary: ``(S, A)`` discounted
        occupancy ``sum_t gamma^t p(s_t = s, a_t = a)``, which sums to ``1 / (1 - gamma)``.

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
        return policy_marginals(mdp, p, initial).state_action
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
