r"""The fused values-only soft backup: a plug-in step of :func:`cai.ops.recursion.backward`.

:class:`SoftValueStep` maps ``V_{t+1} -> V_t`` in ``exp(V / alpha)`` on NumPy views of CPU tensors,
without forming ``Q``; it is a fast path of the reference backup (:func:`cai.ops.backup.q_backup`
followed by :func:`cai.ops.backup.soft_max`) and is tested against it entry by entry.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from cai.ops.backup import EXACT, EXPECTED
from cai.ops.logspace import log_matmul_exp, matmul

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["SoftValueStep"]


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

    def __init__(self, mdp: TabularMDP, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]) -> None:
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
    def for_solver(cls, mdp: TabularMDP, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]
                   ) -> Optional[SoftValueStep]:
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
