"""Time cai's soft Bellman backup against a plain NumPy/SciPy backup, and against memory bandwidth.

What is timed, on the same transitions, in the same process:

* one backup ``V_{t+1} -> V_t`` in both modes (``"exact"``: ``Q = r + alpha log sum_s' P exp(V/alpha)``;
  ``"expected"``: ``Q = r + sum_s' P V``; then ``V = alpha log sum_a exp(Q/alpha)``), as a solve
  that keeps the values runs it: :class:`cai.ops.values_step.SoftValueStep`, whose weights (and, for
  exact dense, the action-marginalised operator ``M``) are built once per solve; that build is
  timed separately and is inside the whole-solve times;
* the general backup that also forms ``Q_t`` and the policy (:func:`cai.ops.backup.q_backup` then
  :func:`cai.ops.backup.soft_max`), as a solve with ``keep="all"`` runs it;
* the same backup written directly in NumPy (dense: ``P.reshape(S*A, S) @ exp(V/alpha - max)``
  and a hand-written logsumexp over actions) or SciPy (sparse: CSR ``@`` vector);
* the bare matrix-vector product over the same transitions (NumPy/SciPy and torch);
* a whole finite-horizon solve (:func:`cai.backward_messages`, :func:`cai.soft_value_iteration`
  with ``keep="values"``) against a NumPy loop of the same ``T`` backups;
* the machine's memory read bandwidth, measured here as the best of a NumPy sum, a torch sum and
  a BLAS dot product (NumPy and torch) over a large float64 array (default 1 GiB).

Worlds: dense random MDPs ``(S, 4, S)`` with full support, and a sparse 4-action gridworld
(an open ``N x N`` layout, ``slip=0.1``, built with :func:`cai.worlds.builders.gridworld`).

Before any timing the script asserts that cai and the reference agree (relative 1e-10).
Timings interleave the variants repeat by repeat (so a busy machine slows all of them alike;
``--blocked`` times each in its own block instead) and report the median. Run ``python benchmarks/bench_backup.py --help`` for the options;
``--quick`` is a few-second smoke run (used by the tests).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _threads import apply_thread_env  # noqa: E402

if __name__ == "__main__":
    apply_thread_env(sys.argv)     # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

# make `import cai` work when run from a checkout without installation
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import cai  # noqa: E402
from cai.ops.backup import EXPECTATION, LOG_EXPECTATION, q_backup, soft_max  # noqa: E402
from cai.ops.logspace import matmul  # noqa: E402
from cai.ops.values_step import SoftValueStep  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402

# the benchmark's labels for the two backups (the keys of its results and the "mode" column of
# its tables), and the successor mode of cai's kernel each one runs
EXACT, EXPECTED = "exact", "expected"
SUCCESSOR = {EXACT: LOG_EXPECTATION, EXPECTED: EXPECTATION}

A = 4
RTOL = 1e-10


# ---------------------------------------------------------------------------------------------
# timing helpers

BLOCKED = False   # set by --blocked


RAW: Dict[str, List[float]] = {}   # the per-repeat times of the last time_interleaved call


def time_interleaved(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> Dict[str, float]:
    """Median wall time (seconds) of each function, running them in turn within each repeat
    (the per-repeat times are left in ``RAW``).

    With ``BLOCKED`` each function instead runs all its repeats in one block, after a short pause:
    with several threads per library, a pool that has just run (OpenBLAS, OpenMP) keeps spinning
    for a while and slows whichever library runs next on a machine with few cores.
    """
    if BLOCKED:
        out = {}
        for k, f in fns.items():
            time.sleep(0.2)
            out.update(_time_in_turn({k: f}, repeats, warmup))
        return out
    return _time_in_turn(fns, repeats, warmup)


def _time_in_turn(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int) -> Dict[str, float]:
    for _ in range(warmup):
        for f in fns.values():
            f()
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    RAW.update(times)
    return {k: float(np.median(v)) for k, v in times.items()}


def paired_ratio(num: str, den: str) -> List[float]:
    """Quartiles (25%, 50%, 75%) of the repeat-by-repeat ratio ``num / den`` from ``RAW``: with
    interleaved timing both ran back to back in each repeat, so the spread of the ratio is the
    noise of the comparison itself."""
    r = np.asarray(RAW[num]) / np.asarray(RAW[den])
    return [float(q) for q in np.quantile(r, [0.25, 0.5, 0.75])]


def memory_bandwidth(nbytes: int, repeats: int) -> Dict[str, float]:
    """Read bandwidth (bytes/s) over a float64 array of ``nbytes``: NumPy sum, torch sum, BLAS dot.

    ``x @ x`` (BLAS ``ddot``) reads ``x`` once per call, like a mat-vec reads its matrix.
    """
    x = np.ones(nbytes // 8)
    xt = torch.from_numpy(x)
    t = time_interleaved({"numpy_sum": lambda: x.sum(), "torch_sum": lambda: xt.sum(),
                          "numpy_dot": lambda: x @ x, "torch_dot": lambda: xt @ xt}, repeats)
    return {k: x.nbytes / v for k, v in t.items()}


# ---------------------------------------------------------------------------------------------
# the NumPy/SciPy reference backup

def np_logsumexp_actions(Q: np.ndarray) -> np.ndarray:
    """``log sum_a exp(Q[s, a])`` written by hand (every state has a finite Q; ``-inf`` marks a
    forbidden action, e.g. the grid's goal and exit keep one action)."""
    m = Q.max(1)
    return np.log(np.exp(Q - m[:, None]).sum(1)) + m


def np_backup(P2, r: np.ndarray, v: np.ndarray, alpha: float, mode: str):
    """One backup with ``P2`` the ``(S*A, S)`` matrix (NumPy array or SciPy CSR). Returns ``(Q, V)``."""
    S = v.shape[0]
    if mode == EXACT:
        x = v / alpha
        c = x.max()
        Q = r + alpha * (np.log(P2 @ np.exp(x - c)) + c).reshape(S, -1)
    else:
        Q = r + (P2 @ v).reshape(S, -1)
    V = alpha * np_logsumexp_actions(Q / alpha)
    return Q, V


def np_solve(P2, r: np.ndarray, v_T: np.ndarray, alpha: float, mode: str, T: int) -> np.ndarray:
    """``T`` backups from the terminal values; returns the ``(T+1, S)`` values."""
    V = [v_T]
    for _ in range(T):
        V.append(np_backup(P2, r, V[-1], alpha, mode)[1])
    return np.stack(V[::-1])


def cai_backup(mdp, v: torch.Tensor, alpha: torch.Tensor, mode: str):
    """The general backup: ``(Q, V)`` (the policy is formed too)."""
    Q = q_backup(mdp, 0, v, alpha, SUCCESSOR[mode])
    V, _ = soft_max(Q, alpha, None)
    return Q, V


def values_step(mdp, alpha: torch.Tensor, mode: str):
    """The fused values-only step with its weights built, and the build time (median of 3, s)."""
    times = []
    for _ in range(3):
        step = SoftValueStep.for_solver(mdp, alpha, SUCCESSOR[mode], None)
        t0 = time.perf_counter()
        step._weights(0)
        times.append(time.perf_counter() - t0)
    return step, float(np.median(times))


def rel_err(a, b) -> float:
    """Largest difference relative to ``max(1, max |b|)``; ``inf`` unless both have ``-inf`` (a
    forbidden action) in the same places, which are then left out."""
    a, b = np.asarray(a), np.asarray(b)
    if not np.array_equal(np.isneginf(a), np.isneginf(b)):
        return float("inf")
    fin = ~np.isneginf(b)
    return float(np.max(np.abs(a[fin] - b[fin])) / max(1.0, float(np.max(np.abs(b[fin])))))


# ---------------------------------------------------------------------------------------------

def bench_world(name: str, mdp, P2, trans_bytes: int, ref_bytes: int, args, rng) -> dict:
    """Check agreement, then time one backup (both modes), the bare mat-vec and a whole solve."""
    S = mdp.n_states
    alpha = 1.0
    a = torch.tensor(alpha, dtype=torch.float64)
    r = mdp.rewards.numpy()
    v = torch.as_tensor(rng.standard_normal(S) * 3.0)
    vn = v.numpy()
    PM = mdp.transition_matrix

    # agreement (exact and expected; Q and V of the general backup, V of the fused step) before timing
    steps, build = {}, {}
    for mode in (EXACT, EXPECTED):
        steps[mode], build[mode] = values_step(mdp, a, mode)
        Qc, Vc = cai_backup(mdp, v, a, mode)
        Qn, Vn = np_backup(P2, r, vn, alpha, mode)
        Vs = steps[mode](v, 0)
        assert Vs is not None, f"{name}: the fused step declined ({mode})"
        for what, x, y in (("Q", Qc, Qn), ("V", Vc, Vn), ("V of the fused step", Vs, Vn)):
            err = rel_err(x.numpy(), y)
            assert err <= RTOL, f"{name}: cai and the NumPy reference disagree on {what} ({mode}): {err:.3g}"

    vcol = v.unsqueeze(1)
    fns = {
        "np_exact": lambda: np_backup(P2, r, vn, alpha, EXACT),
        "cai_exact": lambda: steps[EXACT](v, 0),
        "cai_full_exact": lambda: cai_backup(mdp, v, a, EXACT),
        "np_expected": lambda: np_backup(P2, r, vn, alpha, EXPECTED),
        "cai_expected": lambda: steps[EXPECTED](v, 0),
        "cai_full_expected": lambda: cai_backup(mdp, v, a, EXPECTED),
        "np_matvec": lambda: P2 @ vn,
        # the product exactly as cai's kernels call it (sparse: the stored int32-index CSR)
        "torch_matvec": lambda: matmul(PM, vcol),
    }
    if mdp.is_sparse:
        PM64 = torch.sparse_csr_tensor(PM.crow_indices().long(), PM.col_indices().long(), PM.values(), size=PM.shape)
        fns["torch_mv_int64"] = lambda: torch.mv(PM64, v)     # torch.mv on int64 indices (converted per call)
    t = time_interleaved(fns, args.repeats)
    ratios = {m: paired_ratio("cai_" + m, "np_" + m) for m in (EXACT, EXPECTED)}

    # whole finite-horizon solve
    T = mdp.horizon
    vT = mdp.terminal_rewards.numpy()
    sol_c = cai.backward_messages(mdp, alpha, keep="values")
    sol_n = np_solve(P2, r, vT, alpha, EXACT, T)
    err = rel_err(sol_c.V.numpy(), sol_n)
    assert err <= RTOL, f"{name}: whole exact solve disagrees with the NumPy loop: {err:.3g}"
    sol_c = cai.soft_value_iteration(mdp, alpha, keep="values")
    sol_n = np_solve(P2, r, vT, alpha, EXPECTED, T)
    err = rel_err(sol_c.V.numpy(), sol_n)
    assert err <= RTOL, f"{name}: whole soft-VI solve disagrees with the NumPy loop: {err:.3g}"
    solve = time_interleaved({
        "np_exact": lambda: np_solve(P2, r, vT, alpha, EXACT, T),
        "cai_exact": lambda: cai.backward_messages(mdp, alpha, keep="values"),
        "np_expected": lambda: np_solve(P2, r, vT, alpha, EXPECTED, T),
        "cai_expected": lambda: cai.soft_value_iteration(mdp, alpha, keep="values"),
    }, args.solve_repeats, warmup=0)
    return {"name": name, "S": S, "nnz": mdp.transitions.values().numel() if mdp.is_sparse else S * A * S,
            "bytes": trans_bytes, "ref_bytes": ref_bytes, "T": T, "backup": t, "solve": solve, "build": build,
            "ratios": ratios, "m_bytes": operator_bytes(steps[EXACT])}


def dense_world(S: int, T: int, rng):
    P = torch.from_numpy(rng.random((S, A, S)))
    P /= P.sum(-1, keepdim=True)
    r = rng.standard_normal((S, A))
    mdp = cai.TabularMDP(P, r, None, horizon=T)
    P2 = mdp.transitions.numpy().reshape(S * A, S)             # the same memory as cai's tensor
    nbytes = P2.nbytes
    return mdp, P2, nbytes, nbytes


def grid_world(N: int, T: int):
    layout = "\n".join(["S" + "." * (N - 1)] + ["." * N] * (N - 2) + ["." * (N - 1) + "G"])
    t0 = time.perf_counter()
    mdp = gridworld(layout, sparse=True, slip=0.1, horizon=T)
    build_s = time.perf_counter() - t0
    PM = mdp.transition_matrix
    crow, col, val = PM.crow_indices().numpy(), PM.col_indices().numpy(), PM.values().numpy()
    P2 = sp.csr_matrix((val, col, crow), shape=tuple(PM.shape))
    tb = sum(x.nbytes for x in (crow, col, val))
    rb = sum(x.nbytes for x in (P2.indptr, P2.indices, P2.data))
    return mdp, P2, tb, rb, build_s


# ---------------------------------------------------------------------------------------------

def operator_bytes(step) -> int:
    """Bytes of the operator an exact values step multiplies by: ``M``, dense or CSR."""
    M = step._weights(0)[1]
    if isinstance(M, np.ndarray):
        return M.nbytes
    if not isinstance(M, torch.Tensor):                     # a SciPy CSR view
        return sum(x.nbytes for x in (M.indptr, M.indices, M.data))
    return sum(x.numel() * x.element_size() for x in (M.crow_indices(), M.col_indices(), M.values()))


def bytes_read(res: dict, mode: str) -> int:
    """Bytes of transition data one values step reads: the action-marginalised operator ``M``
    for exact inference, the transitions themselves for soft value iteration."""
    return res["m_bytes"] if mode == EXACT else res["bytes"]


def fmt_table(results: List[dict], bw: float) -> str:
    lines = [
        "| world | S | transitions MB | mode | NumPy ms | cai ms | cai / NumPy | paired ratio quartiles | MB read | cai GB/s | cai % of bw "
        "| cai Q+V+policy ms | that / NumPy | bare mat-vec ms (NumPy / torch) | cai / best mat-vec | build ms "
        "| solve T | NumPy solve s | cai solve s |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for res in results:
        t, s = res["backup"], res["solve"]
        if "torch_mv_int64" in t:
            notes.append(f"{res['name']}: plain torch.mv on the int64-index CSR: {t['torch_mv_int64'] * 1e3:.2f} ms")
        best_mv = min(t["np_matvec"], t["torch_matvec"])
        for mode in (EXACT, EXPECTED):
            c, n, f = t["cai_" + mode], t["np_" + mode], t["cai_full_" + mode]
            nb = bytes_read(res, mode)
            lines.append(
                f"| {res['name']} | {res['S']} | {res['bytes'] / 1e6:.1f} | {mode} | {n * 1e3:.2f} | {c * 1e3:.2f} "
                f"| {c / n:.2f} | {'/'.join(f'{q:.2f}' for q in res['ratios'][mode])} | {nb / 1e6:.1f} | {nb / c / 1e9:.1f} | {100 * nb / c / bw:.0f}% "
                f"| {f * 1e3:.2f} | {f / n:.2f} "
                f"| {t['np_matvec'] * 1e3:.2f} / {t['torch_matvec'] * 1e3:.2f} | {c / best_mv:.2f} "
                f"| {res['build'][mode] * 1e3:.1f} | {res['T']} | {s['np_' + mode]:.3f} | {s['cai_' + mode]:.3f} |"
            )
    return "\n".join(lines + [""] + notes)


def goals(results: List[dict], bw: float) -> List[str]:
    out = []
    slow = [(r["name"], r["S"], m) for r in results for m in (EXACT, EXPECTED)
            if r["backup"]["cai_" + m] > r["backup"]["np_" + m]]
    slow_full = [(r["name"], r["S"], m) for r in results for m in (EXACT, EXPECTED)
                 if r["backup"]["cai_full_" + m] > r["backup"]["np_" + m]]
    slow_solve = [(r["name"], r["S"], m) for r in results for m in (EXACT, EXPECTED)
                  if r["solve"]["cai_" + m] > r["solve"]["np_" + m]]
    out.append(f"cai backup at least as fast as NumPy everywhere: {'yes' if not slow else 'NO ' + str(slow)}")
    # where the medians say slower: is the difference outside the noise of the comparison?
    tied = [(r["name"], r["S"], m) for r in results for m in (EXACT, EXPECTED)
            if (r["name"], r["S"], m) in slow and r["ratios"][m][0] <= 1.0]
    if slow:
        out.append(f"  of those, at parity (the repeat-by-repeat ratio's lower quartile <= 1): {tied or 'none'}")
    out.append(f"cai whole solve at least as fast as NumPy everywhere: {'yes' if not slow_solve else 'NO ' + str(slow_solve)}")
    out.append(f"(not a goal) cai backup that also forms Q and the policy at least as fast as NumPy's Q and V: "
               f"{'yes' if not slow_full else 'NO ' + str(slow_full)}")
    dense = [r for r in results if r["name"] == "dense"]
    if dense:
        fr = {(r["S"], m): bytes_read(r, m) / r["backup"]["cai_" + m] / bw for r in dense for m in (EXACT, EXPECTED)}
        low = {k: round(v, 2) for k, v in fr.items() if v < 0.5}
        out.append(f"dense backup >= 50% of measured bandwidth: {'yes' if not low else 'NO at ' + str(low)}")
    for r in results:
        if r["name"] == "grid":
            best = min(r["backup"]["np_matvec"], r["backup"]["torch_matvec"])
            ratios = {m: round(r["backup"]["cai_" + m] / best, 2) for m in (EXACT, EXPECTED)}
            ok = all(v <= 2 for v in ratios.values())
            out.append(f"sparse backup within 2x of the best bare mat-vec: {'yes' if ok else 'NO'} {ratios}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke-sized run (a few seconds)")
    p.add_argument("--sizes", type=int, nargs="*", default=[500, 1000, 2000, 5000], help="dense state counts")
    p.add_argument("--grid", type=int, default=500, help="side N of the open N x N sparse gridworld (0: skip)")
    p.add_argument("--horizon", type=int, default=50, help="T of the whole solve")
    p.add_argument("--repeats", type=int, default=21, help="timed repeats per backup (median reported)")
    p.add_argument("--solve-repeats", type=int, default=3, help="timed repeats per whole solve")
    p.add_argument("--bandwidth-mb", type=int, default=1024, help="array size of the bandwidth measurement")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch and (when run as a script) OpenBLAS; default: each library's own")
    p.add_argument("--blocked", action="store_true",
                   help="time each variant in its own block instead of interleaving them repeat by repeat")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.grid, args.horizon = [200, 400], 40, 5
        args.repeats, args.solve_repeats, args.bandwidth_mb = 3, 1, 64
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    global BLOCKED
    BLOCKED = args.blocked
    torch.set_default_dtype(torch.float64)
    rng = np.random.default_rng(args.seed)

    cpu = next((ln.split(":", 1)[1].strip() for ln in pathlib.Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    load0 = os.getloadavg()
    header = [
        f"command: python benchmarks/bench_backup.py {' '.join(sys.argv[1:] if argv is None else argv)}",
        f"machine: {os.cpu_count()} CPUs ({cpu}); torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__} (OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}), scipy {__import__('scipy').__version__}, "
        f"python {platform.python_version()}",
        f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
    ]
    print("\n".join(header), flush=True)

    bw_all = memory_bandwidth(args.bandwidth_mb * 2 ** 20, max(3, args.repeats // 4))
    bw = max(bw_all.values())
    bw_line = (f"memory read bandwidth over a float64 array of {args.bandwidth_mb} MiB: "
               + ", ".join(f"{k.replace('_', ' ')} {v / 1e9:.1f} GB/s" for k, v in bw_all.items())
               + f"; the best, {bw / 1e9:.1f} GB/s, is the reference")
    print(bw_line, flush=True)

    results = []
    for S in args.sizes:
        mdp, P2, tb, rb = dense_world(S, args.horizon, rng)
        results.append(bench_world("dense", mdp, P2, tb, rb, args, rng))
        print(f"dense S={S} done", flush=True)
        del mdp, P2
    notes = []
    if args.grid:
        mdp, P2, tb, rb, build_s = grid_world(args.grid, args.horizon)
        notes.append(f"grid {args.grid}x{args.grid}: S={mdp.n_states}, nnz={mdp.transitions.values().numel()}, "
                     f"built by cai.worlds.builders.gridworld in {build_s:.1f} s; torch CSR {tb / 1e6:.1f} MB, "
                     f"SciPy CSR {rb / 1e6:.1f} MB (bandwidth columns use the torch CSR bytes)")
        results.append(bench_world("grid", mdp, P2, tb, rb, args, rng))
        print("grid done", flush=True)
    load1 = os.getloadavg()
    report = "\n".join(
        header[:2] + [f"load average at start / end: {load0[0]:.2f} / {load1[0]:.2f}", bw_line] + notes
        + ["", fmt_table(results, bw), ""] + ["- " + g for g in goals(results, bw)]
        + ["", f"agreement: cai vs NumPy/SciPy backup and whole solve within {RTOL:g} (relative), asserted"]
    )
    print(report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
