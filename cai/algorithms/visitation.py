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

This helper is generic (it is not IRL-specific) and belongs in the core next to
:func:`cai.forward_messages`; it lives here until it moves.
"""
from __future__ import annotations

import warnings

import torch

from .._checks import as_tensor, check_policy
from ..mdp.tabular import ROW_SUM_TOL, TabularMDP
from ..ops.logspace import matmul, transpose_csr
from ..ops.recursion import ConvergenceWarning

__all__ = ["policy_visitation"]


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
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    if T is not None and p.dim() == 3:
        p = check_policy(p, (T, S, A), mdp.dtype, mdp.device)
    elif p.dim() == 2:
        p = check_policy(p, (S, A), mdp.dtype, mdp.device)
    else:
        want = f"(T, S, A) = ({T}, {S}, {A}) or (S, A)" if T is not None else f"(S, A) = ({S}, {A})"
        raise ValueError(f"policy: expected shape {want}, got {tuple(p.shape)}")
    if initial is None:
        mu = mdp.initial
    else:
        mu = as_tensor("initial", initial, mdp.dtype, mdp.device)
        if tuple(mu.shape) != (S,) or bool((mu < 0).any()) or abs(float(mu.sum()) - 1) > ROW_SUM_TOL:
            raise ValueError(f"initial: expected a distribution of shape ({S},), got {tuple(mu.shape)} "
                             f"summing to {float(mu.sum()):.6g}")
    PT = transpose_csr(mdp.transition_matrix)              # (S, S*A)
    g = mdp.gamma

    def push(d):                                           # d (S, A) -> mu' (S,)
        return g * matmul(PT, d.reshape(S * A, 1)).squeeze(-1)

    if T is not None:
        out = []
        for t in range(T):
            pt = p[t] if p.dim() == 3 else p
            d = mu.unsqueeze(-1) * pt
            out.append(d)
            mu = push(d)
        return torch.stack(out, 0)

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
