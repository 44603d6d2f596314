"""Benchmarks for cai.algorithms (tabular).

1. MaxEnt IRL: fit time and reward recovery versus the number of demonstrations and the grid
   size. Open ``n x n`` grids (every cell a start cell), horizon 15, 6 Gaussian state features,
   a known linear reward; demonstrations from its soft-optimal policy (alpha = 1). Recovery:
   Pearson correlation of learned and true weights, and the L1 distance per step between the
   expected state-action visitation of the learned reward's soft-optimal policy and the
   demonstrator's (0 = identical, 2 = disjoint).
2. Soft Q-learning: transitions until ``max |Q - Q_softVI| <= tol`` on Garnet MDPs
   (branching 3, gamma = 0.8, alpha = 1, 64 parallel episodes, polynomial steps power 0.8).

Usage::

    PYTHONPATH=. python benchmarks/bench_algorithms.py            # full tables (~10 min, 1 thread)
    PYTHONPATH=. python benchmarks/bench_algorithms.py --smoke    # seconds; run by the tests
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import cai
from cai.algorithms.tabular.irl import MaxEntIRL
from cai.algorithms.tabular.soft_q import soft_q_learning
from cai.dp.visitation import policy_marginals
from cai.worlds.builders import gridworld, random_mdp


def irl_case(n: int, n_demos: int, variant: str = "causal", horizon: int = 15, seed: int = 0, n_iter: int = 300):
    mdp = gridworld("\n".join(["S" * n] * n), horizon=horizon, step_cost=0.0, sparse=n >= 16)
    S = mdp.n_states
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(S, 6, generator=g, dtype=torch.float64)
    w_true = torch.randn(6, generator=g, dtype=torch.float64)
    true = mdp.replace(rewards=phi @ w_true)
    pi = cai.soft_value_iteration(true, 1.0).policy
    d_true = policy_marginals(true, pi).visitation
    demos = cai.sample_trajectories(true, pi, n_demos, generator=torch.Generator().manual_seed(seed + 1))
    t0 = time.perf_counter()
    irl = MaxEntIRL(mdp, phi, alpha=1.0, variant=variant, n_iter=n_iter, lr=0.1, tol=1e-6).fit(demos)
    dt = time.perf_counter() - t0
    learned_pi = irl.policy_ if variant == "causal" else cai.soft_value_iteration(
        mdp.replace(rewards=irl.reward_), 1.0).policy
    d = policy_marginals(mdp, learned_pi).visitation
    corr = float(np.corrcoef(irl.weights_.numpy(), w_true.numpy())[0, 1])
    return dict(n=n, S=S, demos=n_demos, variant=variant, time=dt, iters=irl.n_iter_,
                per_iter_ms=1e3 * dt / max(1, irl.n_iter_ + 1), corr=corr,
                l1=float((d - d_true).abs().sum()) / horizon)


def sq_case(S: int, A: int, tols, seed: int = 0, max_samples: int = 3_000_000):
    mdp = random_mdp(S, A, 3, seed=seed, horizon=None, discount=0.8)
    ref = cai.soft_value_iteration(mdp, 1.0)
    t0 = time.perf_counter()
    res = soft_q_learning(mdp, 1.0, n_samples=max_samples, n_envs=64, reference=ref.Q, tol=min(tols),
                          eval_every=2_000, generator=torch.Generator().manual_seed(seed))
    dt = time.perf_counter() - t0
    first = {}
    for tol in tols:
        hit = [n for n, e in res.history if e <= tol]
        first[tol] = hit[0] if hit else None
    return dict(S=S, A=A, time=dt, samples=first, final=res.history[-1][1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        grid, demos, sizes, sq_sizes, tols, it = [4], [20], [4], [(4, 2)], (0.5,), 20
    else:
        grid, demos, sizes, sq_sizes, tols, it = [6], [30, 100, 300, 1000, 3000], [4, 8, 16, 32], \
            [(5, 2), (10, 2), (20, 4), (50, 4)], (0.2, 0.1, 0.05), 300
    irl_case(3, 5, n_iter=2)                     # warm-up: the first optimiser import costs seconds
    print(f"# cai.algorithms benchmark ({platform.processor() or platform.machine()}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s))\n")
    print(f"## MaxEnt IRL (causal): demonstrations (grid {grid[0]}x{grid[0]}, horizon 15)\n")
    print("| demos | fit time (s) | iterations | ms / iteration | weight corr. | visitation L1 / step |")
    print("|---:|---:|---:|---:|---:|---:|")
    for m in demos:
        r = irl_case(grid[0], m, n_iter=it)
        print(f"| {m} | {r['time']:.2f} | {r['iters']} | {r['per_iter_ms']:.1f} | {r['corr']:.4f} | {r['l1']:.4f} |")
    print("\n## MaxEnt IRL: grid size (300 demonstrations, horizon 15)\n")
    print("| grid | S | variant | fit time (s) | iterations | ms / iteration | weight corr. | visitation L1 / step |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for variant in ("causal", "exact"):
            if variant == "exact" and not args.smoke and n > 16:
                continue
            r = irl_case(n, 300 if not args.smoke else 20, variant=variant, n_iter=it)
            print(f"| {n}x{n} | {r['S']} | {variant} | {r['time']:.2f} | {r['iters']} | {r['per_iter_ms']:.1f} | "
                  f"{r['corr']:.4f} | {r['l1']:.4f} |")
    print("\n## Soft Q-learning: transitions until max |Q - Q_softVI| <= tol (gamma 0.8, alpha 1)\n")
    print("| S | A | " + " | ".join(f"tol {t}" for t in tols) + " | wall time (s) |")
    print("|---:|---:|" + "---:|" * len(tols) + "---:|")
    for S, A in sq_sizes:
        r = sq_case(S, A, tols, max_samples=3_000_000 if not args.smoke else 20_000)
        cells = " | ".join("—" if r["samples"][t] is None else f"{r['samples'][t]:,}" for t in tols)
        print(f"| {S} | {A} | {cells} | {r['time']:.1f} |")


if __name__ == "__main__":
    main()
