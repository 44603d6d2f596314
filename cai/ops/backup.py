r"""The soft Bellman backup, written once, and the semirings over actions.

A backup has two halves:

* over successor states ``s'`` (:func:`q_backup`), either the *expectation* of variational
  inference / soft value iteration, ``Q = r + gamma * sum_s' P V``, or the *log-expectation* of
  exact inference, ``Q = r + alpha * log(gamma * sum_s' P exp(V / alpha) + (1 - gamma))``;
* over actions (the aggregators), the log semiring ``V = alpha log sum_a rho exp(Q / alpha)``
  (soft), the max semiring ``V = max_a Q`` (hard), or the expectation under a fixed policy with
  its KL/entropy term (policy evaluation).

Exact messages and soft value iteration differ only in the first half's ``mode``.

Shapes: ``V`` is ``(*batch, S)``, ``Q`` and policies ``(*batch, S, A)``, ``alpha`` broadcasts
against ``batch`` and is passed as a tensor of shape ``batch`` (or ``()``).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Tuple, Union

import torch

from cai.ops.logspace import log_matmul_exp, logsumexp, matmul, needs_grad

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["EXACT", "EXPECTED", "q_backup", "soft_max", "hard_max", "policy_expectation"]

EXACT = "exact"
EXPECTED = "expected"


def _flat_cols(x: torch.Tensor, n: int) -> Tuple[torch.Tensor, torch.Size]:
    """``(*b, n)`` -> ``(n, B)`` columns and the batch shape ``b``."""
    b = x.shape[:-1]
    return x.reshape(-1, n).t(), b


def q_backup(
    mdp: TabularMDP,
    t: Optional[int],
    v_next: torch.Tensor,
    alpha: torch.Tensor,
    mode: str,
    with_live: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""One backup over successor states: ``Q_t`` from ``V_{t+1}``.

    ``mode="expected"`` (soft value iteration, variational inference)::

        Q_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V_{t+1}(s')

    ``mode="exact"`` (backward messages, ``Q = alpha log beta_t(s, a)``)::

        Q_t(s,a) = r_t(s,a) + alpha * log(gamma * sum_s' P(s'|s,a) exp(V_{t+1}(s') / alpha) + 1 - gamma)

    With ``r(s,a,s')`` rewards the reward enters inside the sum over ``s'`` (inside the
    log for ``exact``, inside the expectation for ``expected``), and death happens after it
    is earned.

    Args:
        mdp: a :class:`~cai.TabularMDP`.
        t: decision index (used by time-varying rewards); ``None`` for stationary MDPs.
        v_next: ``(*batch, S)``.
        alpha: temperature broadcastable to ``batch``.
        mode: ``"exact"`` or ``"expected"``.
        with_live: also return ``Q`` without the death term ``1 - gamma`` (``exact`` only; the
            part that is linear in ``exp(V / alpha)``, used to bound the spectral radius).

    Returns:
        ``Q_t`` of shape ``(*batch, S, A)`` (and ``Q_live`` when ``with_live``).
    """
    S, A = mdp.n_states, mdp.n_actions
    gamma = mdp.gamma
    r = mdp.reward_at(t)
    a = alpha.unsqueeze(-1)                                    # (*b, 1) against (*b, S)
    if mdp.reward_layout == "sas":
        P = mdp.transitions                                    # (S, A, S) dense
        a3 = a.unsqueeze(-1)                                   # (*b, 1, 1)
        vn = v_next.unsqueeze(-2).unsqueeze(-2)                # (*b, 1, 1, S)
        if mode == EXPECTED:
            reach = P > 0
            terms = torch.where(reach, P * (r + gamma * vn), torch.zeros((), dtype=P.dtype, device=P.device))
            return terms.sum(-1)
        logP = torch.log(P)
        base = logP + div_keep_neginf(r, a3.unsqueeze(-1))     # (*b, S, A, S)
        live = logsumexp(base + vn / a3.unsqueeze(-1) + math.log(gamma), -1)
        if gamma < 1:
            tail = torch.logaddexp(vn / a3.unsqueeze(-1) + math.log(gamma),
                                   torch.full_like(vn, math.log1p(-gamma)))
            Q = mul_keep_neginf(logsumexp(base + tail, -1), a3)
        else:
            Q = mul_keep_neginf(live, a3)
        return (Q, mul_keep_neginf(live, a3)) if with_live else Q

    PM = mdp.transition_matrix                                 # (S*A, S)
    # without autograd the freshly computed (*b, S, A) tensor is updated in place (no temporaries:
    # at scale each one costs a pass over memory and fresh pages); the arithmetic is unchanged
    inplace = not with_live and not needs_grad(PM, r, v_next, alpha)
    if mode == EXPECTED:
        cols, b = _flat_cols(v_next, S)
        ev = matmul(PM, cols).t().reshape(*b, S, A)
        if inplace and _owns_broadcast(ev, r):
            if gamma != 1:                                     # gamma * ev with gamma = 1 is ev
                ev.mul_(gamma)
            return ev.add_(r)
        return r + gamma * ev
    if mode != EXACT:
        raise ValueError(f"mode: expected 'exact' or 'expected', got {mode!r}")
    succ, L = exact_successor(mdp, v_next, alpha)
    a2 = a.unsqueeze(-1)                                       # (*b, 1, 1)
    if inplace and _owns_broadcast(succ, r, a2):
        return succ.mul_(a2).add_(r)
    Q = r + a2 * succ
    if with_live:
        return Q, r + a2 * (L + math.log(gamma))
    return Q


def exact_successor(mdp, v_next: torch.Tensor, alpha: torch.Tensor):
    r"""The successor part of the exact backup, in nats, for rewards that do not depend on ``s'``.

    ::

        L(s,a)    = log sum_s' P(s'|s,a) exp(V_{t+1}(s') / alpha)
        succ(s,a) = log(gamma * exp(L(s,a)) + 1 - gamma)          (= L without a discount)

    so that ``Q = r + alpha * succ``. The posterior dynamics divide by ``exp(succ)``; computing it
    here, rather than as ``(Q - r) / alpha``, avoids cancellation when ``|r| >> alpha * |succ|``.

    Returns:
        ``(succ, L)``, each ``(*batch, S, A)``.
    """
    S, A = mdp.n_states, mdp.n_actions
    cols, b = _flat_cols(v_next / alpha.unsqueeze(-1), S)
    L = log_matmul_exp(mdp.transition_matrix, cols, lambda: mdp.min_positive_probability).t().reshape(*b, S, A)
    if mdp.gamma < 1:
        return torch.logaddexp(L + math.log(mdp.gamma), torch.full_like(L, math.log1p(-mdp.gamma))), L
    return L, L


def div_keep_neginf(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x / a`` where ``-inf`` entries of ``x`` stay ``-inf`` with zero gradient to ``a`` (not NaN)."""
    if not bool(torch.isneginf(x).any()):
        return x / a
    neg = torch.isneginf(x)
    return torch.where(neg, x, torch.where(neg, torch.zeros_like(x), x) / a)


def mul_keep_neginf(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x * a`` (``a > 0``) where ``-inf`` entries of ``x`` stay ``-inf`` with zero gradient to ``a``."""
    if not bool(torch.isneginf(x).any()):
        return x * a
    neg = torch.isneginf(x)
    return torch.where(neg, x, torch.where(neg, torch.zeros_like(x), x) * a)


def _owns_broadcast(out: torch.Tensor, *others: torch.Tensor) -> bool:
    """Whether ``out`` already has the broadcast shape of ``out`` and ``others`` (and owns its memory).

    Plain Python on the shapes: ``torch.broadcast_shapes`` costs ~0.1 ms a call, as much as a
    whole small backup.
    """
    if not out.is_contiguous():
        return False
    for o in others:
        if o.dim() > out.dim():
            return False
        for n_out, n_o in zip(reversed(out.shape), reversed(o.shape)):
            if n_o != n_out and n_o != 1:
                return False
    return True


def soft_max(Q: torch.Tensor, alpha: torch.Tensor, log_prior: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The log semiring over actions.

    ``V(s) = alpha * log sum_a rho(a|s) exp(Q(s,a) / alpha)`` and
    ``pi(a|s) = rho(a|s) exp((Q(s,a) - V(s)) / alpha)``.

    Args:
        Q: ``(*batch, S, A)``; ``-inf`` for forbidden actions.
        alpha: broadcastable to ``batch``.
        log_prior: ``log rho`` of shape ``(S, A)``, or ``None`` for the counting measure.

    Returns:
        ``(V, log_policy)`` of shapes ``(*batch, S)`` and ``(*batch, S, A)``.
    """
    a = alpha.unsqueeze(-1).unsqueeze(-1)
    logits = div_keep_neginf(Q, a) if needs_grad(Q, a) else Q / a
    if log_prior is not None:
        logits = logits + log_prior
    lse = logsumexp(logits, -1)
    # logits is ours: without autograd, subtract in place instead of allocating log_pi
    log_pi = logits - lse.unsqueeze(-1) if needs_grad(logits) else logits.sub_(lse.unsqueeze(-1))
    return a.squeeze(-1) * lse, log_pi


def hard_max(Q: torch.Tensor, log_prior: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The max semiring over actions: ``V = max_a Q`` and the greedy (first arg-max) policy.

    Actions with zero prior probability are excluded. Returns ``(V, log_policy)``.
    """
    if log_prior is not None:
        Q = torch.where(torch.isneginf(log_prior), torch.full_like(Q, -float("inf")), Q)
    # amax + argmax rather than Tensor.max(dim): the latter is ~100x slower on small CPU tensors
    V, idx = Q.amax(-1), Q.argmax(-1)
    pi = torch.nn.functional.one_hot(idx, Q.shape[-1]).to(Q.dtype)
    return V, torch.log(pi)


def policy_expectation(Q: torch.Tensor, log_policy: torch.Tensor, alpha: torch.Tensor,
                       log_prior: Optional[torch.Tensor]) -> torch.Tensor:
    r"""Expectation over actions under a fixed policy, with the KL (entropy) term.

    ``V(s) = sum_a pi(a|s) [Q(s,a) - alpha * log(pi(a|s) / rho(a|s))]``, with ``0 * (...) = 0``
    where ``pi = 0`` (so forbidden actions the policy never takes cost nothing).

    Returns:
        ``V`` of shape ``(*batch, S)``.
    """
    a = alpha.unsqueeze(-1).unsqueeze(-1)
    kl = log_policy if log_prior is None else log_policy - log_prior
    pi = torch.exp(log_policy)
    on = pi > 0
    term = torch.where(on, Q - a * torch.where(on, kl, torch.zeros_like(kl)), torch.zeros_like(Q))
    return (pi * term).sum(-1)


def __getattr__(name: str):
    if name == "SoftValueStep":                     # moved to its own module in 0.2
        import warnings

        from cai.ops.values_step import SoftValueStep
        warnings.warn("cai.ops.backup.SoftValueStep moved to cai.ops.values_step.SoftValueStep", DeprecationWarning,
                      stacklevel=2)
        return SoftValueStep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
