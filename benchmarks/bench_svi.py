"""Time for each variational route to reach the soft-VI policy, against the soft-VI solve itself.

Worlds: open n x n slippery gridworlds (``cai.report.compare.square_layout``: start top-left,
goal bottom-right, a lava strip across the middle), slip 0.2, horizon T = 2n, alpha = 1, counting
prior. For each method the clock runs until its policy is within tolerance of soft value
iteration's: max total-variation distance <= ``--tv`` on every (t, s) the soft-VI policy visits with
probability >= 1e-3, *and* an ELBO within ``--gap`` of the maximum (the network guide gets the
looser ``--tv-amortized`` / ``--gap-amortized``). The check runs every ``--every`` steps in a
callback whose time is excluded. Soft VI is timed as the median of 20 solves.

    python benchmarks/bench_svi.py                       # 5x5, 8x8, 10x10 (T = 10, 16, 20)
    python benchmarks/bench_svi.py --sizes 5 --quick     # smoke run
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

import cai
from cai.ppl.svi import fit_policy_closed_form, fit_policy_svi
from cai.report.table import policy_tv  # noqa: E402
from cai.worlds import square_layout
from cai.worlds.builders import gridworld

METHODS = {
    "closed-form ascent (Adam)": (fit_policy_closed_form, {}),
    "Pyro SVI tabular (exact ELBO)": (fit_policy_svi, {"guide": "tabular"}),
    "Pyro SVI amortized (exact ELBO)": (fit_policy_svi, {"guide": "amortized"}),
    "Pyro SVI tabular (TraceGraph, 256 particles)": (fit_policy_svi, {"guide": "tabular", "estimator": "sample"}),
}


def run(n: int, args) -> list:
    mdp = gridworld(square_layout(n), slip=0.2, horizon=2 * n)
    cai.soft_value_iteration(mdp, 1.0)                           # warm-up
    times = []
    for _ in range(20):
        t = time.perf_counter()
        sv = cai.soft_value_iteration(mdp, 1.0)
        times.append(time.perf_counter() - t)
    t_vi = statistics.median(times)
    ref, best = sv.policy, sv.max_elbo.item()
    visits = cai.policy_marginals(mdp, ref).state
    rows = [(n, mdp.n_states, 2 * n, "soft value iteration", t_vi, 0, 0.0, 0.0, True)]
    for name, (fit, kw) in METHODS.items():
        sample = kw.get("estimator") == "sample"
        if sample and not args.with_sample:
            continue
        amortized = kw.get("guide") == "amortized"
        tv_tol = args.tv_amortized if amortized else args.tv
        gap_tol = args.gap_amortized if amortized else args.gap

        def reached(step, value, policy, tv_tol=tv_tol, gap_tol=gap_tol):
            return (policy_tv(policy, ref, visits, reduce="max", threshold=1e-3) <= tv_tol
                    and best - cai.elbo(mdp, policy, 1.0).item() <= gap_tol)

        steps = args.sample_steps if sample else args.max_steps
        fit(mdp, 1.0, steps=2, tol=None, progress=False, **kw)  # warm-up: one-off imports and allocations
        res = fit(mdp, 1.0, steps=steps, tol=None, progress=False, callback=reached, callback_every=args.every,
                  num_threads=args.fit_threads or None, **kw)
        tv = policy_tv(res.policy, ref, visits, reduce="max", threshold=1e-3)
        rows.append((n, mdp.n_states, 2 * n, name, res.wall_time, res.steps, tv, best - res.elbo, res.converged))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 8, 10])
    p.add_argument("--tv", type=float, default=0.02)
    p.add_argument("--gap", type=float, default=1e-3)
    p.add_argument("--tv-amortized", type=float, default=0.05)
    p.add_argument("--gap-amortized", type=float, default=1e-2)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--with-sample", action="store_true", help="also run the sampled (TraceGraph_ELBO) estimator")
    p.add_argument("--sample-steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads outside the fits (default: torch's)")
    p.add_argument("--fit-threads", type=int, default=1, help="num_threads of the fits (0: torch's setting)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny step caps")
    args = p.parse_args(argv)
    if args.quick:
        args.max_steps, args.sample_steps = 50, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    fit_threads = args.fit_threads or "default"
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s) ({fit_threads} in the fits), "
          f"{platform.processor() or platform.machine()}")
    print("| grid | S | T | method | time to tolerance (s) | steps | x soft VI | max TV | ELBO gap | reached |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        rows = run(n, args)
        t_vi = rows[0][4]
        for (n_, S, T, name, t, steps, tv, gap, ok) in rows:
            print(f"| {n_}x{n_} | {S} | {T} | {name} | {t:.4f} | {steps} | {t / t_vi:.0f} | {tv:.4f} | {gap:.2e} | "
                  f"{'yes' if ok else 'no'} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
