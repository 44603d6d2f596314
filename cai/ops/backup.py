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
from typing import Optional, Tuple

import numpy as np
import torch

from .logspace import _needs_grad, log_matmul_exp, logsumexp, matmul

__all__ = ["EXACT", "EXPECTED", "q_backup", "soft_max", "hard_max", "policy_expectation", "SoftValueStep"]

EXACT = "exact"
EXPECTED = "expected"


def _flat_cols(x: torch.Tensor, n: int) -> Tuple[torch.Tensor, torch.Size]:
    """``(*b, n)`` -> ``(n, B)`` columns and the batch shape ``b``."""
    b = x.shape[:-1]
    return x.reshape(-1, n).t(), b


def q_backup(
    mdp,
    t: Optional[int],
    v_next: torch.Tensor,
    alpha: torch.Tensor,
    mode: str,
    with_live: bool = False,
):
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
    inplace = not with_live and not _needs_grad(PM, r, v_next, alpha)
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


def soft_max(Q: torch.Tensor, alpha: torch.Tensor, log_prior: Optional[torch.Tensor]):
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
    logits = div_keep_neginf(Q, a) if _needs_grad(Q, a) else Q / a
    if log_prior is not None:
        logits = logits + log_prior
    lse = logsumexp(logits, -1)
    # logits is ours: without autograd, subtract in place instead of allocating log_pi
    log_pi = logits - lse.unsqueeze(-1) if _needs_grad(logits) else logits.sub_(lse.unsqueeze(-1))
    return a.squeeze(-1) * lse, log_pi


def hard_max(Q: torch.Tensor, log_prior: Optional[torch.Tensor] = None):
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
                       log_prior: Optional[torch.Tensor]):
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


class SoftValueStep:
    r"""The soft backup ``V_{t+1} -> V_t`` with the log semiring over actions fused in, for solves
    that keep only the values: a CPU kernel without autograd. The general route
    (:func:`q_backup` then :func:`soft_max`) materialises ``Q`` and the policy; this one never
    forms an ``(S, A)`` log-space array.

    In ``exp(V / alpha)`` the log semiring over actions is a weighted sum. With
    ``m(s) = max_a [r(s,a) / alpha + log rho(a|s)]`` and
    ``W(s,a) = rho(a|s) exp(r(s,a) / alpha - m(s))``, which lies in ``[0, 1]``:

    ``mode="exact"`` (backward messages). With ``z = exp(V_{t+1} / alpha - c)``, where
    ``c = max V_{t+1} / alpha``::

        V_t / alpha = m + log(gamma e^c (M z) + (1 - gamma) sum_a W)
        M(s, s')    = sum_a W(s,a) P(s'|s,a)

    The backward messages are linear in ``exp(V / alpha)``, so the step is one mat-vec with
    the action-marginalised operator ``M``, built once per reward table and temperature. Dense
    ``M`` is ``(S, S)``, so a step reads ``1/A`` of the bytes of the bare mat-vec over ``P``;
    sparse ``M`` holds the union over actions of each state's successors (a sparse product),
    at most as many entries as ``P`` (a gridworld: about a quarter).

    ``mode="expected"`` (soft value iteration). With ``y = (gamma / alpha) P V_{t+1}`` of shape
    ``(S*A,)`` and ``k = max y`` (or ``k = 0`` when ``|y|`` is too small to overflow)::

        V_t / alpha = m + k + log sum_a W exp(y - k)

    Both are exact rewrites of the general backup. Where one shift leaves some state's sum
    underflowing (values spread over more than about ``670 alpha``), exact inference recomputes
    the product with ``M`` in slabs of values (:func:`cai.ops.logspace.log_matmul_exp`, exact
    when no product ``W P`` underflows, which is checked once per build). Otherwise, and for
    soft value iteration, the step returns ``None``, and the caller runs the general log-space
    backup for that step and the rest of the solve.

    The arithmetic runs on NumPy views of the tensors (no copies): for the small arrays of a
    backup with a few thousand states, NumPy's per-call cost is a fraction of torch's, and the
    step is a dozen calls. Use :meth:`for_solver`, which returns ``None`` where this route does
    not apply: autograd, tensors off the CPU, ``r(s,a,s')`` rewards, a batch of temperatures or
    reward tables (the weights would differ per batch member), and exact inference with
    time-varying rewards (``M`` would change every step).
    """

    def __init__(self, mdp, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]):
        self.mdp, self.mode, self.log_prior = mdp, mode, log_prior
        self.alpha = float(alpha)
        info = torch.finfo(mdp.dtype)
        self.tiny = info.tiny / info.eps
        # per-call constants (a step on a small MDP costs tens of microseconds)
        self.S, self.A, self.gamma = mdp.n_states, mdp.n_actions, mdp.gamma
        # expected mode skips its shift when |y| stays below this: sum_a exp(y) cannot overflow
        self.no_shift = 0.8 * math.log(info.max) - math.log(self.A)      # float64, A=4: 566
        PM = mdp.transition_matrix
        self.P = PM if mdp.is_sparse else PM.detach().numpy()   # (S*A, S): torch CSR or a NumPy view
        self._key, self._cached = (), None   # the weights of the last reward step seen
        self.declined = False

    @classmethod
    def for_solver(cls, mdp, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]):
        """The fused step for a solver, or ``None`` where the general backup must run."""
        if mode not in (EXACT, EXPECTED) or mdp.reward_layout == "sas" or alpha.dim() != 0 \
                or len(mdp.batch_shape) != 0 or mdp.device.type != "cpu":
            return None
        if mode == EXACT and mdp.reward_layout == "tsa":
            return None       # M would be rebuilt every step, at the cost of a general backup or more
        grads = [mdp.rewards, mdp.terminal_rewards, alpha] + ([log_prior] if log_prior is not None else [])
        if any(t.requires_grad for t in grads) or mdp.transitions.requires_grad:
            return None
        return cls(mdp, alpha, mode, log_prior)

    def _weights(self, t: Optional[int]):
        """``(m (S, 1), op, sum_a W (S, 1))`` as NumPy arrays for the reward at step ``t``. ``op`` is
        ``M`` (exact: a NumPy array, or a torch CSR tensor for sparse transitions) or ``log W`` as
        an ``(S*A, 1)`` column (expected)."""
        mdp = self.mdp
        key = t if mdp.reward_layout == "tsa" else None
        if self._cached is not None and key == self._key:
            return self._cached
        S, A = self.S, self.A
        with torch.no_grad():
            logits = mdp.reward_at(t) / self.alpha
            if self.log_prior is not None:
                logits = logits + self.log_prior
            m = logits.amax(-1, keepdim=True)                  # finite: every state keeps an action
            log_w = logits - m
            wsum = min_m = None
            if self.mode == EXPECTED:
                op = log_w.reshape(S * A, 1).numpy()
            else:
                # M is exact when no product W(s,a) P(s'|s,a) of an allowed action underflows: then
                # its entries are at least min_m, and its banded product is exact for any spread
                # (a function: the smallest probability is looked up only if a product starves)
                min_log_w = log_w[torch.isfinite(log_w)].min().item()

                def min_m(min_log_w=min_log_w):
                    log_min = min_log_w + math.log(mdp.min_positive_probability)
                    return math.exp(log_min) if log_min > math.log(self.tiny) + 1 else None
                w = torch.exp(log_w)
                wsum = w.sum(-1, keepdim=True).numpy()
                P = mdp.transitions
                if mdp.is_sparse:
                    op = _marginalise_sparse(P, w)                 # M, (S, S) CSR
                else:
                    op = torch.bmm(w.unsqueeze(1), P).squeeze(1).numpy()   # M, (S, S)
        self._key, self._cached = key, (m.numpy(), op, wsum, min_m)
        return self._cached

    def __call__(self, v_next: torch.Tensor, t: Optional[int], with_live: bool = False):
        """``V_t`` of shape ``(*batch, S)`` from ``V_{t+1}`` (``(V_t, V_live)`` with ``with_live``,
        exact only: ``V_live`` leaves out the death term, see :func:`q_backup`), or ``None``.

        Once a step has declined for precision, every later call declines at once: a declined
        step has already paid for its mat-vec, and the values that made it decline seldom
        come back within one solve, so at most one step per solve is wasted.
        """
        if self.declined or v_next.requires_grad or v_next.device.type != "cpu":
            return None
        out = self._step(v_next, t, with_live)
        self.declined = out is None
        return out

    def _step(self, v_next: torch.Tensor, t: Optional[int], with_live: bool):
        S, A, g, a = self.S, self.A, self.gamma, self.alpha
        m, op, wsum, min_m = self._weights(t)
        b = v_next.shape[:-1]
        cols = v_next.detach().numpy().reshape(-1, S).T       # (S, B), a view
        live = None
        if self.mode == EXACT:
            x = cols / a
            c = x.max(0)                                       # (B,)
            if not np.isfinite(c).all():
                return None
            x -= c
            y = _np_matmul(op, np.exp(x, out=x))               # (S, B) = M z
            if not y.min() > self.tiny:                        # (False for NaN too)
                min_m = min_m()
                if min_m is None:
                    return None
                # some state's successors all lie far below the top value: the banded product
                L = log_matmul_exp(torch.from_numpy(op) if isinstance(op, np.ndarray) else op,
                                   torch.from_numpy(cols / a), min_m).numpy()
                if with_live:
                    live = (L + (m + math.log(g))) * a
                V = L if g == 1 else np.logaddexp(L + math.log(g), np.log((1 - g) * wsum))
                return self._pack((V + m) * a, live, b, with_live)
            if with_live:
                live = (np.log(y) + (c + m + math.log(g))) * a
            if g == 1:
                u, shift = y, c
            else:
                # u = gamma e^(c-k) M z + (1 - gamma) e^(-k) sum_a W with k = max(c, 0): no overflow
                shift = np.maximum(c, 0)
                y *= g * np.exp(c - shift)
                u = np.add(y, wsum * ((1 - g) * np.exp(-shift)), out=y)
        else:
            z = cols * (g / a)
            bound = np.abs(z).max()
            if not np.isfinite(bound):
                return None
            y = _np_matmul(self.P, z)                          # (S*A, B)
            shift = 0.0
            if bound >= self.no_shift:
                # (below, |y| <= bound (1 + 1e-6) as rows sum to 1 within 1e-6: no overflow)
                shift = y.max(0)
                y -= shift
            y += op
            u = _sum_actions(np.exp(y, out=y), S, A)
            if not u.min() > self.tiny:
                return None
        V = np.log(u, out=u)
        V += shift
        V += m
        V *= a
        return self._pack(V, live, b, with_live)

    def _pack(self, V: np.ndarray, live: Optional[np.ndarray], b, with_live: bool):
        """``(S, B)`` NumPy columns back to ``(*batch, S)`` tensors."""
        V = torch.from_numpy(np.ascontiguousarray(V.T).reshape(*b, self.S))
        if with_live:
            return V, (torch.from_numpy(np.ascontiguousarray(live.T).reshape(*b, self.S)) if live is not None else None)
        return V


def _marginalise_sparse(P: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``M(s, s') = sum_a w(s, a) P(s'|s, a)`` for a CSR ``P`` of shape ``(S*A, S)``: a CSR ``(S, S)``.

    ``M = R P`` with ``R (S, S*A)`` holding ``w(s, a)`` at ``(s, s*A + a)``: one sparse product
    (SciPy's, a few milliseconds per million entries), with sorted, merged column indices.
    """
    import scipy.sparse as sp

    S, A = w.shape
    crow, col = P.crow_indices().numpy(), P.col_indices().numpy()
    Ps = sp.csr_matrix((P.values().detach().numpy(), col, crow), shape=tuple(P.shape))
    R = sp.csr_matrix((w.reshape(-1).numpy(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
    M = (R @ Ps).tocsr()
    M.sort_indices()
    idx = np.int32 if M.nnz < 2 ** 31 else np.int64      # int32 indices: a faster mat-vec
    return torch.sparse_csr_tensor(torch.from_numpy(M.indptr.astype(idx)), torch.from_numpy(M.indices.astype(idx)),
                                   torch.from_numpy(M.data), size=(S, S), check_invariants=False)


def _np_matmul(M, x: np.ndarray) -> np.ndarray:
    """``M @ x`` for a NumPy matrix or a torch CSR tensor ``M`` and a NumPy ``(m, B)`` ``x``."""
    if isinstance(M, np.ndarray):
        return M @ np.ascontiguousarray(x)    # (a strided right-hand side leaves BLAS: ~50x slower)
    return matmul(M, torch.from_numpy(np.ascontiguousarray(x))).numpy()


def _sum_actions(y: np.ndarray, S: int, A: int) -> np.ndarray:
    """Sum the ``(S*A, B)`` rows of ``y`` over actions: ``(S, B)``."""
    if y.shape[1] == 1:
        # one column: a BLAS mat-vec with ones, ~3x faster than a reduction over a size-A axis
        return y.reshape(S, A) @ np.ones((A, 1), dtype=y.dtype)
    return y.reshape(S, A, -1).sum(1)
