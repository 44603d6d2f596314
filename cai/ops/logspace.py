"""Log-space linear algebra that is safe at ``-inf`` and at extreme scales.

The one kernel every backup needs is ``log(M @ exp(X))`` for a non-negative matrix ``M``
(the transitions, or their transpose) and log-space columns ``X``. The fast route shifts each
column of ``X`` by its maximum and calls an ordinary (dense or sparse) matrix product, which runs
at memory bandwidth. Where a row's result is so small that the product lost precision (all of
its reachable entries lie far below the column maximum, e.g. rewards of 1e4 at alpha 1e-3),
the row is recomputed exactly as ``logsumexp_j(log M_ij + X_jb)``. No ``-1e5`` sentinels: rows
with no mass give exactly ``-inf`` and their gradients are zero, not NaN.
"""
from __future__ import annotations

import math
import warnings
import weakref
from typing import TYPE_CHECKING, Callable, Optional, Union

import numpy as np
import torch

if TYPE_CHECKING:
    import scipy.sparse

__all__ = ["matmul", "csr_product", "scipy_csr", "log_matmul_exp", "logsumexp", "transpose_csr", "exp_", "log_", "precision_floor",
           "MAX_BANDS", "SLAB_MARGIN_NATS", "MIN_SLAB_WIDTH_NATS", "SLAB_ROW_FRACTION", "EXACT_ROWS_CHUNK"]

#: Nats kept between a slab's smallest product term and :func:`precision_floor`, so that the
#: rounding of up to ``m`` summed terms (relative ``m * eps``) cannot reach the floor: ``e^-10 ~ 5e-5``.
SLAB_MARGIN_NATS = 10.0
#: A slab narrower than this many nats (``M`` has entries within ``e^30`` of the floor) covers so
#: little of a spread that :data:`MAX_BANDS` slabs reach only ``~240`` nats: then no slabs.
MIN_SLAB_WIDTH_NATS = 20.0
#: Slabs run when at least ``1 / SLAB_ROW_FRACTION`` of the rows underflow: each slab is a whole
#: product over all rows, while the term-by-term route costs in proportion to the starved rows'
#: entries only (the break-even measured by ``benchmarks/bench_low_temperature.py``).
SLAB_ROW_FRACTION = 8
#: Elements of one ``(rows, m, B)`` temporary of the dense term-by-term route: ``2**24`` float64
#: values are 128 MiB, which bounds its memory whatever ``n * m * B``.
EXACT_ROWS_CHUNK = 2 ** 24


def precision_floor(dtype: torch.dtype) -> float:
    """``tiny / eps`` of ``dtype``: a sum at least this large has every term that matters to it
    (those above ``eps`` times the sum) in the normal range, so it keeps full relative precision.

    Args:
        dtype: a floating dtype.

    Returns:
        The floor (about ``1e-292`` for float64, ``1e-31`` for float32).
    """
    info = torch.finfo(dtype)
    return info.tiny / info.eps


def _is_sparse(M: torch.Tensor) -> bool:
    return M.layout != torch.strided


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd will record an operation on any of ``tensors``."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _numpy_view(t: torch.Tensor):
    """A NumPy view of ``t`` when it may be computed on in place (CPU, float, no autograd)."""
    if t.device.type == "cpu" and t.dtype in (torch.float64, torch.float32) and not t.requires_grad \
            and not (t.is_conj() or t.is_neg()):
        return t.numpy()
    return None


def exp_(t: torch.Tensor) -> torch.Tensor:
    """In-place ``exp`` (no autograd). On CPU through NumPy, whose float64 ``exp`` and ``log``
    measured faster than torch's (``benchmarks/README.md``)."""
    a = _numpy_view(t)
    if a is None:
        return t.exp_()
    np.exp(a, out=a)
    return t


def log_(t: torch.Tensor) -> torch.Tensor:
    """In-place ``log`` (no autograd), through NumPy on CPU (see :func:`exp_`)."""
    a = _numpy_view(t)
    if a is None:
        return t.log_()
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(a, out=a)
    return t


#: Whether torch's CPU sparse products run on MKL (the x86 wheels). There ``addmm(..., out=)``
#: of a CSR matrix and a block of columns ran 4-6x faster than SciPy's CSR product on one thread,
#: and ``mv(..., out=)`` faster than SciPy's mat-vec (a 50x50 grid; ``benchmarks/README.md``);
#: torch's own allocating ``sparse.mm`` / ``@`` was slower than both. Elsewhere SciPy's runs.
MKL_SPARSE = torch.backends.mkl.is_available()
#: Below this many stored entries a one-column product runs on SciPy even with MKL: its per-call
#: cost is lower (S = 101 and 485 grids, 4 actions: 3.2 vs 4.7 and 5.8 vs 6.6 us), while at
#: 40k entries the two are level and the 640k of a batched block operator favour MKL (213 vs 281 us).
MKL_MV_MIN_NNZ = 1 << 16


def csr_product(M: torch.Tensor, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``M @ x`` for a CPU sparse CSR tensor ``M`` and NumPy columns: the one home of the CPU
    sparse product (no autograd).

    Args:
        M: sparse CSR ``(n, m)`` on the CPU, float64 or float32.
        x: NumPy ``(m, B)`` (any strides) of ``M``'s dtype.
        out: optional C-contiguous NumPy ``(n, B)`` of that dtype, overwritten (never read).

    Returns:
        ``(n, B)`` NumPy: ``out`` when given, else a fresh array.
    """
    n, B = M.shape[0], x.shape[1]
    if not MKL_SPARSE or (B == 1 and M._nnz() < MKL_MV_MIN_NNZ):
        # (one column of a small matrix: SciPy's mat-vec has the lower per-call cost)
        y = scipy_csr(M) @ (x[:, 0] if B == 1 else x)
        if out is None:
            return y.reshape(n, B)
        np.copyto(out, y.reshape(n, B))
        return out
    if out is None:
        out = np.empty((n, B), dtype=x.dtype)
    o = torch.from_numpy(out)
    if B == 1:
        torch.mv(M, torch.from_numpy(np.ascontiguousarray(x[:, 0])), out=o.view(-1))
    else:
        # beta = 0: MKL overwrites out without reading it (garbage or NaN there cannot leak in)
        torch.addmm(o, M, torch.from_numpy(x), beta=0, out=o)
    return out


def matmul(M: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``M @ X`` for a dense or sparse CSR ``M`` of shape ``(n, m)`` and dense ``X`` ``(m, B)``."""
    if _is_sparse(M):
        if M.device.type == "cpu" and M.dtype == X.dtype and not needs_grad(M, X):
            # the CPU sparse product (:func:`csr_product`): MKL where torch has it, else SciPy's
            # CSR product on a view of M's arrays, ~10x faster than ``torch.sparse.mm`` on one
            # thread with a block of columns (benchmarks/README.md)
            return torch.from_numpy(csr_product(M, X.detach().numpy()))
        if X.shape[1] == 1:
            # a CSR mat-vec is faster than ``sparse.mm`` with a single column
            return torch.mv(M, X[:, 0]).unsqueeze(1)
        return torch.sparse.mm(M, X)
    if M.device.type == "cpu" and M.dtype == X.dtype and not needs_grad(M, X) and not (M.is_conj() or M.is_neg()):
        # NumPy's BLAS (OpenBLAS) ran float64 mat-vecs faster than the MKL bundled with CPU torch
        # wheels on the AMD machines measured (benchmarks/README.md); both views share memory (no copies)
        # (X must be contiguous: NumPy falls back to a slow non-BLAS loop for odd strides)
        return torch.from_numpy(np.matmul(M.numpy(), X.contiguous().numpy()))
    return M @ X


def scipy_csr(M: torch.Tensor) -> scipy.sparse.csr_matrix:
    """A SciPy CSR matrix viewing the arrays of a CPU torch CSR tensor ``M`` (no copy of the
    values; SciPy may narrow int64 indices to int32).

    Args:
        M: a sparse CSR tensor on the CPU, ``(n, m)``.

    Returns:
        ``scipy.sparse.csr_matrix`` of shape ``(n, m)``.
    """
    import scipy.sparse as sp

    # building the view costs more than a small product (SciPy's checks), so views are kept per
    # tensor (by identity, while it lives, and as long as its version counter has not moved)
    hit = _SCIPY_VIEWS.get(id(M))
    if hit is not None and hit[0]() is M and hit[1] == M._version:
        return hit[2]
    csr = sp.csr_matrix((M.values().detach().numpy(), M.col_indices().numpy(), M.crow_indices().numpy()),
                        shape=tuple(M.shape))
    if len(_SCIPY_VIEWS) >= 64:
        _SCIPY_VIEWS.clear()
    _SCIPY_VIEWS[id(M)] = (weakref.ref(M), M._version, csr)
    return csr


#: ``id(M) -> (weakref to M, M._version, SciPy view)`` (see :func:`scipy_csr`)
_SCIPY_VIEWS: dict = {}


def transpose_csr(M: torch.Tensor) -> torch.Tensor:
    """The transpose of a sparse CSR matrix, again in CSR layout (dense: a view)."""
    if _is_sparse(M):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            return M.t().to_sparse_csr()
    return M.t()


def logsumexp(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``log sum exp`` along ``dim`` that returns ``-inf`` (with zero gradient) for all-``-inf`` slices.

    ``torch.logsumexp`` already returns ``-inf`` there, but its gradient is NaN; this version
    shifts by a finite maximum so the backward pass stays finite.
    """
    m = x.detach().amax(dim, keepdim=True)
    m = m.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)       # a finite shift (0 where none is)
    if not needs_grad(x):
        # the same numbers in fewer passes: one temporary, and log(0) = -inf directly (the
        # ``where``s below only matter for the gradient; NaN sums still give -inf as there)
        s = exp_(torch.sub(x, m)).sum(dim, keepdim=True)
        return log_(s.nan_to_num_(nan=0.0, posinf=math.inf)).add_(m).squeeze(dim)
    s = torch.exp(x - m).sum(dim, keepdim=True)
    ok = s > 0
    out = torch.where(ok, torch.log(torch.where(ok, s, torch.ones_like(s))) + m,
                      torch.full_like(s, -float("inf")))
    return out.squeeze(dim)


def _exact_rows(M: torch.Tensor, X: torch.Tensor, rows: torch.Tensor, chunk: int = EXACT_ROWS_CHUNK) -> torch.Tensor:
    """Exact ``logsumexp_j(log M[r, j] + X[j, :])`` for the rows ``r`` in ``rows``: ``(k, B)``."""
    B = X.shape[1]
    if _is_sparse(M):
        crow, col, val = M.crow_indices().long(), M.col_indices(), M.values()
        # the entries of the selected rows only (work in proportion to them, not to nnz)
        starts, lens = crow[rows], crow[rows + 1] - crow[rows]
        seg = torch.repeat_interleave(torch.arange(rows.numel(), device=val.device), lens)   # entry -> 0..k-1
        first = torch.cumsum(lens, 0) - lens
        ent = torch.arange(seg.numel(), device=val.device) - first[seg] + starts[seg]
        c_sel, v_sel = col[ent], val[ent]
        terms = torch.log(v_sel).unsqueeze(-1) + X[c_sel]  # (nnz_sel, B)
        terms = torch.where(v_sel.unsqueeze(-1) > 0, terms, torch.full_like(terms, -float("inf")))
        idx = seg.unsqueeze(-1).expand(-1, B)
        mx = torch.full((rows.numel(), B), -float("inf"), dtype=X.dtype, device=X.device)
        mx = mx.scatter_reduce(0, idx, terms.detach(), reduce="amax", include_self=True)
        mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
        s = torch.zeros((rows.numel(), B), dtype=X.dtype, device=X.device)
        s = s.index_add(0, seg, torch.exp(terms - mx[seg]))
        ok = s > 0
        return torch.where(ok, torch.log(torch.where(ok, s, torch.ones_like(s))) + mx,
                           torch.full_like(s, -float("inf")))
    logM = torch.log(M[rows])  # (k, m); log 0 = -inf
    per = max(1, chunk // max(1, logM.shape[1] * B))
    outs = [logsumexp(logM[i:i + per].unsqueeze(-1) + X.unsqueeze(0), dim=1) for i in range(0, logM.shape[0], per)]
    return torch.cat(outs, 0)


#: At most this many slabs (see :func:`log_matmul_exp`) before the term-by-term fallback: with
#: ``~650``-nat float64 slabs a spread of ``~7800`` nats, and a cost bound known before any product.
MAX_BANDS = 12


def log_matmul_exp(M: torch.Tensor, X: torch.Tensor,
                   min_entry: Optional[Union[float, Callable[[], float]]] = None) -> torch.Tensor:
    """Numerically stable ``log(M @ exp(X))``.

    One product ``M @ exp(X - c)`` with ``c`` the column maximum serves every row whose result
    stays well above the dtype's smallest normal number. Rows that fall below it (all their mass
    lies far under ``c``: low temperatures, a trap). When they are at least an eighth of the rows,
    they are recomputed from *slabs*: the entries of ``X`` are split by level into slabs of width
    ``w`` below ``c``, one product per slab, each shifted by its own top, and the slabs are summed
    in log space. As no entry of ``M`` is below ``min_entry``, ``w`` is chosen so that no product
    term can underflow (``w`` is about 660 nats for ``min_entry = 1``, less for smaller entries),
    and the slabs stop once what lies below them is under ``eps`` of every such row's sum: the
    result is exact to rounding. Fewer rows, no ``min_entry``, or values spread over more than
    :data:`MAX_BANDS` slabs (a cost bound known before any product): those rows are computed
    term by term.

    Args:
        M: non-negative matrix ``(n, m)``, dense or sparse CSR.
        X: log-space values ``(m, B)``; entries may be ``-inf``.
        min_entry: a lower bound on ``M``'s positive entries (e.g.
            :attr:`cai.TabularMDP.min_positive_probability`), which enables the bands; or a
            function returning it, called only if some row underflows.

    Returns:
        ``(n, B)``: ``log sum_j M[i, j] exp(X[j, b])``; ``-inf`` for rows with no mass.
    """
    c = X.detach().amax(0, keepdim=True)                       # (1, B) column shift
    c = c.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)         # finite (0 where none is)
    tiny = precision_floor(X.dtype)
    if not needs_grad(M, X):
        # no autograd: one allocation per pass, in place, and one reduction to test all rows
        Y = matmul(M, exp_(torch.sub(X, c)))                   # (n, B), at memory bandwidth
        if Y.numel() == 0 or bool(Y.amin() > tiny):
            return log_(Y).add_(c)
    else:
        Y = matmul(M, torch.exp(X - c))
    ok = tiny < Y
    out = torch.log(torch.where(ok, Y, torch.ones_like(Y))) + c
    if bool(ok.all()):
        return out
    bad = ~ok.all(1)                                           # rows to recompute, all columns
    banded = None
    if min_entry is not None and SLAB_ROW_FRACTION * int(bad.sum()) >= bad.numel():
        # slabs cost whole products; for a few rows the term-by-term route is cheaper
        banded = _banded(M, X, c, min_entry() if callable(min_entry) else min_entry, bad)
    if banded is not None:
        return torch.where(bad.unsqueeze(1), banded, out)
    rows = bad.nonzero().squeeze(1)
    exact = _exact_rows(M, X, rows)
    out = out.index_put((rows,), torch.where(ok[rows], out[rows], exact))
    return out


def _banded(M: torch.Tensor, X: torch.Tensor, c: torch.Tensor, min_entry: float, rows: torch.Tensor):
    """``log(M @ exp(X))`` summed over slabs of ``X`` (see :func:`log_matmul_exp`), or ``None``
    if covering ``X`` could take more than :data:`MAX_BANDS` slabs. The slabs stop early once
    the rows in the mask ``rows`` have all their mass."""
    info = torch.finfo(X.dtype)
    # the widest slab whose terms M_ij exp(X_j - top) >= min_entry e^-w stay normal, with margin
    w = math.log(min_entry) - math.log(precision_floor(X.dtype)) - SLAB_MARGIN_NATS
    if not w > MIN_SLAB_WIDTH_NATS:
        return None
    Xd = X.detach()
    lo = torch.where(torch.isfinite(Xd), Xd, torch.full_like(Xd, math.inf)).amin(0, keepdim=True)
    finite_lo = torch.where(torch.isfinite(lo), lo, c)
    if float((c - finite_lo).amax()) >= MAX_BANDS * w:
        return None            # covering every entry could take more slabs than allowed: bail out early
    ones = torch.ones(M.shape[1], 1, dtype=X.dtype, device=X.device)
    log_rowsum = torch.log(matmul(M, ones).detach())          # (n, 1): the mass below a slab
    neg_inf = torch.full((), -math.inf, dtype=X.dtype, device=X.device)
    grad = needs_grad(M, X)
    terms, top, acc = [], c, None
    for b in range(MAX_BANDS):
        bottom = top - w
        inband = Xd > bottom if b == 0 else (Xd > bottom) & (Xd <= top)
        shifted = torch.where(inband, X - top, neg_inf)
        Yb = matmul(M, torch.exp(shifted) if grad else exp_(shifted))
        if grad:
            pos = Yb > 0
            term = torch.where(pos, torch.log(torch.where(pos, Yb, torch.ones_like(Yb))) + top, neg_inf)
        else:
            term = log_(Yb).add_(top)                          # log 0 = -inf
        terms.append(term)
        if bool((bottom < lo).all()):
            break                                              # every finite entry is in a slab (> bottom)
        acc = term.detach() if acc is None else torch.logaddexp(acc, term.detach())
        # done where all that lies below the slab, at most rowsum * e^bottom, is under eps * sum
        if bool((acc >= log_rowsum + bottom - math.log(info.eps))[rows].all()):
            break
        top = bottom
    else:
        return None
    if len(terms) == 1:
        return terms[0]
    return logsumexp(torch.stack(terms), 0)
