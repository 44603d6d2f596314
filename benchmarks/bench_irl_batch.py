"""Many demonstration sets at once: ``fit_many`` (one batched solve per iteration) vs a loop of ``MaxEntIRL.fit``.

A 10x10 open grid (every cell a start cell, horizon 15, 8 Gaussian state features); ``--sets``
reward vectors drawn at random, 30 demonstrations sampled from each one's soft-optimal policy;
causal MaxEnt IRL with Adam, ``--iters`` iterations per set (``tol`` tiny, so every set runs them
all). After a warm-up of both routes, the loop and the batched fit are timed in alternation ``--repeats`` times; the table gives
the medians and their ratio, and the script checks that both give the same weights (1e-8).

    python benchmarks/bench_irl_batch.py            # the recorded run (64 sets, 10x10 grid)
    python benchmarks/bench_irl_batch.py --smoke    # tiny: 4 sets on a 4x4 grid, 3 iterations
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
# cai's CPU mat-muls go through NumPy's OpenBLAS, whose worker threads spin against other jobs on a
# loaded machine: a (400, 100) @ (100, 16) product measured 30-70 ms with them, 0.1 ms without
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

import cai  # noqa: E402
from cai.algorithms.tabular.irl import MaxEntIRL  # noqa: E402
from cai.algorithms.tabular.irl_many import fit_many  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", type=int, default=64)
    p.add_argument("--side", type=int, default=10)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--smoke", action="store_true", help="4 sets, 4x4 grid, 3 iterations, 1 repeat")
    args = p.parse_args(argv)
    blas = os.environ.get("OPENBLAS_NUM_THREADS")
    if args.smoke:
        args.sets, args.side, args.iters, args.repeats = 4, 4, 3, 1
    torch.set_num_threads(args.threads)
    mdp = gridworld("\n".join(["S" * args.side] * args.side), horizon=15, step_cost=0.0)
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(mdp.n_states, 8, generator=g, dtype=torch.float64)
    sets = []
    for _ in range(args.sets):
        w = torch.randn(8, generator=g, dtype=torch.float64)
        sol = cai.soft_value_iteration(mdp.replace(rewards=phi @ w), 1.0)
        sets.append(cai.sample_trajectories(mdp, sol.policy, 30, generator=g))
    irl = MaxEntIRL(mdp, phi, n_iter=args.iters, lr=0.1, tol=1e-12)
    copy.deepcopy(irl).fit(sets[0])                      # warm-up: first calls of torch kernels
    fit_many(irl, sets[:2])
    t_loop, t_many = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        w_loop = torch.stack([copy.deepcopy(irl).fit(d).weights_ for d in sets])
        t_loop.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        w_many = fit_many(irl, sets).weights
        t_many.append(time.perf_counter() - t0)
    err = float((w_loop - w_many).abs().max())
    assert err < 1e-8, f"fit_many and the loop of fits disagree: max |dw| = {err:.3g}"
    ml, mm = statistics.median(t_loop), statistics.median(t_many)
    print(f"# MaxEnt IRL, {args.sets} demonstration sets on a {args.side}x{args.side} grid (S={mdp.n_states}, A=4, "
          f"T=15, F=8), {args.iters} Adam iterations; torch {torch.__version__}, {args.threads} torch thread(s), "
          f"OPENBLAS_NUM_THREADS={blas}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load {os.getloadavg()[0]:.2f}\n")
    print("| route | median wall (s) | runs (s) |")
    print("|---|---:|---|")
    print(f"| loop of MaxEntIRL.fit | {ml:.2f} | {', '.join(f'{t:.2f}' for t in t_loop)} |")
    print(f"| fit_many | {mm:.2f} | {', '.join(f'{t:.2f}' for t in t_many)} |")
    print(f"\nspeed-up (median loop / median fit_many): {ml / mm:.2f}x")
    print(f"max |w_loop - w_many| = {err:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
