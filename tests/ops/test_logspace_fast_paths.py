"""The no-autograd fast paths of :mod:`cai.ops.logspace` give the same numbers as the autograd paths.

``log_matmul_exp`` and ``logsumexp`` take a shorter route (in-place passes, one reduction to test
for underflow, ``torch.logsumexp``, a CSR mat-vec) when autograd is off; both routes are checked
against a brute-force ``logsumexp_j(log M_ij + X_jb)`` on dense ``log M``, including the rows that
underflow in the shifted product, rows with no mass and ``-inf`` inputs.
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from cai.ops.logspace import log_matmul_exp, logsumexp, matmul

NEG_INF = -math.inf

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def _brute(M: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """``log sum_j M[i, j] exp(X[j, b])`` by ``torch.logsumexp`` over the dense ``(n, m, B)`` terms."""
    Md = M.to_dense() if M.layout != torch.strided else M
    return torch.logsumexp(torch.log(Md).unsqueeze(-1) + X.unsqueeze(0), dim=1)


def _csr(M: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return M.to_sparse_csr()


def _cases():
    g = torch.Generator().manual_seed(0)
    n, m = 12, 9
    M = torch.rand(n, m, generator=g, dtype=torch.float64) * (torch.rand(n, m, generator=g) < 0.5)
    M[:, 0] += 0.1
    M[5] = 0.0                                               # a row with no mass: -inf
    M[7] = 0.0
    M[7, 3] = 0.4                                            # reaches only state 3
    X = 5 * torch.randn(m, 3, generator=g, dtype=torch.float64)
    X[3, 0] = -1e4                                           # row 7, column 0 underflows after the shift
    X[2, 1] = NEG_INF                                        # -inf entries
    X[:, 2] = NEG_INF                                        # an all -inf column
    X[3, 2] = -2e4
    Ms = _csr(M)
    yield "dense", M, X
    yield "sparse", Ms, X
    yield "dense-1col", M, X[:, :1].contiguous()
    yield "sparse-1col", Ms, X[:, :1].contiguous()


@pytest.mark.parametrize("name,M,X", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_log_matmul_exp_fast_and_autograd_paths_match_brute_force(name, M, X):
    ref = _brute(M, X)
    with torch.no_grad():
        fast = log_matmul_exp(M, X)
    Xg = X.clone().requires_grad_(True)
    slow = log_matmul_exp(M, Xg)
    for out in (fast, slow.detach()):
        assert out.shape == ref.shape
        assert torch.equal(torch.isneginf(out), torch.isneginf(ref))
        fin = torch.isfinite(ref)
        torch.testing.assert_close(out[fin], ref[fin], rtol=1e-12, atol=1e-12)
    assert torch.isneginf(fast[5]).all()                     # the empty row
    assert fast[7, 0].item() == pytest.approx(math.log(0.4) - 1e4, rel=1e-14)  # exact fallback row


def test_log_matmul_exp_fast_path_does_not_modify_inputs():
    M = torch.rand(6, 4, dtype=torch.float64)
    X = torch.randn(4, 2, dtype=torch.float64)
    M0, X0 = M.clone(), X.clone()
    with torch.no_grad():
        log_matmul_exp(M, X)
        log_matmul_exp(M.to_sparse_csr(), X[:, :1])
    assert torch.equal(M, M0) and torch.equal(X, X0)


def test_logsumexp_fast_path_matches_autograd_path():
    x = torch.tensor([[0.0, 1.0, NEG_INF], [NEG_INF, NEG_INF, NEG_INF], [1e4, -1e4, 3.0]], dtype=torch.float64)
    with torch.no_grad():
        fast = logsumexp(x, -1)
    xg = x.clone().requires_grad_(True)
    slow = logsumexp(xg, -1)
    # row 0: log(1 + e); row 1: no mass; row 2: 1e4 + log(1 + e^-2e4 + e^(3-1e4)) = 1e4 in float64
    expected = torch.tensor([math.log(1 + math.e), NEG_INF, 1e4], dtype=torch.float64)
    torch.testing.assert_close(fast, expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(slow.detach(), expected, rtol=1e-15, atol=0)
    slow[torch.isfinite(slow)].sum().backward()
    assert torch.isfinite(xg.grad).all()                     # the all -inf row has zero, not NaN, gradient


def test_sparse_matmul_one_column_matches_dense():
    g = torch.Generator().manual_seed(1)
    M = torch.rand(10, 7, generator=g, dtype=torch.float64) * (torch.rand(10, 7, generator=g) < 0.4)
    X = torch.randn(7, 3, generator=g, dtype=torch.float64)
    Ms = M.to_sparse_csr()
    torch.testing.assert_close(matmul(Ms, X[:, :1]), M @ X[:, :1], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(matmul(Ms, X), M @ X, rtol=1e-14, atol=1e-14)
    # autograd flows through the one-column route
    x = X[:, :1].clone().requires_grad_(True)
    matmul(Ms, x).sum().backward()
    torch.testing.assert_close(x.grad, M.sum(0, keepdim=True).t(), rtol=1e-14, atol=1e-14)


def _spread_case(seed: int, n: int = 30, m: int = 25, B: int = 2, spread: float = 3000.0):
    """Entries of X spread uniformly over ``spread`` nats: with one shift, most rows underflow."""
    g = torch.Generator().manual_seed(seed)
    M = torch.rand(n, m, generator=g, dtype=torch.float64) * (torch.rand(n, m, generator=g) < 0.12)
    M[0, 0] += 1e-3                                          # one row reaches entry 0 (the top)
    M[3] = 0.0                                               # no mass
    X = -spread * torch.rand(m, B, generator=g, dtype=torch.float64)
    X[0] = 0.0
    X[5, 0] = NEG_INF
    return M, X


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("spread", [2500.0, 6500.0])
def test_banded_rows_match_brute_force(sparse, spread):
    M, X = _spread_case(int(spread), spread=spread)
    ref = _brute(M, X)
    Mx = _csr(M) if sparse else M
    min_entry = M[M > 0].min().item()
    import cai.ops.logspace as ls
    calls = {"exact": 0}
    orig = ls._exact_rows

    def spy(*a, **k):
        calls["exact"] += 1
        return orig(*a, **k)

    ls._exact_rows = spy
    try:
        with torch.no_grad():
            fast = log_matmul_exp(Mx, X, min_entry)
        Xg = X.clone().requires_grad_(True)
        slow = log_matmul_exp(Mx, Xg, min_entry)
    finally:
        ls._exact_rows = orig
    assert calls["exact"] == 0                               # the bands covered every row
    for out in (fast, slow.detach()):
        assert torch.equal(torch.isneginf(out), torch.isneginf(ref))
        fin = torch.isfinite(ref)
        torch.testing.assert_close(out[fin], ref[fin], rtol=1e-13, atol=1e-13 * spread)
    # the gradient is the softmax weight of each term: d/dX_j = sum_i M_ij e^{X_j - out_i} (for finite rows)
    fin_rows = torch.isfinite(ref).all(1)
    slow[fin_rows].sum().backward()
    logM = torch.log(M[fin_rows]).unsqueeze(-1)              # -inf where M is 0
    w = torch.exp(logM + X.unsqueeze(0) - ref[fin_rows].unsqueeze(1))
    torch.testing.assert_close(Xg.grad, w.sum(0), rtol=1e-10, atol=1e-12)


def test_bands_give_way_to_the_exact_rows(monkeypatch):
    """Beyond MAX_BANDS slabs, or without a usable minimum entry, rows are computed term by term."""
    import cai.ops.logspace as ls

    calls = {"exact": 0}
    orig = ls._exact_rows

    def spy(*a, **k):
        calls["exact"] += 1
        return orig(*a, **k)

    monkeypatch.setattr(ls, "_exact_rows", spy)
    M, X = _spread_case(1, spread=2e5)
    ref = _brute(M, X)
    for min_entry in (M[M > 0].min().item(), 1e-290, None):
        before = calls["exact"]
        with torch.no_grad():
            out = log_matmul_exp(M, X, min_entry)
        assert calls["exact"] == before + 1
        fin = torch.isfinite(ref)
        torch.testing.assert_close(out[fin], ref[fin], rtol=1e-13, atol=1e-13 * 2e5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_entries_on_slab_edges_are_counted_once(dtype):
    """Entries exactly at ``c - w`` and ``c - 2w`` (slab edges, slabs are ``(bottom, top]``): a row
    whose only mass sits on the lowest edge must get it, and no entry may count twice."""
    info = torch.finfo(dtype)
    min_entry = 0.5
    w = math.log(min_entry) - math.log(info.tiny / info.eps) - 10.0   # the kernel's slab width
    M = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]], dtype=torch.float64)
    X = torch.tensor([[0.0], [-w], [-2 * w]], dtype=torch.float64)
    ref = _brute(M, X)                                       # float64 reference
    with torch.no_grad():
        out = log_matmul_exp(M.to(dtype), X.to(dtype), min_entry)
    assert torch.isfinite(out).all()
    rtol = 1e-13 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=0)


@pytest.mark.parametrize("mkl", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("index", [torch.int32, torch.int64])
def test_csr_product_matches_scipy(monkeypatch, mkl, dtype, index):
    """:func:`cai.ops.logspace.csr_product` (MKL's ``addmm``/``mv`` into ``out``, or SciPy's
    product) equals SciPy's CSR product entry by entry, for one column, a few and many, strided
    right-hand sides, and an ``out`` full of NaN (never read); and so does the SciPy mat-vec that
    serves one column of a small matrix under MKL."""
    import numpy as np
    import scipy.sparse as sp

    import cai.ops.logspace as ls

    if mkl and not torch.backends.mkl.is_available():
        pytest.skip("torch was built without MKL: only the SciPy route runs here")
    monkeypatch.setattr(ls, "MKL_SPARSE", mkl)
    monkeypatch.setattr(ls, "MKL_MV_MIN_NNZ", 0)               # one column on MKL too (small M)
    rng = np.random.default_rng(3)
    A = sp.random(40, 30, density=0.15, random_state=4, format="csr")
    A.data = A.data.astype(np.float64)
    M = torch.sparse_csr_tensor(torch.from_numpy(A.indptr).to(index), torch.from_numpy(A.indices).to(index),
                                torch.from_numpy(A.data).to(dtype), size=A.shape, check_invariants=True)
    tol = 1e-14 if dtype == torch.float64 else 1e-5
    npd = np.float64 if dtype == torch.float64 else np.float32
    for B in (1, 3, 40):
        x = rng.standard_normal((B, 30)).astype(npd).T             # (30, B), strided for B > 1
        want = A.astype(np.float64) @ x.astype(np.float64)
        got = ls.csr_product(M, x)
        assert got.shape == (40, B) and got.dtype == npd
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        out = np.full((40, B), np.nan, dtype=npd)
        assert ls.csr_product(M, x, out=out) is out
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)
    monkeypatch.setattr(ls, "MKL_MV_MIN_NNZ", 1 << 30)
    x = rng.standard_normal((30, 1)).astype(npd)
    np.testing.assert_allclose(ls.csr_product(M, x, out=np.full((40, 1), np.nan, dtype=npd)),
                               A.astype(np.float64) @ x.astype(np.float64), rtol=tol, atol=tol)
