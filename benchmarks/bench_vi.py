"""Value iteration that stops when it is done, against pymdptoolbox (issue 14, item 4).

1. Stationary, S = 1000, A = 4, gamma 0.9, Garnet MDPs (``cai.worlds.random_mdp``, dense and
   10 successors). pymdptoolbox's ``ValueIteration`` (epsilon 0.01) stops by its span rule; its
   values' true sup-norm error is measured against ``V*`` (``cai.policy_iteration``: exact policy
   evaluation by a linear solve, certified by its Bellman residual). ``cai.value_iteration`` then
   runs with ``tol`` set to that error (relative to ``max(1, max |V|)``), so it guarantees at least
   pymdptoolbox's accuracy, and at its default ``tol = 1e-10``; the policy iterations run too.
2. Finite horizon, a sparse open grid (300 x 300 = 90k states by default, horizon 50): hard
   backward induction, ``cai.value_iteration(keep="values")`` against pymdptoolbox's
   ``FiniteHorizon`` on the same SciPy CSR matrices.

Timings are medians of ``--repeats`` runs, cai and pymdptoolbox alternated in the same process,
single-threaded (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``: on a loaded 2-core machine
thread pools spin against other processes). If pymdptoolbox is not installed, the script says so
and measures cai alone.

Usage::

    python benchmarks/bench_vi.py              # S = 1000, a 300 x 300 grid
    python benchmarks/bench_vi.py --smoke      # S = 60, a 12 x 12 grid, one repeat (the test suite)
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

import cai  # noqa: E402
from cai.worlds.builders import gridworld, random_mdp  # noqa: E402

try:
    import mdptoolbox.mdp as pmt
    # pymdptoolbox's input check densifies a sparse row sum to (S, S) (60 GiB at S = 90k) and wants
    # rows to sum to 1 within 10 float64 epsilons (a dense random row normalised in float64 may
    # miss by more): skipped, for MDPs cai has validated (rows sum to 1 within 1e-6)
    pmt._util.check = lambda P, R: None
except ImportError:              # pragma: no cover - depends on the environment
    pmt = None


def _median_time(fn, repeats):
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def _pmt_arrays(mdp):
    """``(P list of A (S, S), R (S, A))`` for pymdptoolbox: CSR for sparse transitions."""
    S, A = mdp.n_states, mdp.n_actions
    R = mdp.rewards.numpy()
    if mdp.is_sparse:
        PM = mdp.transitions
        M = sp.csr_matrix((PM.values().numpy(), PM.col_indices().numpy(), PM.crow_indices().numpy()), shape=(S * A, S))
        return [M[a::A].tocsr() for a in range(A)], R
    P = mdp.transitions.numpy()
    return [np.ascontiguousarray(P[:, a, :]) for a in range(A)], R


def stationary(S, branching, repeats, seed=0):
    mdp = random_mdp(S, 4, branching, seed=seed, horizon=None, discount=0.9)
    star = cai.policy_iteration(mdp)
    v_star = star.V
    scale = max(1.0, v_star.abs().max().item())
    row = dict(S=S, branching=branching)
    if pmt is not None:
        P, R = _pmt_arrays(mdp)

        def run_pmt():
            vi = pmt.ValueIteration(P, R, 0.9, epsilon=0.01)
            vi.run()
            return vi
        t_p, vi = _median_time(run_pmt, repeats)
        err_p = float(np.abs(np.asarray(vi.V) - v_star.numpy()).max())
        row.update(t_pmt=t_p, it_pmt=vi.iter, err_pmt=err_p)
        tol = err_p / scale
    else:
        tol = 1e-2 / scale
    t_c, sol = _median_time(lambda: cai.value_iteration(mdp, tol=tol), repeats)
    t_d, dflt = _median_time(lambda: cai.value_iteration(mdp), repeats)
    t_pi, pi_sol = _median_time(lambda: cai.policy_iteration(mdp), repeats)
    t_mpi, mpi = _median_time(lambda: cai.modified_policy_iteration(mdp, tol=tol), repeats)
    row.update(tol=tol, t_cai=t_c, it_cai=sol.iterations, err_cai=float((sol.V - v_star).abs().max()),
               bound_cai=sol.error_bound, t_default=t_d, it_default=dflt.iterations,
               err_default=float((dflt.V - v_star).abs().max()), t_pi=t_pi, it_pi=pi_sol.iterations,
               t_mpi=t_mpi, it_mpi=mpi.iterations, err_mpi=float((mpi.V - v_star).abs().max()))
    assert row["err_cai"] <= tol * scale + 1e-12, row
    return row


def finite(n, horizon, repeats):
    mdp = gridworld("\n".join(["S" + "." * (n - 1)] + ["." * (n - 1) + "G"] + ["." * n] * (n - 2)),
                    horizon=horizon, sparse=True)
    row = dict(S=mdp.n_states, T=horizon)
    t_c, sol = _median_time(lambda: cai.value_iteration(mdp, keep="values"), repeats)
    row.update(t_cai=t_c)
    if pmt is not None:
        P, R = _pmt_arrays(mdp)
        R = np.where(np.isfinite(R), R, -1e300)          # pymdptoolbox has no -inf: forbidden actions priced out

        def run_pmt():
            fh = pmt.FiniteHorizon(P, R, 1.0, horizon, h=mdp.terminal_rewards.numpy())
            fh.run()
            return fh
        t_p, fh = _median_time(run_pmt, repeats)
        diff = float(np.abs(fh.V[:, 0] - sol.V[0].numpy()).max())
        row.update(t_pmt=t_p, diff=diff)
        assert diff < 1e-8, row
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--states", type=int, default=1000)
    ap.add_argument("--grid", type=int, default=300)
    ap.add_argument("--horizon", type=int, default=50)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.smoke:
        args.repeats, args.states, args.grid, args.horizon = 1, 60, 12, 10
    if pmt is None:
        print("pymdptoolbox is not installed: cai alone (pip install pymdptoolbox for the comparison)")
    print(f"stationary, S={args.states}, A=4, gamma=0.9, median of {args.repeats}")
    for br in (10, args.states):
        r = stationary(args.states, br, args.repeats)
        if "t_pmt" in r:
            print(f"  branching {br:>5}: pymdptoolbox VI {r['it_pmt']:>3} it {1e3 * r['t_pmt']:8.2f} ms, "
                  f"error {r['err_pmt']:.2e} | cai VI at that accuracy {r['it_cai']:>3} it {1e3 * r['t_cai']:8.2f} ms, "
                  f"error {r['err_cai']:.2e} (bound {r['bound_cai']:.2e}), ratio {r['t_pmt'] / r['t_cai']:5.2f}x | "
                  f"cai VI tol 1e-10 {r['it_default']:>3} it {1e3 * r['t_default']:8.2f} ms error {r['err_default']:.1e} | "
                  f"PI {r['it_pi']} it {1e3 * r['t_pi']:7.2f} ms | MPI {r['it_mpi']} it {1e3 * r['t_mpi']:7.2f} ms", flush=True)
        else:
            print(f"  branching {br:>5}: cai VI {r['it_cai']} it {1e3 * r['t_cai']:.2f} ms", flush=True)
    r = finite(args.grid, args.horizon, args.repeats)
    msg = f"finite horizon, grid S={r['S']}, T={r['T']}: cai VI (keep='values') {1e3 * r['t_cai']:8.1f} ms"
    if "t_pmt" in r:
        msg += (f" | pymdptoolbox FiniteHorizon {1e3 * r['t_pmt']:8.1f} ms | ratio {r['t_pmt'] / r['t_cai']:5.2f}x | "
                f"max |V_0 diff| {r['diff']:.1e}")
    print(msg, flush=True)


if __name__ == "__main__":
    main()
