r"""The soft Bellman backup, written once, and the semirings over actions.

A backup has two halves:

* over successor states ``s'`` (:func:`q_backup`), either the *expectation* of variational
  inference / soft value iteration, ``Q = r + gamma * sum_s' P V``, or the *log-expectation* of
  exact inference, ``Q = r + alpha * log(gamma * sum_s' P exp(V / alpha) + (1 - gamma))``;
* over actions (the aggregators), the log semiring ``V = alpha log sum_a rho exp(Q / alpha)``
  (soft), the max semiring ``V = max_a Q`` (hard), or the expectation under a fixed policy with
  its KL/entropy term (policy evaluation).

Exact messages and soft value iteration differ only in the first half's *successor mode*:
:data:`LOG_EXPECTATION` (exact inference) or :data:`EXPECTATION` (soft value iteration, hard value
iteration, policy evaluation). This is a kernel concept, not a method name: the methods and the
mode each runs are listed in :mod:`cai.methods` (``cai.methods.SUCCESSOR``).

Shapes: ``V`` is ``(*batch, S)``, ``Q`` and policies ``(*batch, S, A)``, ``alpha`` broadcasts
against ``batch`` and is passed as a tensor of shape ``batch`` (or ``()``).
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Optional, Tuple, Union

import torch

from cai.ops.logspace import log_matmul_exp, logsumexp, matmul, needs_grad

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["LOG_EXPECTATION", "EXPECTATION", "EXACT", "EXPECTED", "successor_mode", "q_backup", "soft_max",
           "hard_max", "policy_expectation", "action_log_weights", "action_operator"]

#: Successor mode of exact inference: ``Q = r + alpha log E_{s'}[exp(V(s') / alpha)]`` (with death).
LOG_EXPECTATION = "log_expectation"
#: Successor mode of dynamic programming: ``Q = r + gamma E_{s'}[V(s')]``.
EXPECTATION = "expectation"
#: Deprecated names (0.2) of :data:`LOG_EXPECTATION` and :data:`EXPECTATION`; removed in 0.3.
EXACT = LOG_EXPECTATION
EXPECTED = EXPECTATION
#: The spellings of the successor mode before 0.2, still accepted by :func:`successor_mode`.
_LEGACY_MODES = {"exact": LOG_EXPECTATION, "expected": EXPECTATION}


def successor_mode(mode: str) -> str:
    """The successor mode ``mode`` names: :data:`LOG_EXPECTATION` or :data:`EXPECTATION`.

    Args:
        mode: either constant's value, or its pre-0.2 spelling ``"exact"`` / ``"expected"``.

    Returns:
        The constant's value.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(mode, str) and mode in (LOG_EXPECTATION, EXPECTATION):
        return mode
    if isinstance(mode, str) and mode in _LEGACY_MODES:
        return _LEGACY_MODES[mode]
    raise ValueError(f"mode: expected {LOG_EXPECTATION!r} or {EXPECTATION!r} (the successor mode), got {mode!r}")


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

    ``mode=EXPECTATION`` (soft value iteration, variational inference)::

        Q_t(s,a) = r_t(s,a) + gamma * sum_s' P(s'|s,a) V_{t+1}(s')

    ``mode=LOG_EXPECTATION`` (backward messages, ``Q = alpha log beta_t(s, a)``)::

        Q_t(s,a) = r_t(s,a) + alpha * log(gamma * sum_s' P(s'|s,a) exp(V_{t+1}(s') / alpha) + 1 - gamma)

    With ``r(s,a,s')`` rewards the reward enters inside the sum over ``s'`` (inside the
    log for the log-expectation, inside the expectation otherwise), and death happens after it
    is earned.

    Args:
        mdp: a :class:`~cai.TabularMDP`.
        t: decision index (used by time-varying rewards); ``None`` for stationary MDPs.
        v_next: ``(*batch, S)``.
        alpha: temperature broadcastable to ``batch``.
        mode: the successor mode, :data:`LOG_EXPECTATION` or :data:`EXPECTATION` (see
            :func:`successor_mode`).
        with_live: also return ``Q`` without the death term ``1 - gamma`` (log-expectation only; the
            part that is linear in ``exp(V / alpha)``, used to bound the spectral radius).

    Returns:
        ``Q_t`` of shape ``(*batch, S, A)`` (and ``Q_live`` when ``with_live``).

    Raises:
        ValueError: for an unknown ``mode``.
    """
    mode = successor_mode(mode)
    S, A = mdp.n_states, mdp.n_actions
    gamma = mdp.gamma
    r = mdp.reward_at(t)
    a = alpha.unsqueeze(-1)                                    # (*b, 1) against (*b, S)
    if mdp.reward_layout == "sas":
        P = mdp.transitions                                    # (S, A, S) dense
        a3 = a.unsqueeze(-1)                                   # (*b, 1, 1)
        vn = v_next.unsqueeze(-2).unsqueeze(-2)                # (*b, 1, 1, S)
        if mode == EXPECTATION:
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
    if mode == EXPECTATION:
        cols, b = _flat_cols(v_next, S)
        dead = torch.isneginf(cols)
        if bool(dead.any()):
            # V = -inf (a policy that takes a forbidden action): P @ V would meet 0 * (-inf) = NaN
            # where P(s'|s,a) = 0; the expectation is -inf exactly where such an s' is reachable
            reach_dead = matmul(PM, dead.to(cols.dtype)).t().reshape(*b, S, A) > 0
            ev = matmul(PM, torch.where(dead, torch.zeros_like(cols), cols)).t().reshape(*b, S, A)
            ev = torch.where(reach_dead, torch.full_like(ev, -math.inf), ev)
            return r + gamma * ev
        ev = matmul(PM, cols).t().reshape(*b, S, A)
        if inplace and _owns_broadcast(ev, r):
            if gamma != 1:                                     # gamma * ev with gamma = 1 is ev
                ev.mul_(gamma)
            return ev.add_(r)
        return r + gamma * ev
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


def action_log_weights(r: torch.Tensor, alpha: Union[float, torch.Tensor], log_prior: Optional[torch.Tensor], *,
                       per_successor: bool = False, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""``log w = r / alpha + log rho``: the log weight of each action in the exact backup.

    ``exp(Q / alpha) = sum_s' P exp(log w + V / alpha)``-style sums (the fused step, the linear
    system of exact inference) all start from it.

    Args:
        r: rewards ``(*b, S, A)``, or ``(*b, S, A, S)`` with ``per_successor``.
        alpha: temperature, a float or a tensor broadcastable against ``r``.
        log_prior: ``log rho`` ``(S, A)``, or ``None`` for the counting measure.
        per_successor: ``r`` has a successor axis (``r(s,a,s')``).
        out: optional tensor of the broadcast shape, written in place (no autograd).

    Returns:
        Log weights of ``r``'s shape (``-inf`` where ``r`` or the prior is); ``out`` when given.
    """
    if out is not None:
        torch.div(r, alpha, out=out)
        if log_prior is not None:
            out += log_prior.unsqueeze(-1) if per_successor else log_prior
        return out
    logits = r / alpha
    if log_prior is not None:
        logits = logits + (log_prior.unsqueeze(-1) if per_successor else log_prior)
    return logits


def action_operator(weights: torch.Tensor, P: torch.Tensor, *, per_successor: bool = False) -> torch.Tensor:
    r"""The action-marginalised operator of the exact backup, ``M(s, s') = sum_a w(s, a) P(s'|s, a)``.

    With ``w = rho exp(r / alpha)`` (up to a per-state shift) the log-expectation backup is linear
    in ``z = exp(V / alpha)``: ``exp(V_t / alpha) = gamma M z + (1 - gamma) sum_a w``. The fused
    step (:class:`cai.ops.values_step.SoftValueStep`) and the direct linear solve of exact
    inference (:func:`cai.backward_messages` with ``method="linear"``) both build it here.

    Args:
        weights: ``(*b, S, A)`` action weights ``w(s, a) >= 0``; with ``per_successor``,
            ``(*b, S, A, S)`` weights ``w(s, a, s')`` (``r(s,a,s')`` rewards), giving
            ``M(s, s') = sum_a w(s, a, s') P(s'|s, a)``.
        P: transitions, dense ``(S, A, S)``, or a CSR ``(S*A, S)`` matrix (then ``weights`` must be
            an unbatched ``(S, A)`` without ``per_successor``; the result is CSR).

    Returns:
        ``M`` of shape ``(*b, S, S)`` (dense), or an ``(S, S)`` CSR tensor for CSR ``P``.

    Raises:
        ValueError: for CSR ``P`` with batched or per-successor weights.
    """
    if P.layout != torch.strided:
        if per_successor or weights.dim() != 2:
            raise ValueError(f"weights: a CSR P takes unbatched (S, A) weights, got shape {tuple(weights.shape)}"
                             f"{' per successor' if per_successor else ''}")
        return _action_operator_csr(P, weights) if P.device.type == "cpu" else _action_operator_csr_torch(P, weights)
    if per_successor:
        return (weights * P).sum(-2)
    if weights.dim() == 2:
        return torch.bmm(weights.unsqueeze(1), P).squeeze(1)
    return torch.einsum("...sa,sat->...st", weights, P)


def _action_operator_csr_torch(P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """:func:`_action_operator_csr` in torch alone, for CSR tensors off the CPU (SciPy's product
    needs host memory): ``M = R P`` as a CSR-by-CSR product on ``P``'s device."""
    S, A = w.shape
    dev = P.device
    idx = P.crow_indices().dtype
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        R = torch.sparse_csr_tensor(torch.arange(0, S * A + 1, A, device=dev, dtype=idx),
                                    torch.arange(S * A, device=dev, dtype=idx), w.detach().reshape(-1).to(P.dtype),
                                    size=(S, S * A), check_invariants=False)
        return (R @ P).to_sparse_csr()


def _action_operator_csr(P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``M(s, s') = sum_a w(s, a) P(s'|s, a)`` for a CSR ``P`` of shape ``(S*A, S)``: a CSR ``(S, S)``.

    ``M = R P`` with ``R (S, S*A)`` holding ``w(s, a)`` at ``(s, s*A + a)``: one sparse product
    (SciPy's), with sorted, merged column indices.
    """
    import numpy as np
    import scipy.sparse as sp

    S, A = w.shape
    crow, col = P.crow_indices().numpy(), P.col_indices().numpy()
    Ps = sp.csr_matrix((P.values().detach().numpy(), col, crow), shape=tuple(P.shape))
    R = sp.csr_matrix((w.detach().reshape(-1).numpy(), np.arange(S * A), np.arange(0, S * A + 1, A)),
                      shape=(S, S * A))
    M = (R @ Ps).tocsr()
    M.sort_indices()
    idx = np.int32 if M.nnz < 2 ** 31 else np.int64      # int32 indices where they fit: a faster mat-vec
    return torch.sparse_csr_tensor(torch.from_numpy(M.indptr.astype(idx)), torch.from_numpy(M.indices.astype(idx)),
                                   torch.from_numpy(M.data), size=(S, S), check_invariants=False)


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

    Plain Python on the shapes rather than ``torch.broadcast_shapes``, whose per-call overhead is
    comparable to a whole small backup (``benchmarks/README.md``).
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
    # amax + argmax rather than Tensor.max(dim), which has a much larger per-call cost on small CPU tensors
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
