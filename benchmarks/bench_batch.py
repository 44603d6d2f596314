"""Batches that pay and small solves without overhead, each goal a ratio checked in the same run.

What is timed (medians over interleaved repeats, every variant in turn within each repeat, so a
busy machine slows all of them alike):

* **batches** on an open ``N x N`` gridworld (sparse, ``slip=0.1``, horizon ``T``): one call of
  :func:`cai.soft_value_iteration` / :func:`cai.backward_messages` with ``B`` temperatures, and
  one with ``B`` reward tables, against a Python loop of ``B`` single calls and against a plain
  NumPy/SciPy batched backup written for the same ``B`` columns (``keep="values"``: the values of
  every step; ``keep="all"``: also ``Q`` and the policy of every step);
* **small solves** (``S = 100`` and ``S = 500`` gridworlds, one temperature): one cai call
  against the same solve transcribed plainly in NumPy/SciPy.

Before timing, the script asserts that the batch equals the loop (and the NumPy reference) to
``1e-12`` (absolute, on values of order 10-100). Then each goal prints ``PASS`` or ``FAIL`` with
its measured ratio; ``--strict`` makes a failed goal exit non-zero. The machine line records the
CPU, the load average and the memory bandwidth measured in the run (a large ``np.copyto``).

The batch table also shows a floor measured in the same run: ``bare``, ``T`` steps of nothing but
the arithmetic every batched soft-VI step must do on the same shapes (the sparse product ``P``
times the ``(S, B)`` block by the fastest product available, then one log-sum-exp over actions
without a shift, in place in preallocated arrays: exp, sum, log; no per-member weights, no
checks), plus, with ``keep="all"``, one write of fresh outputs of the sizes the solve hands over
(``V``, ``Q``, the log policy); and ``loop / bare``, about the most a batch could gain over the
loop (shown for soft VI, and for exact inference with ``keep="all"``, whose step does at least
that work; exact inference's values step multiplies by the action-marginalised ``M`` instead).

With ``keep="all"`` the ``batch`` and ``loop`` timings are the solve and handing over ``Q`` and the
policy (``sol.Q``, ``sol.log_policy``), not reading them; a batch stores them with the members
last in memory (views, no copy), so the table has a second pair, ``batch+read`` and
``loop+read``: the same solves followed by a read of every entry (``sol.Q.sum() +
sol.log_policy.sum()``), and their ratio ``ratio +read``. The goals use the first pair.

Each batch case runs in a fresh process of its own (``--no-isolate`` runs them all in this one):
the page faults of large outputs grow costlier over a long process, which skewed later cases.

``--clock cpu`` times with the process's CPU time instead of wall time (steadier on a machine
shared with other jobs; the runs are single-threaded with ``--threads 1``).

``--smoke`` is a seconds-long run used by the tests (its ratios mean little).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
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

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import cai  # noqa: E402
from cai.ops.logspace import csr_product, scipy_csr  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402

ATOL = 1e-12
SOLVERS = {"soft VI": cai.soft_value_iteration, "exact": cai.backward_messages}
#: the goals: (what, threshold, "min" (the ratio must reach it) or "max" (must not exceed it))
BATCH_SPEEDUP = 3.0          # batch at least 3x faster than the loop
BATCH_VS_NUMPY = 1.0         # and no slower than NumPy's batched backup
SMALL_VS_NUMPY = 1.5         # a small solve within 1.5x of NumPy


def open_grid(rows: int, cols: int, T: int):
    layout = "\n".join(["S" + "." * (cols - 1)] + ["." * cols] * (rows - 2) + ["." * (cols - 1) + "G"])
    return gridworld(layout, sparse=True, slip=0.1, horizon=T)


#: the clock of every timing (``--clock``): wall time, or the process's CPU time
CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def time_interleaved(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, List[float]]:
    """Per-repeat times (s, on the ``--clock``) of each function, run in turn within each repeat, after a warm-up."""
    clock = _clock[0]
    for f in fns.values():
        f()
    out: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            f()
            out[k].append(clock() - t0)
    return out


def copy_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Bytes moved per second (read + write) by ``np.copyto`` between two float64 arrays of ``nbytes``."""
    src, dst = np.ones(nbytes // 8), np.zeros(nbytes // 8)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeats))
    return 2 * src.nbytes / best


def first_write(nbytes: int, repeats: int = 3) -> Dict[str, float]:
    """Seconds (best of ``repeats``) to allocate and fill ``nbytes`` of float64 the first time: a
    ``torch.empty`` against a tensor over ``np.empty`` (which asks the kernel for huge pages for
    arrays of 4 MiB or more; the solvers' preallocated outputs are made so)."""
    n = nbytes // 8
    return {"torch.empty": min(_timed(lambda: torch.empty(n, dtype=torch.float64).fill_(0)) for _ in range(repeats)),
            "np.empty": min(_timed(lambda: torch.from_numpy(np.empty(n)).fill_(0)) for _ in range(repeats))}


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# the NumPy/SciPy reference: T backups of B columns, written directly from the formulas

def np_lse_actions(X: np.ndarray) -> np.ndarray:
    """``log sum_a exp(X[s, a, b])`` over axis 1 (every state keeps a finite action)."""
    m = X.max(1)
    return np.log(np.exp(X - m[:, None]).sum(1)) + m


def np_solve(Ps, r: np.ndarray, rT: np.ndarray, a: np.ndarray, T: int, exact: bool, full: bool):
    """``Ps`` SciPy CSR ``(S*A, S)``; ``r`` ``(S, A, B)``; ``rT`` ``(S,)``; ``a`` ``(B,)``. Returns
    the ``(T+1, S, B)`` values (and, with ``full``, the ``(T, S, A, B)`` Q and log policy)."""
    S, A, B = r.shape
    v = np.repeat(rT[:, None], B, 1)
    Vs, Qs, Ls = [v], [], []
    for _ in range(T):
        if exact:
            x = v / a
            c = x.max(0)
            with np.errstate(divide="ignore"):
                Q = r + a * (np.log(Ps @ np.exp(x - c)) + c).reshape(S, A, B)
        else:
            Q = r + (Ps @ v).reshape(S, A, B)
        lse = np_lse_actions(Q / a)
        v = a * lse
        Vs.append(v)
        if full:
            Qs.append(Q)
            Ls.append(Q / a - lse[:, None])
    out = np.stack(Vs[::-1])
    return (out, np.stack(Qs[::-1]), np.stack(Ls[::-1])) if full else out


def bare_steps(P, S: int, A: int, B: int, T: int) -> Callable[[], np.ndarray]:
    """The floor of a batched soft-VI values solve: ``T`` times the product of the CSR ``(S*A, S)``
    transitions ``P`` (a torch CSR tensor) with an ``(S, B)`` block, by the fastest sparse product
    measured (:func:`cai.ops.logspace.csr_product`: MKL's where torch has it, else SciPy's), and
    one unshifted log-sum-exp over actions (``exp`` in place, the sum, ``log``), in preallocated
    arrays: no per-member weights, no shift, no checks (torch's reduction over the middle axis of
    ``(S, A, B)``, NumPy's ``exp``: the fastest measured, on the same memory)."""
    v0 = np.zeros((S, B))
    y = np.empty((S * A, B))

    def run():
        x = v0
        for _ in range(T):
            csr_product(P, x, out=y)                           # (S*A, B)
            np.exp(y, out=y)
            x = torch.from_numpy(y).view(S, A, B).sum(1).log_().numpy()
        return x
    return run


def bare_with_outputs(bare: Callable[[], np.ndarray], S: int, A: int, B: int, T: int) -> Callable[[], None]:
    """The floor of a batch that keeps every step: :func:`bare_steps`, then one write of fresh
    outputs of the sizes such a solve hands over, ``V (T+1, S, B)``, ``Q`` and the log policy
    ``(T, S, A, B)`` (allocated as the solvers allocate them, so the first write costs the same
    page faults)."""
    from cai.ops.values_step import _empty

    def run():
        bare()
        for shape in ((T + 1, S, B), (T, S, A, B), (T, S, A, B)):
            np.copyto(_empty(shape, torch.float64).numpy(), 0.0)
    return run


# ---------------------------------------------------------------------------------------------

def batch_case(mdp, solver: str, kind: str, keep: str, B: int, repeats: int) -> dict:
    """Time one batched call, the loop of single calls and the NumPy batch; assert they agree."""
    fn = SOLVERS[solver]
    T = mdp.horizon
    r = mdp.rewards
    if kind == "temperatures":
        alphas = torch.linspace(0.3, 3.0, B, dtype=torch.float64)
        batched = lambda: fn(mdp, alphas, keep=keep)                       # noqa: E731
        loop = lambda: [fn(mdp, float(x), keep=keep) for x in alphas]      # noqa: E731
        r_np = np.repeat(r.numpy()[:, :, None], B, 2)
        a_np = alphas.numpy()
    else:
        scale = torch.linspace(0.5, 2.0, B, dtype=torch.float64).reshape(B, 1, 1)
        tables = torch.where(torch.isneginf(r), r, r * scale)              # (B, S, A): -inf stays
        mdps = [mdp.replace(rewards=tables[i]) for i in range(B)]
        mb = mdp.replace(rewards=tables, reward_layout="sa")
        batched = lambda: fn(mb, 1.0, keep=keep)                           # noqa: E731
        loop = lambda: [fn(m, 1.0, keep=keep) for m in mdps]               # noqa: E731
        r_np = np.ascontiguousarray(tables.permute(1, 2, 0).numpy())
        a_np = np.ones(B)
    Ps = scipy_csr(mdp.transition_matrix)
    rT = mdp.terminal_rewards.numpy()
    full = keep == "all"
    ref = lambda: np_solve(Ps, r_np, rT, a_np, T, solver == "exact", full)    # noqa: E731
    # agreement first
    got, singles, want = batched(), loop(), ref()
    Vl = torch.stack([s.V for s in singles])
    err_loop = (got.V - Vl).abs().max().item()
    Vn = want[0] if full else want
    err_np = np.abs(got.V.numpy() - np.moveaxis(Vn, -1, 0)).max()
    if full:
        Ql, Pl = torch.stack([s.Q for s in singles]), torch.stack([s.log_policy for s in singles])
        fin = torch.isfinite(Ql)
        err_loop = max(err_loop, (got.Q - Ql)[fin].abs().max().item(),
                       (got.log_policy - Pl)[fin].abs().max().item())
    if not (err_loop <= ATOL and err_np <= ATOL):
        raise AssertionError(f"{solver} {kind} keep={keep}: the batch and the loop (or NumPy) disagree: "
                             f"{err_loop:.3g} (loop), {err_np:.3g} (NumPy) > {ATOL:g}")
    fns = {}
    if full:
        # the batch must hand over every step's Q and policy, as the loop does
        touch = lambda sol: (sol.Q, sol.log_policy)                    # noqa: E731
        # ... and, as a second pair, a read of every entry of both (sums: the batch's tensors are
        # views of batch-last memory, so this times what a user pays to read them)
        read = lambda sol: (sol.Q.sum() + sol.log_policy.sum()).item()    # noqa: E731
        b0, l0 = batched, loop
        batched = lambda: touch(b0())                                 # noqa: E731
        loop = lambda: [touch(s) for s in l0()]                       # noqa: E731
        fns = {"batch+read": lambda: read(b0()), "loop+read": lambda: [read(s) for s in l0()]}
    fns = {"batch": batched, "loop": loop, "numpy": ref, **fns}
    if solver == "soft VI" or full:
        bare = bare_steps(mdp.transition_matrix, mdp.n_states, mdp.n_actions, B, T)
        if full:
            # ... and a batch that stores every step writes V, Q and the log policy once
            bare = bare_with_outputs(bare, mdp.n_states, mdp.n_actions, B, T)
        fns["bare"] = bare
    t = time_interleaved(fns, repeats)
    med = {k: float(np.median(v)) for k, v in t.items()}
    return dict(solver=solver, kind=kind, keep=keep, B=B, med=med, err=max(err_loop, err_np),
                speedup=med["loop"] / med["batch"], vs_numpy=med["batch"] / med["numpy"])


def small_case(mdp, solver: str, keep: str, repeats: int) -> dict:
    fn = SOLVERS[solver]
    Ps = scipy_csr(mdp.transition_matrix)
    r_np = mdp.rewards.numpy()[:, :, None]
    rT, a = mdp.terminal_rewards.numpy(), np.ones(1)
    full = keep == "all"
    cai_call = (lambda: (lambda s: (s.V, s.Q, s.log_policy))(fn(mdp, 1.0, keep=keep))) if full \
        else (lambda: fn(mdp, 1.0, keep=keep).V)
    ref = lambda: np_solve(Ps, r_np, rT, a, mdp.horizon, solver == "exact", full)   # noqa: E731
    got, want = fn(mdp, 1.0, keep=keep), ref()
    err = np.abs(got.V.numpy() - (want[0] if full else want)[..., 0]).max()
    if not err <= ATOL:
        raise AssertionError(f"small {solver} S={mdp.n_states}: cai and NumPy disagree: {err:.3g}")
    t = time_interleaved({"cai": cai_call, "numpy": ref}, repeats)
    med = {k: float(np.median(v)) for k, v in t.items()}
    return dict(solver=solver, keep=keep, S=mdp.n_states, med=med, ratio=med["cai"] / med["numpy"])


def _fresh_case(grid: int, horizon: int, threads, clock: str, solver: str, kind: str, keep: str, B: int,
                repeats: int) -> dict:
    """:func:`batch_case` in a process of its own (the default; ``--no-isolate``: all in one): the page faults of a solve's
    large outputs cost more later in a long process (measured: a loop of 64 single soft-VI solves
    keeping every step, 0.24 s in a fresh process, 0.41 s after three other cases), which would
    favour whichever variant allocates in larger blocks."""
    _setup(threads, clock)
    return batch_case(open_grid(grid, grid, horizon), solver, kind, keep, B, repeats)


def _setup(threads, clock: str) -> None:
    """The process's torch threads (``None``: torch's own), timing clock and warning filter."""
    if threads is not None:
        torch.set_num_threads(threads)
    _clock[0] = CLOCK[clock]
    warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", type=int, default=50, help="side N of the open N x N grid of the batch cases")
    p.add_argument("--horizon", type=int, default=50, help="T of every solve")
    p.add_argument("--batch", type=int, default=64, help="B temperatures / reward tables")
    p.add_argument("--small", type=int, nargs="*", default=[100, 500], help="state counts of the small solves")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (medians reported)")
    p.add_argument("--small-repeats", type=int, default=21)
    p.add_argument("--threads", type=int, default=None, help="threads for torch and OpenBLAS (set before loading)")
    p.add_argument("--bandwidth-mb", type=int, default=512)
    p.add_argument("--clock", choices=sorted(CLOCK), default="wall", help="time on the wall clock or the process's CPU time")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run the batch cases in this process rather than one fresh process each")
    p.add_argument("--smoke", action="store_true", help="a seconds-long run (the tests')")
    p.add_argument("--strict", action="store_true", help="exit non-zero when a goal fails")
    p.add_argument("--markdown", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.smoke:
        args.grid, args.horizon, args.batch, args.small = 6, 4, 3, [20]
        args.repeats, args.small_repeats, args.bandwidth_mb, args.isolate = 1, 1, 16, False
    _setup(args.threads, args.clock)

    cpu = next((ln.split(":", 1)[1].strip() for ln in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if os.path.exists("/proc/cpuinfo") \
        else platform.processor()
    load0 = os.getloadavg()[0]
    bw = copy_bandwidth(args.bandwidth_mb * 2 ** 20)
    fw = first_write(args.bandwidth_mb // 2 * 2 ** 20)
    cmd = f"python benchmarks/bench_batch.py {' '.join(sys.argv[1:] if argv is None else argv)}"
    lines = [f"command: {cmd}",
             f"machine: {os.cpu_count()} CPUs ({cpu}); torch {torch.__version__} ({torch.get_num_threads()} threads), "
             f"numpy {np.__version__}, python {platform.python_version()}",
             f"memory bandwidth (np.copyto of {args.bandwidth_mb} MiB, read + write): {bw / 1e9:.1f} GB/s",
             f"first write of {args.bandwidth_mb // 2} MiB (allocate + fill, best of 3): torch.empty "
             f"{fw['torch.empty'] * 1e3:.0f} ms, over np.empty {fw['np.empty'] * 1e3:.0f} ms",
             f"clock: {args.clock} ({'the process CPU time' if args.clock == 'cpu' else 'wall time'})"]
    print("\n".join(lines), flush=True)

    mdp = open_grid(args.grid, args.grid, args.horizon)
    rows, goals = [], []
    rows.append(f"\nbatches: {args.grid}x{args.grid} grid (S={mdp.n_states}), T={args.horizon}, B={args.batch}; "
                "medians in s")
    rows.append("| solver | batch of | keep | batch | loop | NumPy batch | bare | loop / batch | batch / NumPy "
                "| loop / bare | batch+read | loop+read | ratio +read | max diff |")
    rows.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for solver in SOLVERS:
        for kind in ("temperatures", "reward tables"):
            for keep in ("values", "all"):
                if args.isolate:
                    ctx = multiprocessing.get_context("spawn")
                    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
                        res = ex.submit(_fresh_case, args.grid, args.horizon, args.threads, args.clock, solver, kind,
                                        keep, args.batch, args.repeats).result()
                else:
                    res = batch_case(mdp, solver, kind, keep, args.batch, args.repeats)
                m = res["med"]
                bare, lb = (f"{m['bare']:.3f}", f"{m['loop'] / m['bare']:.2f}") if "bare" in m else ("-", "-")
                rd = (f"{m['batch+read']:.3f} | {m['loop+read']:.3f} | {m['loop+read'] / m['batch+read']:.2f}"
                      if "batch+read" in m else "- | - | -")
                rows.append(f"| {solver} | {kind} | {keep} | {m['batch']:.3f} | {m['loop']:.3f} | {m['numpy']:.3f} "
                            f"| {bare} | {res['speedup']:.2f} | {res['vs_numpy']:.2f} | {lb} | {rd} | {res['err']:.1e} |")
                print(rows[-1], flush=True)
                what = f"{solver}, {args.batch} {kind}, keep={keep}"
                goals.append((f"batch >= {BATCH_SPEEDUP:g}x faster than the loop ({what})", res["speedup"] >= BATCH_SPEEDUP,
                              f"loop / batch = {res['speedup']:.2f}"))
                goals.append((f"batch no slower than NumPy's batched backup ({what})", res["vs_numpy"] <= BATCH_VS_NUMPY,
                              f"batch / NumPy = {res['vs_numpy']:.2f}"))
    rows.append(f"\nsmall solves: one temperature, T={args.horizon}; medians in ms")
    rows.append("| solver | S | keep | cai | NumPy | cai / NumPy |")
    rows.append("|---|---:|---|---:|---:|---:|")
    for S in args.small:
        side = int(round(S ** 0.5))
        small = open_grid(side, max(2, S // side), args.horizon)
        for solver in SOLVERS:
            for keep in ("values", "all"):
                res = small_case(small, solver, keep, args.small_repeats)
                m = res["med"]
                rows.append(f"| {solver} | {small.n_states} | {keep} | {m['cai'] * 1e3:.2f} | {m['numpy'] * 1e3:.2f} "
                            f"| {res['ratio']:.2f} |")
                print(rows[-1], flush=True)
                goals.append((f"small solve within {SMALL_VS_NUMPY:g}x of NumPy ({solver}, S={small.n_states}, keep={keep})",
                              res["ratio"] <= SMALL_VS_NUMPY, f"cai / NumPy = {res['ratio']:.2f}"))
    load1 = os.getloadavg()[0]
    lines.append(f"load average (1 min) at start / end: {load0:.2f} / {load1:.2f}")
    goal_lines = [f"{'PASS' if ok else 'FAIL'} {name}: {detail}" for name, ok, detail in goals]
    n_fail = sum(not ok for _, ok, _ in goals)
    report = "\n".join(lines + rows + ["", f"goals ({len(goals) - n_fail} of {len(goals)} pass; "
                                           f"agreement within {ATOL:g} asserted before timing):"] + goal_lines)
    print("\n" + report)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(report + "\n")
    return 1 if (args.strict and n_fail) else 0


if __name__ == "__main__":
    sys.exit(main())
