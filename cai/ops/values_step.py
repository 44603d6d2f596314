r"""The fused values-only soft backup: a plug-in step of :func:`cai.ops.recursion.backward`.

:class:`SoftValueStep` maps ``V_{t+1} -> V_t`` in ``exp(V / alpha)`` on NumPy views of CPU tensors,
without forming ``Q``; it is a fast path of the reference backup (:func:`cai.ops.backup.q_backup`
followed by :func:`cai.ops.backup.soft_max`) and is tested against it entry by entry.
"""
from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
import torch

from cai.ops.backup import EXPECTATION, LOG_EXPECTATION, action_log_weights, action_operator, successor_mode
from cai.ops.logspace import MKL_SPARSE, csr_product, log_matmul_exp, precision_floor, scipy_csr

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["SoftValueStep", "NO_SHIFT_FRACTION", "MIN_PRODUCT_MARGIN_NATS", "CHAIN_SPREAD_NATS", "CHAIN_RESCALE_ABOVE"]

#: A batched sparse exact step chains ``z = exp(V / alpha - c)`` from the previous step without an
#: ``exp`` while each member's per-state shift ``m`` spreads over less than this many nats, so that
#: ``e^(m - max m)`` stays far above the smallest normal number (``e^-600 ~ 1e-261``).
CHAIN_SPREAD_NATS = 600.0
#: The chained ``z`` is left unscaled while each member's maximum lies in ``[1, this]``: a step
#: multiplies it by at most ``A`` (``W <= 1``, rows of ``P`` sum to 1), far from overflow
#: (float64; float32 batches do not chain).
CHAIN_RESCALE_ABOVE = 1e200

#: The expectation step skips its shift while ``|y| < NO_SHIFT_FRACTION * log(max) - log(A)``:
#: then each ``exp(y) < max**NO_SHIFT_FRACTION / A`` and ``sum_a exp(y) < max**0.8``, a fifth of the
#: exponent range short of overflow.
NO_SHIFT_FRACTION = 0.8
#: ``M`` certifies the slab product only if its smallest possible entry, ``min W * min P``, lies at
#: least this many nats above :func:`cai.ops.logspace.precision_floor` (``e`` times the floor).
MIN_PRODUCT_MARGIN_NATS = 1.0


class SoftValueStep:
    r"""The soft backup ``V_{t+1} -> V_t`` with the log semiring over actions fused in, for solves
    that keep only the values: a CPU kernel without autograd. The general route
    (:func:`q_backup` then :func:`soft_max`) materialises ``Q`` and the policy; this one never
    forms an ``(S, A)`` log-space array.

    In ``exp(V / alpha)`` the log semiring over actions is a weighted sum. With
    ``m(s) = max_a [r(s,a) / alpha + log rho(a|s)]`` and
    ``W(s,a) = rho(a|s) exp(r(s,a) / alpha - m(s))``, which lies in ``[0, 1]``:

    ``mode=LOG_EXPECTATION`` (exact inference, backward messages). With ``z = exp(V_{t+1} / alpha - c)``, where
    ``c = max V_{t+1} / alpha``::

        V_t / alpha = m + log(gamma e^c (M z) + (1 - gamma) sum_a W)
        M(s, s')    = sum_a W(s,a) P(s'|s,a)

    The backward messages are linear in ``exp(V / alpha)``, so the step is one mat-vec with
    the action-marginalised operator ``M`` (:func:`cai.ops.backup.action_operator`), built once
    per reward table and temperature. Dense ``M`` is ``(S, S)``, so a step reads ``1/A`` of the bytes of the bare mat-vec over ``P``;
    sparse ``M`` holds the union over actions of each state's successors (a sparse product),
    at most as many entries as ``P`` (a gridworld: about a quarter).

    ``mode=EXPECTATION`` (soft value iteration). With ``y = (gamma / alpha) P V_{t+1}`` of shape
    ``(S*A,)`` and ``k = max y`` (or ``k = 0`` when ``|y|`` is too small to overflow)::

        V_t / alpha = m + k + log sum_a W exp(y - k)

    Both are exact rewrites of the general backup. Where one shift leaves some state's sum
    underflowing (values spread over more than about ``670 alpha``), exact inference recomputes
    the product with ``M`` in slabs of values (:func:`cai.ops.logspace.log_matmul_exp`, exact
    when no product ``W P`` underflows, which is checked once per build). Otherwise, and for
    soft value iteration, the step returns ``None``, and the caller runs the general log-space
    backup for that step and the rest of the solve.

    The arithmetic runs on NumPy views of the tensors (no copies): for the small arrays of a
    backup with a few thousand states, NumPy's per-call overhead is lower than torch's, and the
    step is a dozen calls (measurements: ``benchmarks/README.md``). Use :meth:`for_solver`, which
    returns ``None`` where this route does not apply: autograd, tensors off the CPU, ``r(s,a,s')``
    rewards, and exact inference with one temperature and time-varying rewards (``M`` would change
    every step).

    **Batches.** A batch of temperatures or reward tables gives each member its own ``m``, ``W``
    and ``alpha``: one column each, ``B`` columns in all, formed in one pass as ``(S*A, B)``
    columns. Soft value iteration multiplies ``P`` by all ``B`` columns at once (sparse ``P``:
    :func:`cai.ops.logspace.csr_product`, MKL's product into a buffer kept by the step where
    torch has MKL, 4-6x SciPy's with 64 columns; dense: BLAS) and reduces over actions column by
    column; its values go straight into batch-last ``(T+1, S, B)`` outputs. Exact inference on
    sparse transitions builds one ``M_b`` per member, laid out as one block-diagonal CSR matrix
    over the ``(B, S)`` rows of the values (``B`` times the entries of one ``M``: a grid's ``M``
    has about a quarter of ``P``'s entries, so 64 members hold 16 times ``P``; its sparsity and
    block indices are cached per transition tensor and batch size, :func:`_block_pattern`); a
    step is one sparse mat-vec, and from the second step on ``z = exp(V / alpha - c)`` is chained
    from the previous step's sum without an ``exp`` (:meth:`_block_step`). On dense transitions
    ``B`` dense ``(S, S)`` operators would cost ``8 B S^2`` bytes, so exact inference multiplies
    ``P`` by the ``B`` columns (one BLAS product) and reduces with each column's ``W``. A batched
    exact step declines (no slabs) where a state's sum underflows.

    **Steps that store Q** (``keep="all"``) run :meth:`full`, the general backup's arithmetic on
    the same columns, computed in place in preallocated outputs (:meth:`outputs`) stored as
    ``(T, S, A, B)`` columns and handed out as ``(*b, T, S, A)`` views: no copy per step. Where a
    bound on the logits (``|r| / alpha + |V_{t+1}| / alpha + |log rho|``, checked per step) keeps
    every ``exp`` in the normal range, the log-sum-exp over actions and the exact product skip
    their shift by the maximum (two passes fewer), and the sums cannot starve, so they are not
    checked.
    """

    def __init__(self, mdp: TabularMDP, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]) -> None:
        self.mdp, self.mode, self.log_prior = mdp, successor_mode(mode), log_prior
        # one temperature and one reward table: the weights are one column shared by the batch of
        # values (and exact inference multiplies by one M); otherwise each column has its own
        self.batched = alpha.dim() != 0 or len(mdp.batch_shape) != 0
        self.alpha = alpha.detach() if self.batched else float(alpha)
        info = torch.finfo(mdp.dtype)
        self.tiny = precision_floor(mdp.dtype)
        # per-call constants, looked up once per build rather than once per step
        self.S, self.A, self.gamma = mdp.n_states, mdp.n_actions, mdp.gamma
        # the expectation step skips its shift when |y| stays below this: sum_a exp(y) cannot overflow
        self.no_shift = NO_SHIFT_FRACTION * math.log(info.max) - math.log(self.A)      # float64, A=4: 566
        PM = mdp.transition_matrix
        # (S*A, S): a SciPy CSR view of sparse transitions (the block pattern of batched exact
        # inference is built on it), or a NumPy view of dense ones
        self.P = scipy_csr(PM) if mdp.is_sparse else PM.detach().numpy()
        # the operand of the steps' products (:func:`_np_matmul`): the torch CSR tensor itself for
        # sparse transitions (MKL's product where torch has it, :func:`cai.ops.logspace.csr_product`)
        self._Pmul = PM if mdp.is_sparse else self.P
        self._ones = np.ones((self.A, 1), dtype=np.float64 if mdp.dtype == torch.float64 else np.float32)
        self._key, self._cached = (), None   # the weights of the last reward step seen
        self.declined = False
        # full(): the temperatures as rows and as columns, and the last V as (S, B) columns (with
        # the tensor it was written to and that tensor's version), reused by the next step
        self._a_rows = self._a_cols = self._prev_cols = None
        self._chain = self._em = None      # _block_step's chained z and its weights
        self._own = None                   # outputs(): NumPy views of one solve's outputs
        self._bufs: dict = {}               # _kept(): work arrays by name

    @classmethod
    def for_solver(cls, mdp: TabularMDP, alpha: torch.Tensor, mode: str, log_prior: Optional[torch.Tensor]
                   ) -> Optional[SoftValueStep]:
        """The fused step for a solver, or ``None`` where the general backup must run."""
        mode = successor_mode(mode)
        if mdp.reward_layout == "sas" or mdp.device.type != "cpu":
            return None
        batched = alpha.dim() != 0 or len(mdp.batch_shape) != 0
        if mode == LOG_EXPECTATION and mdp.reward_layout == "tsa" and not batched:
            return None       # M would be rebuilt every step, at the cost of a general backup or more
        grads = [mdp.rewards, mdp.terminal_rewards, alpha] + ([log_prior] if log_prior is not None else [])
        if any(t.requires_grad for t in grads) or mdp.transitions.requires_grad:
            return None
        return cls(mdp, alpha, mode, log_prior)

    def _weights(self, t: Optional[int], b: tuple = ()):
        """``(m (S, 1), op, sum_a W (S, 1), min_m)`` as NumPy arrays for the reward at step ``t``. ``op`` is
        ``M`` (exact: a NumPy array, or a torch CSR tensor for sparse transitions) or ``log W`` as
        an ``(S*A, 1)`` column (expected). For batched weights (:meth:`_batched_weights`) the
        columns are ``(S, B)`` and ``(S*A, B)`` for the ``B`` members of the batch ``b``."""
        mdp = self.mdp
        key = (t if mdp.reward_layout == "tsa" else None, tuple(b))
        if self._cached is not None and key == self._key:
            return self._cached
        if self.batched:
            self._key, self._cached = key, self._batched_weights(t, b)
            return self._cached
        S, A = self.S, self.A
        with torch.no_grad():
            logits = action_log_weights(mdp.reward_at(t), self.alpha, self.log_prior)
            m = logits.amax(-1, keepdim=True)                  # finite: every state keeps an action
            log_w = logits - m
            wsum = min_m = None
            if self.mode == EXPECTATION:
                op = log_w.reshape(S * A, 1).numpy()
            else:
                # M is exact when no product W(s,a) P(s'|s,a) of an allowed action underflows: then
                # its entries are at least min_m, and its banded product is exact for any spread
                # (a function: the smallest probability is looked up only if a product starves)
                min_log_w = log_w[torch.isfinite(log_w)].min().item()

                def min_m(min_log_w=min_log_w):
                    log_min = min_log_w + math.log(mdp.min_positive_probability)
                    return math.exp(log_min) if log_min > math.log(self.tiny) + MIN_PRODUCT_MARGIN_NATS else None
                w = torch.exp(log_w)
                wsum = w.sum(-1, keepdim=True).numpy()
                op = action_operator(w, mdp.transitions)           # M, (S, S): CSR or dense
                # the step multiplies by M (NumPy for dense, the CSR tensor through csr_product for
                # sparse); the slab route takes the torch one
                self._M_torch = op
                op = op if mdp.is_sparse else op.numpy()
        self._key, self._cached = key, (m.numpy(), op, wsum, min_m)
        return self._cached

    def _batched_weights(self, t: Optional[int], b: tuple):
        """The weights of a batch of temperatures or reward tables, one column per member of the
        batch ``b`` (``B`` columns): ``(m (S, B), op, sum_a W (S, B), a (B,))``. ``op`` is
        ``log W`` (expected) or ``W`` (exact, dense transitions) as ``(S*A, B)``: dense exact
        inference multiplies by ``P`` once for all columns and reduces over actions with each
        column's weights, instead of ``B`` dense ``(S, S)`` operators. For sparse exact inference
        ``op`` is the block-diagonal operator of :meth:`_block_operator`, and ``m``, ``sum_a W``
        are ``(B, S)`` rows. ``sum_a W`` is ``None`` without a death term (``gamma = 1``)."""
        S, A = self.S, self.A
        with torch.no_grad():
            a = self.alpha.expand(b).reshape(-1)                     # (B,)
            r = self.mdp.reward_at(t)
            # the rewards as (S, A, 1) (one table for the batch) or (S, A, B) columns (one each)
            r = r.unsqueeze(-1) if r.dim() == 2 else r.expand(*b, S, A).reshape(-1, S, A).permute(1, 2, 0)
            lp = None if self.log_prior is None else self.log_prior.unsqueeze(-1)
            # log W as (S*A, B) columns, formed in place in memory with the members last
            log_w = action_log_weights(r, a, lp, out=_empty((S, A, a.numel()), r.dtype))
            m = log_w.amax(1)                                        # (S, B): finite (every state keeps an action)
            log_w -= m.unsqueeze(1)
            log_w = log_w.numpy().reshape(S * A, -1)
            cols_m, a_cols = m.numpy(), a.numpy().copy()
            if self.mode == EXPECTATION:
                return cols_m, log_w, None, a_cols
            w = np.exp(log_w, out=log_w)                             # W, in place (NumPy's exp: faster)
            # sum_a W only serves the death term (gamma < 1)
            wsum = _sum_actions(w, S, A) if self.gamma < 1 else None     # (S, B)
            if not isinstance(self.P, np.ndarray):
                # sparse: one M per member, laid out as one block-diagonal CSR matrix over the
                # (B, S) rows of the values, so a step is one sparse mat-vec
                return (np.ascontiguousarray(cols_m.T), self._block_operator(w),
                        None if wsum is None else np.ascontiguousarray(wsum.T), a_cols)
            return cols_m, w, wsum, a_cols

    def _block_operator(self, w: np.ndarray):
        """``diag(M_1, ..., M_B)`` as a CSR ``(B*S, B*S)`` from the ``(S*A, B)`` weights,
        ``M_b(s, s') = sum_a w_b(s, a) P(s'|s, a)``: the sparsity of ``M`` (the union over actions
        of each state's successors) and the block indices are found once per transition matrix
        and batch size (:func:`_block_pattern`); each entry of each ``M_b`` is then one row of the
        sparse product ``G w`` with ``G[k, (s, a)] = P(s'|s, a)`` for the entry ``k = (s, s')``.
        A torch CSR tensor where the product runs on MKL (:func:`cai.ops.logspace.csr_product`),
        else a SciPy one."""
        import scipy.sparse as sp

        S, B = self.S, w.shape[1]
        G, blk_ptr, blk_ind = _block_pattern(self._Pmul, self.P, S, self.A, B)
        vals = np.empty((B, G.shape[0]), dtype=w.dtype)                    # M_b's entries, row b
        # the (nnz M, B) product, then one transposed copy into the (B, nnz M) rows (MKL's product
        # written column-major straight into the rows measured 3-4x slower than both together)
        np.copyto(vals.T, _np_matmul(G, w, out=self._kept("G w", (G.shape[0], B))))
        if MKL_SPARSE:
            return torch.sparse_csr_tensor(torch.from_numpy(blk_ptr), torch.from_numpy(blk_ind),
                                           torch.from_numpy(vals.ravel()), size=(B * S, B * S), check_invariants=False)
        return sp.csr_matrix((vals.ravel(), blk_ind, blk_ptr), shape=(B * S, B * S))

    def __call__(self, v_next: torch.Tensor, t: Optional[int], with_live: bool = False,
                 out: Optional[torch.Tensor] = None):
        """``V_t`` of shape ``(*batch, S)`` from ``V_{t+1}`` (``(V_t, V_live)`` with ``with_live``,
        exact only: ``V_live`` leaves out the death term, see :func:`q_backup`), or ``None``.

        Once a step has declined for precision, every later call declines at once: a declined
        step has already paid for its mat-vec, and the values that made it decline seldom
        come back within one solve, so at most one step per solve is wasted.
        """
        if self.declined or v_next.requires_grad or v_next.device.type != "cpu":
            return None
        res = self._step(v_next, t, with_live, out)
        self.declined = res is None
        return res

    def _step(self, v_next: torch.Tensor, t: Optional[int], with_live: bool, out: Optional[torch.Tensor]):
        if self.batched:
            return self._batched_step(v_next, t, with_live, out)
        g, a = self.gamma, self.alpha
        m, op, wsum, min_m = self._weights(t)
        b = v_next.shape[:-1]
        cols = self._cols_of(v_next)                           # (S, B)
        live = None
        if self.mode == LOG_EXPECTATION:
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
                L = log_matmul_exp(self._M_torch,
                                   torch.from_numpy(cols / a), min_m).numpy()
                if with_live:
                    live = (L + (m + math.log(g))) * a
                V = L if g == 1 else np.logaddexp(L + math.log(g), np.log((1 - g) * wsum))
                return self._pack((V + m) * a, live, b, with_live, out)
            if with_live:
                live = (np.log(y) + (c + m + math.log(g))) * a
            u, shift = self._with_death(y, c, wsum)
        else:
            res = self._expectation_sum(cols, op, a)
            if res is None:
                return None
            u, shift = res
        return self._pack(_values_from_sum(u, shift, m, a), live, b, with_live, out)

    def _with_death(self, y: np.ndarray, c: np.ndarray, wsum: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Exact inference's sum with the death term, ``(u, shift)`` with ``exp(shift) u =
        gamma e^c M z + (1 - gamma) sum_a W``: ``u = gamma e^(c-k) M z + (1 - gamma) e^(-k) sum_a W``
        with ``k = max(c, 0)``, so nothing overflows (``y = M z`` is overwritten)."""
        g = self.gamma
        if g == 1:
            return y, c
        shift = np.maximum(c, 0)
        y *= g * np.exp(c - shift)
        return np.add(y, wsum * ((1 - g) * np.exp(-shift)), out=y), shift

    def _expectation_sum(self, cols: np.ndarray, op: np.ndarray, a, u_out: Optional[np.ndarray] = None
                         ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Soft VI's sum over actions, ``(u, shift)`` with ``u = sum_a exp(op + gamma P V / alpha
        - shift)`` per state and column (``B > 1``: into ``u_out`` when given); ``None`` where it
        is not finite or starves."""
        S, A, g = self.S, self.A, self.gamma
        z = np.multiply(cols, g / a, out=self._kept("z", cols.shape))
        bound = max(z.max(), -z.min())
        if not np.isfinite(bound):
            return None
        y = _np_matmul(self._Pmul, z, out=self._kept("product", (self.S * self.A, z.shape[1])))      # (S*A, B)
        shift = 0.0
        if bound >= self.no_shift:
            # (below, |y| <= bound (1 + 1e-6) as rows sum to 1 within 1e-6: no overflow)
            shift = y.max(0)
            y -= shift
        y += op
        y = np.exp(y, out=y)
        u = y.reshape(S, A) @ self._ones if y.shape[1] == 1 else _sum_actions(y, S, A, out=u_out)
        # (unshifted, each state's best action has op = 0 and |y| < no_shift, so u >= e^-no_shift:
        # only a shifted sum can starve)
        if bound >= self.no_shift and not u.min() > self.tiny:
            return None
        return u, shift

    def _batched_step(self, v_next: torch.Tensor, t: Optional[int], with_live: bool, out: Optional[torch.Tensor]):
        """The step for a batch of temperatures or reward tables: the formulas of the class
        docstring with each column's own ``alpha``, ``m`` and ``W``; one product with ``P`` for
        all ``B`` columns. Exact inference declines where a state's sum underflows (no slabs)."""
        S, A, g = self.S, self.A, self.gamma
        b = v_next.shape[:-1]
        m, op, wsum, a = self._weights(t, b)
        if self.mode == LOG_EXPECTATION and not isinstance(op, np.ndarray):
            return self._block_step(v_next, m, op, wsum, a, with_live, out)
        cols = self._cols_of(v_next)                           # (S, B)
        # values into batch-last outputs: straight into out (the sum in a kept buffer)
        nat = _columns_view(out, out.dim() - 1) if out is not None and not with_live else None
        live = None
        if self.mode == LOG_EXPECTATION:
            x = cols / a
            c = x.max(0)                                       # (B,)
            if not np.isfinite(c).all():
                return None
            x -= c
            y = _np_matmul(self._Pmul, np.exp(x, out=x))       # (S*A, B) = P z
            y *= op                                            # W(s,a) (P z)(s,a)
            y = _sum_actions(y, S, A)                          # (S, B) = M z, column by column
            if not y.min() > self.tiny:                        # (False for NaN too)
                return None
            if with_live:
                live = (np.log(y) + (c + m + math.log(g))) * a
            u, shift = self._with_death(y, c, wsum)
        else:
            res = self._expectation_sum(cols, op, a, None if nat is None else self._kept("u", cols.shape))
            if res is None:
                return None
            u, shift = res
        return self._pack(_values_from_sum(u, shift, m, a, out=nat), live, b, with_live, out)

    def outputs(self, b: tuple, T: int, keep: str = "all"
                ) -> Optional[Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]]:
        """Preallocated outputs of a finite-horizon solve: ``V (*b, T+1, S)`` and, when it stores
        every step (``keep="all"``), ``Q (*b, T, S, A)`` and ``log pi (*b, T, S, A)`` (else
        ``None``), uninitialised, which :func:`cai.ops.recursion.backward` fills step by step
        (``out=`` of the step and of :meth:`full`) instead of stacking ``T`` separate steps at
        the end (a second pass over the largest arrays). ``None`` for one solve that keeps the
        values (there the copy into the output per step costs more than the stacking it saves).

        With ``keep="all"`` the three outputs are stored in the layout of the step's columns,
        ``(T+1, S, B)`` and ``(T, S, A, B)`` with the ``B = prod(b)`` members last, and returned as
        views of the shapes above (the batch axes moved to the front, so not contiguous when
        ``B > 1``): :meth:`full` computes each step in place in them, with no transposed copy.

        Args:
            b: the batch shape of the solve.
            T: the horizon.
            keep: ``"all"`` or ``"values"``.

        Returns:
            ``(V, Q, log_pi)``, or ``None``.
        """
        S, A, dt = self.S, self.A, self.mdp.dtype
        if keep != "all" and not self.batched:
            return None
        if keep != "all":
            if self.mode == LOG_EXPECTATION and not isinstance(self.P, np.ndarray):
                return _empty((*b, T + 1, S), dt), None, None      # the block step's (B, S) rows
            return _batch_last(b, (T + 1, S), dt), None, None       # the other steps' (S, B) columns
        outs = _batch_last(b, (T + 1, S), dt), _batch_last(b, (T, S, A), dt), _batch_last(b, (T, S, A), dt)
        if math.prod(b) == 1:
            # one solve: NumPy views of the whole outputs, which _full_one indexes by step instead
            # of taking three views of the step's slices (a few us a step, a sixth of a small one)
            own = tuple(o.detach().numpy().reshape(n, *rest) for o, n, rest in zip(outs, (T + 1, T, T), ((S,), (S, A), (S, A))))
            self._own = own, tuple(x.ctypes.data for x in own), tuple(x.strides[0] for x in own)
        return outs

    def full(self, v_next: torch.Tensor, t: Optional[int],
             out: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None
             ) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(V_t, Q_t, log pi_t)`` of shapes ``(*b, S)``, ``(*b, S, A)``, ``(*b, S, A)`` from
        ``V_{t+1}`` (a step that stores ``Q`` and the policy, ``keep="all"``), for one solve or a
        batch of temperatures or reward tables: the general backup (:func:`cai.ops.backup.q_backup`,
        then :func:`cai.ops.backup.soft_max`) on NumPy columns, one product with ``P`` for all
        members. ``None`` (this step only) where it does not apply: values with a gradient,
        non-finite values, or an exact sum that loses precision.

        The arithmetic runs on ``(S*A, B)`` columns, in place in ``out`` when its memory is laid
        out as columns (the views of :meth:`outputs`; without ``out=``, fresh outputs so laid out),
        with its work arrays kept between steps (:meth:`_kept`: no allocation per step).
        Other ``out=`` tensors (contiguous ``(*b, ...)``) get one transposed copy of ``Q`` and ``V``.

        Args:
            v_next: ``(*b, S)`` the values ``V_{t+1}``.
            t: the step (``None``: stationary).
            out: optional ``(V_t, Q_t, log pi_t)`` tensors of the shapes returned, written in place.

        Returns:
            ``(V_t, Q_t, log pi_t)`` (``out`` when given; else views of batch-last memory, not
            contiguous when the batch has more than one member), or ``None``.
        """
        if v_next.requires_grad or v_next.device.type != "cpu":
            return None
        S, A, g = self.S, self.A, self.gamma
        b = v_next.shape[:-1]
        r, a, lp, r_bound = self._columns(t, b)
        cols = np.ascontiguousarray(self._cols_of(v_next))         # (S, B)
        # every finite logit lies within |r| / alpha + |V_{t+1}| / alpha + |log rho| (see _columns):
        # below self.no_shift no exp overflows or leaves the normal range, so the log-sum-exp
        # over actions needs no shift by its maximum (two passes fewer). (Not finite: V_{t+1} is not.)
        v_bound = np.abs(cols).max(0) / a                          # (B,): max |V_{t+1}| / alpha
        bound = (r_bound + v_bound).max()
        if not np.isfinite(bound):
            return None
        shift = bool(bound >= self.no_shift)
        if out is None:
            dt = v_next.dtype
            out = (_batch_last(b, (S,), dt), _batch_last(b, (S, A), dt), _batch_last(b, (S, A), dt))
        nat = None if cols.shape[1] == 1 else [_columns_view(o, len(b)) for o in out]   # (S, B), (S*A, B) x 2 or None
        direct = nat is not None and all(n is not None for n in nat)
        if self.mode == EXPECTATION:
            if direct:
                # P V straight into Q's output, the rewards added there (no (S*A, B) temporary)
                Q = _np_matmul(self._Pmul, cols * g if g != 1 else cols, out=nat[1])
                return self._full_columns(Q, r, a, lp, shift, nat, out, in_place=True)
            Q = _np_matmul(self._Pmul, cols * g if g != 1 else cols)   # (S*A, B)
        else:
            x = cols / a
            c = None
            if v_bound.max() >= self.no_shift:
                # (below, exp(V / alpha) neither overflows nor leaves the normal range: no shift)
                c = x.max(0)
                x -= c
            y = _np_matmul(self._Pmul, np.exp(x, out=x), out=self._kept("product", (self.S * self.A, x.shape[1])))   # (S*A, B) = P z
            # unshifted, every z >= e^-no_shift and each y is a convex combination of z (rows of P
            # sum to 1): y cannot lose precision, so only a shifted product is checked
            if c is not None and not y.min() > self.tiny:
                return None
            if direct and g == 1 and c is None:
                # Q = r + alpha log(P z), formed in Q's output: the log, then one fused pass
                Q = np.log(y, out=nat[1])
                Qt = torch.from_numpy(Q)
                torch.addcmul(torch.from_numpy(r), Qt, self._alpha_cols(a), out=Qt)
                return self._full_columns(Q, None, a, lp, shift, nat, out, in_place=True)
            Q = np.log(y, out=y)
            if c is not None:
                Q += c
            if g < 1:
                Q = np.logaddexp(Q + math.log(g), math.log1p(-g))
            Q *= a
        if Q.shape[1] == 1:
            return self._full_one(Q, r, a, lp, shift, out, t)
        if not direct:
            return self._full_rows(np.add(Q, r, out=Q), a, lp, shift, out)
        return self._full_columns(Q, r, a, lp, shift, nat, out)

    def _full_columns(self, Q: np.ndarray, r: np.ndarray, a: np.ndarray, lp: Optional[np.ndarray],
                      shift: bool, nat: list, out: tuple, in_place: bool = False) -> tuple:
        """:meth:`full` into batch-last outputs (``nat``: their ``(S, B)``, ``(S*A, B)``, ``(S*A, B)``
        NumPy views). ``Q`` holds the successor part, ``gamma P V`` or its log-expectation
        counterpart, and ``r`` is added to it into Q's output (``in_place``: ``Q`` already is that
        output; ``r=None`` there: ``Q`` is complete). ``shift``: whether the log-sum-exp over
        actions shifts by its maximum."""
        S, A = self.S, self.A
        Vc, Qc, Lc = nat
        # every array below is (S*A, B) or (S, B) columns, the outputs' own layout: Q + r is
        # written into the output, the log policy formed in place in its output from Q's columns.
        # (The elementwise passes with a broadcast operand run in torch, ~1.3-1.5x faster than
        # NumPy's on these shapes; NumPy's exp is faster than torch's; torch's reductions over the
        # middle axis of (S, A, B) are several times faster than NumPy's: each on the same memory.)
        Qt, Lt = torch.from_numpy(Qc), torch.from_numpy(Lc)
        if in_place:
            if r is not None:
                Qt += torch.from_numpy(r)
        else:
            torch.add(torch.from_numpy(Q), torch.from_numpy(r), out=Qt)
        torch.div(Qt, self._alpha_cols(a), out=Lt)                  # the logits Q / alpha (+ log rho)
        if lp is not None:
            Lt += torch.from_numpy(lp)
        lse = self._lse_actions(Lc, self._kept("scratch", Qc.shape), shift)     # (S, B)
        np.multiply(lse, a, out=Vc)                                 # V_t
        Lt.view(S, A, -1).sub_(torch.from_numpy(lse).unsqueeze(1))  # log pi, in place
        return out

    def _full_rows(self, Q: np.ndarray, a: np.ndarray, lp: Optional[np.ndarray], shift: bool, out: tuple) -> tuple:
        """:meth:`full` into outputs not laid out as columns (``out=`` views of contiguous ``(*b, ...)``
        tensors): the arithmetic on ``(S*A, B)`` columns, then one transposed copy of ``Q`` and ``V``
        into the ``(B, ...)`` rows, the log policy formed in place from those rows."""
        S, A = self.S, self.A
        b = out[0].shape[:-1]
        e = self._kept("scratch", Q.shape)
        np.divide(Q, a, out=e)                                      # the logits Q / alpha (+ log rho)
        if lp is not None:
            e += lp
        lse = self._lse_actions(e, e, shift)                        # (S, B)
        V = lse * a                                                 # (S, B)
        Vo, Qo, Lo = (o.view(-1, *o.shape[len(b):]) for o in out)  # (B, S), (B, S, A), (B, S, A)
        Vo.copy_(torch.from_numpy(V).t())
        Qo.view(-1, S * A).copy_(torch.from_numpy(Q).t())
        torch.div(Qo, self._alpha_rows(a, A), out=Lo)
        if lp is not None:
            Lo += self._prior_rows(lp)
        Lo -= torch.from_numpy(lse).t().unsqueeze(-1)
        self._prev_cols = (out[0], out[0]._version, V)
        return out

    def _full_one(self, Q: np.ndarray, r: np.ndarray, a: np.ndarray, lp: Optional[np.ndarray], shift: bool,
                  out: tuple, t: Optional[int] = None) -> tuple:
        """:meth:`full` for one column (one solve): ``(S*A, 1)`` is already the layout of the
        ``(S, A)`` outputs, so the same arithmetic runs in NumPy in place on them (fewest calls);
        ``Q``: the successor part, to which ``r`` is added into Q's output."""
        S, A = self.S, self.A
        # (S,), (S, A), (S, A) views, also for a batch of one (``(*1, S, A)`` outputs); ``view``
        # raises rather than copy, so the writes below always land in the outputs
        own = self._own
        if own is not None and t is not None and all(o.data_ptr() == p + t * st for o, p, st in zip(out, own[1], own[2])):
            Vn, Qn, Ln = (x[t] for x in own[0])                     # step t of outputs() (the same memory)
        else:
            Vn, Qn, Ln = out[0].view(S).numpy(), out[1].view(S, A).numpy(), out[2].view(S, A).numpy()
        np.add(Q.reshape(S, A), r.reshape(S, A), out=Qn)
        logits = np.divide(Qn, a, out=Ln)
        if lp is not None:
            logits += lp.reshape(S, A)
        lse = self._lse_actions(logits.reshape(S * A, 1), self._kept("scratch", (S * A, 1)), shift).reshape(S)
        logits -= lse[:, None]                                      # log pi, in place
        np.multiply(lse, a, out=Vn)
        return out

    def _lse_actions(self, logits: np.ndarray, work: np.ndarray, shift: bool) -> np.ndarray:
        """``log sum_a exp(logits)`` of ``(S*A, B)`` columns: ``(S, B)``, a fresh array; the one
        log-sum-exp over actions of :meth:`full`'s three layouts. ``shift``: subtract each state's
        maximum first (else the bound checked in :meth:`full` keeps every ``exp`` in range);
        ``work``, of ``logits``' shape, receives the exponentials (it may be ``logits`` itself).
        (torch's reduction over the middle axis of ``(S, A, B)`` and its broadcast subtraction
        are several times faster than NumPy's; NumPy's ``exp`` is faster than torch's; one column
        is summed by a BLAS mat-vec with ones.)"""
        S, A = self.S, self.A
        if shift:
            L3 = torch.from_numpy(logits).view(S, A, -1)
            mx = L3.amax(1, keepdim=True)                           # (S, 1, B): finite (every state keeps an action)
            torch.sub(L3, mx, out=torch.from_numpy(work).view(S, A, -1))
            np.exp(work, out=work)
        else:
            np.exp(logits, out=work)
        lse = work.reshape(S, A) @ self._ones if work.shape[1] == 1 else _sum_actions(work, S, A)
        lse = np.log(lse, out=lse)
        if shift:
            lse += mx.numpy()[:, 0, :]
        return lse

    def _cols_of(self, v_next: torch.Tensor) -> np.ndarray:
        """``V_{t+1}`` of shape ``(*b, S)`` as ``(S, B)`` NumPy columns: a view (contiguous for the
        batch-last outputs of :meth:`outputs`), or the columns the previous step wrote into
        ``v_next`` itself (``out=`` of rows), while ``v_next`` is unchanged since (its version
        counter), which spares a transposed read of a strided view."""
        prev, self._prev_cols = self._prev_cols, None
        if prev is not None and prev[0] is v_next and prev[1] == v_next._version:
            return prev[2]
        if not v_next.is_contiguous():
            cols = _columns_view(v_next, v_next.dim() - 1)       # a view of batch-last outputs
            if cols is not None:
                return cols
        return v_next.detach().numpy().reshape(-1, self.S).T

    def _kept(self, name: str, shape: tuple) -> np.ndarray:
        """A work array of ``shape`` kept between steps under ``name`` (no allocation, and none of
        its page faults, per step): ``"product"`` (what ``P`` is multiplied into), ``"scratch"``
        (:meth:`full`'s exponentials), ``"z"``, ``"u"``, ``"y0"``/``"y1"`` (the values steps'),
        ``"G w"`` (:meth:`_block_operator`). The caller makes sure nothing handed out aliases it."""
        buf = self._bufs.get(name)
        if buf is None or buf.shape != shape:
            buf = self._bufs[name] = np.empty(shape, dtype=np.float64 if self.mdp.dtype == torch.float64 else np.float32)
        return buf

    def _alpha_rows(self, a: np.ndarray, A: int) -> torch.Tensor:
        """The temperatures ``(B,)`` as a ``(B, 1, 1)`` tensor (cached), to divide rows of ``Q``."""
        ar = self._a_rows
        if ar is None or ar[0] is not a:
            ar = self._a_rows = (a, torch.from_numpy(a).reshape(-1, 1, 1))
        return ar[1]

    def _alpha_cols(self, a: np.ndarray) -> torch.Tensor:
        """The temperatures ``(B,)`` as a tensor (cached), to divide ``(S*A, B)`` columns of ``Q``."""
        ac = self._a_cols
        if ac is None or ac[0] is not a:
            ac = self._a_cols = (a, torch.from_numpy(a))
        return ac[1]

    def _prior_rows(self, lp: np.ndarray) -> torch.Tensor:
        """The log prior ``(S*A, 1)`` column as an ``(S, A)`` tensor, added to rows of logits."""
        return torch.from_numpy(lp).reshape(self.S, self.A)

    def _columns(self, t: Optional[int], b: tuple):
        """Rewards ``(S*A, B)`` (``(S*A, 1)``, broadcast over the columns, when one reward table
        serves the whole batch: a step then reads ``1/B`` of the bytes), temperatures ``(B,)`` and
        the log prior ``(S*A, 1)`` (or ``None``) as NumPy columns for :meth:`full`, and ``(B,)``
        the part of the logits' bound that does not depend on ``V`` (``max |r| / alpha + max
        |log rho|`` over finite entries); cached per reward step and batch shape."""
        key = (t if self.mdp.reward_layout == "tsa" else None, tuple(b))
        cached = getattr(self, "_cols", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        S, A = self.S, self.A
        with torch.no_grad():
            r = self.mdp.reward_at(t)
            r = r.reshape(S * A, 1) if r.dim() == 2 else r.expand(*b, S, A).reshape(-1, S * A).t()
            r = np.ascontiguousarray(r.numpy())
            a = self.alpha.expand(b).reshape(-1).numpy().copy() if self.batched \
                else np.full(max(1, math.prod(b)), self.alpha, dtype=r.dtype)
            lp = None if self.log_prior is None else self.log_prior.reshape(S * A, 1).numpy()
            # |logits| <= max|r| / alpha + max|V_{t+1}| / alpha + max|log rho| (finite entries; rows
            # of P sum to 1, gamma <= 1): the reward and prior parts of that bound, per column
            fin = np.where(np.isfinite(r), np.abs(r), 0.0).max(0) / a
            lp_abs = 0.0 if lp is None else float(np.where(np.isfinite(lp), np.abs(lp), 0.0).max())
        self._cols = (key, (r, a, lp, fin + lp_abs))
        return self._cols[1]

    def _block_step(self, v_next: torch.Tensor, m, M, wsum, a, with_live: bool, out: Optional[torch.Tensor]):
        """Exact inference for a batch on sparse transitions: the rows ``(B, S)`` of the values
        against the block-diagonal operator (:meth:`_block_operator`); ``m``, ``wsum``: ``(B, S)``.

        Written into ``out``, a step also keeps ``z_t = exp(V_t / alpha - c_t)`` for the next one,
        formed without an ``exp``: ``V_t / alpha = log u + k + m`` (``u``, ``k``: the shifted sum
        of :meth:`_with_death`), so ``z_t = u e^(m - max m)`` (divided by its maximum unless that
        lies in ``[1, CHAIN_RESCALE_ABOVE]``) with ``c_t = k + max m`` (plus the log of that
        maximum); the values themselves come from ``u``. Chained only in float64, while ``m``
        spreads over less than :data:`CHAIN_SPREAD_NATS` per member and every entry of ``z_t``
        stays above the precision floor (else, and whenever ``V_{t+1}`` is not that output
        unchanged, ``z`` comes from ``V_{t+1}`` as in the class docstring); exact to rounding."""
        S, g = self.S, self.gamma
        b = v_next.shape[:-1]
        a = a[:, None]
        chain, self._chain = self._chain, None
        if chain is not None and chain[0] is v_next and chain[1] == v_next._version:
            z, c = chain[2], chain[3]
        else:
            x = np.divide(v_next.detach().numpy().reshape(-1, S), a)  # (B, S), a fresh array
            c = x.max(1, keepdims=True)                             # (B, 1)
            if not np.isfinite(c).all():
                return None
            x -= c
            z = np.exp(x, out=x)
        into = out is not None and not with_live
        # (into out: y, which becomes the next step's z, alternates between two kept buffers)
        yb = self._kept("y1" if z.base is self._bufs.get("y0") else "y0", (z.size, 1)) if into else None
        y = _np_matmul(M, z.reshape(-1, 1), out=yb).reshape(-1, S)     # (B, S) = M_b z_b
        if not y.min() > self.tiny:                             # (False for NaN too)
            return None
        live = None
        if with_live:
            live = (np.log(y) + (c + m + math.log(g))) * a
        if out is not None and not with_live:
            # the values straight into the output's (B, S) rows
            u, k = self._with_death(y, c, wsum)
            # the values from the sum itself, alpha (log u + k + m) (not from the chained z below,
            # whose entries may underflow where the values do not)
            V = np.log(u, out=out.view(-1, S).numpy())
            V += k
            V += m                                              # V_t / alpha
            em = self._chain_weights(m)
            if em is not None:
                # z_t = u e^(m - max m), c_t = k + max m: then z_t = exp(V_t / alpha - c_t), the
                # next step's z (rescaled by its maximum only when that leaves [1, CHAIN_RESCALE_ABOVE]:
                # a maximum of at least 1 leaves at least the headroom of z / max z below it, and
                # the next product cannot overflow below CHAIN_RESCALE_ABOVE)
                z = np.multiply(u, em[0], out=u)
                # (chained only while every entry keeps full precision: a subnormal z, rescaled
                # below, would pass the next starvation check with digits lost; else the next
                # step forms z from V_t with an exp, as an unchained step does)
                if z.min() > self.tiny:
                    zmax = z.max(1, keepdims=True)
                    c_next = k + em[1]
                    if not (zmax.min() >= 1.0 and zmax.max() <= CHAIN_RESCALE_ABOVE):
                        z /= zmax
                        c_next += np.log(zmax)
                    self._chain = (out, out._version, z, c_next)
            V *= a
            return out
        V = _values_from_sum(*self._with_death(y, c, wsum), m, a)
        V = torch.from_numpy(V.reshape(*b, S))
        if with_live:
            return V, torch.from_numpy(live.reshape(*b, S))
        return V

    def _chain_weights(self, m: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """``(e^(m - max m), max m)`` per member (``(B, S)``, ``(B, 1)``) for the chained ``z`` of
        :meth:`_block_step`, cached per weights; ``None`` where ``m`` spreads too far, and for
        float32 (whose range the constants do not fit: a float32 batch forms ``z`` with an exp)."""
        hit = self._em
        if hit is not None and hit[0] is m:
            return hit[1]
        mmax = m.max(1, keepdims=True)
        em = None
        # (float64 only: the constants below are sized for its range)
        if m.dtype == np.float64 and (m - mmax).min() > -CHAIN_SPREAD_NATS:
            em = (np.exp(m - mmax), mmax)
        self._em = (m, em)
        return em

    def _pack(self, V: np.ndarray, live: Optional[np.ndarray], b, with_live: bool, out: Optional[torch.Tensor] = None):
        """``(S, B)`` NumPy columns back to ``(*batch, S)`` tensors (written into ``out`` when given,
        and kept as the next step's columns, :meth:`_cols_of`)."""
        if out is not None and not with_live:
            nat = _columns_view(out, out.dim() - 1)         # (S, B): batch-last outputs, or None
            if nat is None:
                out.view(-1, self.S).copy_(torch.from_numpy(V).t())
            elif nat is not V:
                np.copyto(nat, V)
            self._prev_cols = (out, out._version, V if nat is None else nat)
            return out
        V = torch.from_numpy(np.ascontiguousarray(V.T).reshape(*b, self.S))
        if with_live:
            return V, (torch.from_numpy(np.ascontiguousarray(live.T).reshape(*b, self.S)) if live is not None else None)
        return V


#: Block indices of more than this many entries (``B`` times the entries of ``M``; 64 MiB of int32)
#: are rebuilt per solve rather than kept alive in :data:`_BLOCK_PATTERNS` after it.
BLOCK_CACHE_MAX_ENTRIES = 1 << 24
#: ``id(P) -> (weakref to P, P._version, {B: (G, block row pointers, block column indices)})``
#: (see :func:`_block_pattern`)
_BLOCK_PATTERNS: dict = {}


def _block_pattern(P_t: torch.Tensor, P, S: int, A: int, B: int):
    """The fixed part of :meth:`SoftValueStep._block_operator` for the CSR transitions ``P_t``
    (``P``: its SciPy view): ``G`` (a torch CSR ``(nnz M, S*A)`` tensor where MKL runs the
    products, else SciPy) and the row pointers and column indices of ``B`` diagonal blocks of
    ``M``'s sparsity. Kept per transition tensor (by identity, while it lives and its version
    counter has not moved) and batch size, so repeated batched solves of one MDP build them once."""
    import scipy.sparse as sp

    hit = _BLOCK_PATTERNS.get(id(P_t))
    if hit is None or hit[0]() is not P_t or hit[1] != P_t._version:
        if len(_BLOCK_PATTERNS) >= 16:
            _BLOCK_PATTERNS.clear()
        R1 = sp.csr_matrix((np.ones(S * A), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
        # the union of each state's stored entries, found on ones (a product of P itself would
        # drop an entry whose stored probabilities are all 0, and with it the index of those zeros)
        ones = sp.csr_matrix((np.ones(P.data.size), P.indices, P.indptr), shape=P.shape)
        pat = (R1 @ ones).tocsr()
        pat.sort_indices()
        rows_p = np.repeat(np.arange(S * A, dtype=np.int64), np.diff(P.indptr))
        keys = np.repeat(np.arange(S, dtype=np.int64), np.diff(pat.indptr)) * S + pat.indices
        k = np.searchsorted(keys, (rows_p // A) * S + P.indices)
        G = sp.csr_matrix((P.data, (k, rows_p)), shape=(pat.nnz, S * A))
        if MKL_SPARSE:
            G = torch.sparse_csr_tensor(torch.from_numpy(G.indptr), torch.from_numpy(G.indices),
                                        torch.from_numpy(G.data), size=G.shape, check_invariants=False)
        hit = _BLOCK_PATTERNS[id(P_t)] = (weakref.ref(P_t), P_t._version,
                                          {"pattern": (pat.indptr.astype(np.int64), pat.indices.astype(np.int64), G)})
    blocks = hit[2]
    if B not in blocks:
        indptr, indices, G = blocks["pattern"]
        n = indices.size
        idx = np.int32 if B * max(n, S) < 2 ** 31 else np.int64
        blk_ind = (indices[None, :] + S * np.arange(B)[:, None]).ravel().astype(idx)
        blk_ptr = np.concatenate([(indptr[:-1][None, :] + n * np.arange(B)[:, None]).ravel(), [B * n]]).astype(idx)
        if B * n > BLOCK_CACHE_MAX_ENTRIES:
            return G, blk_ptr, blk_ind              # too large to keep alive after the solve
        if len(blocks) > 8:
            blocks.clear()
            blocks["pattern"] = (indptr, indices, G)
        blocks[B] = (blk_ptr, blk_ind)
    return (blocks["pattern"][2], *blocks[B])


def _batch_last(b: tuple, rest: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised ``(*b, *rest)`` output stored as ``(*rest, B)`` with ``B = prod(b)``: the
    view with the batch axes in front (the last axis moved first, then split: no copy)."""
    buf = _empty((*rest, max(1, math.prod(b))), dtype)                  # (*rest, B)
    return buf.movedim(-1, 0).view(*b, *rest)


def _columns_view(o: torch.Tensor, n_b: int) -> Optional[np.ndarray]:
    """``o`` of shape ``(*b, *tail)`` (``n_b`` batch axes) as a contiguous ``(prod(tail), B)`` NumPy
    view when its memory is laid out so (the batch-last outputs of :meth:`SoftValueStep.outputs`),
    else ``None``."""
    x = o.detach().numpy()
    x = np.moveaxis(x, tuple(range(n_b)), tuple(range(x.ndim - n_b, x.ndim)))      # (*tail, *b)
    n = math.prod(x.shape[:x.ndim - n_b])
    try:
        x = np.reshape(x, (n, -1), copy=False)
    except ValueError:
        return None
    return x if x.flags.c_contiguous else None


def _values_from_sum(u: np.ndarray, shift, m, a, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``alpha (log u + shift + m)``, the values from a step's shifted sum ``u`` (overwritten,
    or written into ``out``)."""
    V = np.log(u, out=u if out is None else out)
    V += shift
    V += m
    V *= a
    return V


def _empty(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in NumPy's memory: NumPy asks the kernel for huge pages for
    arrays of 4 MiB or more (``madvise``), so the first write of a large output takes far fewer
    page faults than into a ``torch.empty`` of the same size (256 MiB: 8-13x faster, measured in
    ``benchmarks/bench_batch.py``; figures in ``benchmarks/README.md``)."""
    return torch.from_numpy(np.empty(shape, dtype=np.float64 if dtype == torch.float64 else np.float32))


def _np_matmul(M, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``M @ x`` for a NumPy matrix, a SciPy CSR or a CPU torch CSR tensor ``M`` and a NumPy
    ``(m, B)`` ``x``; into the C-contiguous ``out`` when given."""
    if isinstance(M, np.ndarray):
        # (a strided right-hand side leaves BLAS for a slow loop)
        return np.matmul(M, np.ascontiguousarray(x), out=out)
    if not isinstance(M, torch.Tensor):
        y = M @ x                             # SciPy CSR
        return y if out is None else np.copyto(out, y) or out
    return csr_product(M, x, out)


def _sum_actions(y: np.ndarray, S: int, A: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Sum the ``(S*A, B)`` rows of ``y`` over actions: ``(S, B)`` (into the C-contiguous ``out``
    when given, ``B > 1``)."""
    B = y.shape[1]
    if B == 1:
        # one column: a BLAS mat-vec with ones, faster than a reduction over a size-A axis
        return y.reshape(S, A) @ np.ones((A, 1), dtype=y.dtype)
    y3 = torch.from_numpy(y).view(S, A, B)
    o = None if out is None else torch.from_numpy(out)
    if B < 32 or not 2 <= A <= 8:
        # torch's reduction over the middle axis of (S, A, B) is about twice as fast as NumPy's
        return (y3.sum(1) if o is None else torch.sum(y3, 1, out=o)).numpy()
    # with many columns, A - 1 torch additions of (S, B) slices beat the reduction (~1.4x at
    # A = 4 and 64 columns: benchmarks/README.md)
    u = torch.add(y3[:, 0], y3[:, 1], out=o) if o is not None else torch.add(y3[:, 0], y3[:, 1])
    for k in range(2, A):
        u += y3[:, k]
    return u.numpy()
