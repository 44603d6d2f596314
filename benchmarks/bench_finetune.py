"""Fine-tuning from a broad prior: samples until a changed task is solved, from three starts, over seeds.

For each pair of tasks and temperature ``alpha``, runs :func:`cai.why.finetune_times` for the three
starts of tabular soft Q-learning on the changed task: the old task's soft Q at ``alpha``, its hard
Q (value iteration) and ``Q = 0``. Same learner for all: one episode at a time, constant step 0.5,
Boltzmann behaviour at ``alpha`` mixed with weight 0.1 with the uniform policy. The count is the
samples until the learner's greedy policy's exact return on the changed task first reaches
``R_uniform + 0.9 (R* - R_uniform)`` (evaluated after every episode); censored at the budget.

Pairs: ``asymmetric`` (:func:`cai.why.finetune_tasks`: upper route 6 moves, lower 8; a wall blocks
the upper one) and ``two_route`` (:func:`cai.worlds.two_route`, both routes 8 moves; the same wall
cell (1, 3) blocks the upper one, which value iteration's first arg-max takes).

Printed per row: fraction of seeds reaching the target (95% Wilson score interval) and the
Kaplan–Meier median sample count (95% percentile bootstrap over seeds; ``inf``: fewer than half are
known to reach it). Seed ``s`` seeds every start.

Usage: ``python benchmarks/bench_finetune.py [--smoke] [--seeds N] [--budget B]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import cai.worlds  # noqa: E402
from cai.why import perturb_cell  # noqa: E402
from cai.why.finetune import STARTS, finetune_tasks, finetune_times  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="two seeds, small budget, one temperature (CI)")
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=3000)
    args = ap.parse_args(argv)
    if args.smoke:
        pairs, alphas, seeds, budget, n_boot = ["asymmetric"], [1.0], 2, 240, 20
    else:
        pairs, alphas, seeds, budget, n_boot = ["asymmetric", "two_route"], [0.3, 1.0], args.seeds, args.budget, 2000
    print(f"seeds={seeds} budget={budget} samples; target = R_uniform + 0.9 (R* - R_uniform) of the greedy policy, "
          f"exact; intervals: fraction = 95% Wilson score; median = Kaplan-Meier, 95% percentile bootstrap "
          f"({n_boot} resamples); inf = not reached by half")
    print("| tasks | alpha | start | greedy return before fine-tuning | target | reached (95% CI) | median samples (95% CI) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for name in pairs:
        if name == "asymmetric":
            old, new = finetune_tasks()
        else:
            old = cai.worlds.two_route()
            new = perturb_cell(old, (1, 3), "wall")
        for alpha in alphas:
            for start in STARTS:
                t0 = time.perf_counter()
                r = finetune_times(old, new, start, alpha=alpha, budget=budget, seeds=range(seeds), n_boot=n_boot)
                dt = time.perf_counter() - t0
                h = r.hits
                f0, f1 = h.fraction_interval
                m0, m1 = h.median_interval
                print(f"| {name} | {alpha:g} | {start} | {r.initial_return:.3g} | {r.target:.3g} "
                      f"| {h.fraction_found:.0%} ({f0:.0%}-{f1:.0%}) | {h.median:g} ({m0:g}-{m1:g}) | {dt:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
