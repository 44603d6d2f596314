"""Exploration on the deceptive chain: samples until the far reward is first collected, over seeds.

For each chain length ``n`` (:func:`cai.worlds.chain`: start in state 1, a small reward 0.2 for
acting in state 0, a large one 1.0 in state ``n - 1``; horizon ``2 n``) and each setting, runs
:func:`cai.why.first_hit_times` for tabular soft Q-learning acting with its own Boltzmann policy
(``epsilon = 0``, temperatures ``alpha``) and for Q-learning with an epsilon-greedy behaviour
(several ``epsilon``), one episode at a time, constant step 0.5, ``Q = 0`` initially. A seed that
has not collected the far reward within the budget is censored at the budget.

Printed per row: fraction of seeds that found it (95% Wilson score interval) and the
Kaplan–Meier median first-hit sample (95% percentile bootstrap over seeds, 2000 resamples;
``inf``: fewer than half the seeds are known to find it). Seed ``s`` seeds both methods, so before
either has found any reward they take the same actions (common random numbers).

Usage: ``python benchmarks/bench_exploration.py [--smoke] [--seeds N] [--budget B]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import cai.worlds  # noqa: E402
from cai.why.exploration import first_hit_times  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny grid for CI")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--budget", type=int, default=3000)
    args = ap.parse_args(argv)
    if args.smoke:
        lengths, alphas, epsilons, seeds, budget, n_boot = [5], [0.1], [0.1], 4, 200, 50
    else:
        lengths, alphas, epsilons, seeds, budget, n_boot = ([6, 9, 12], [0.03, 0.1, 0.3], [0.05, 0.1, 0.3],
                                                             args.seeds, args.budget, 2000)
    print(f"seeds={seeds} budget={budget} samples; interval methods: fraction = 95% Wilson score; "
          f"median = Kaplan-Meier, 95% percentile bootstrap ({n_boot} resamples); inf = not found by half")
    print("| n | method | setting | found (95% CI) | median first hit (95% CI) | seconds |")
    print("|---|---|---|---|---|---|")
    for n in lengths:
        mdp = cai.worlds.chain(n, horizon=2 * n)
        runs = [("soft_q", "alpha", a) for a in alphas] + [("epsilon_greedy", "epsilon", e) for e in epsilons]
        for method, key, val in runs:
            t0 = time.perf_counter()
            r = first_hit_times(mdp, method, budget=budget, seeds=range(seeds), n_boot=n_boot, **{key: val})
            dt = time.perf_counter() - t0
            f0, f1 = r.fraction_interval
            m0, m1 = r.median_interval
            print(f"| {n} | {method} | {key}={val:g} | {r.fraction_found:.0%} ({f0:.0%}-{f1:.0%}) "
                  f"| {r.median:g} ({m0:g}-{m1:g}) | {dt:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
