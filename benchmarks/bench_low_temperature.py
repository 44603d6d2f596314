"""Whole solves at low temperature, where values spread over far more than one float64 shift covers.

At ``alpha`` small against the reward scale, ``V / alpha`` spans thousands of nats: a product
``P @ exp(V / alpha - max)`` underflows in most rows. This script times, on a sparse gridworld
(step cost 1, goal reward 10, ``slip=0.1``), for several ``alpha``:

* ``cai.backward_messages`` and ``cai.soft_value_iteration`` with ``keep="values"`` (the fused
  step, :class:`cai.ops.values_step.SoftValueStep`: exact inference sums slabs of values with the
  action-marginalised operator; soft VI hands the solve to the general route when a sum underflows);
* the same with the fused step switched off (the general log-space backup; rows that underflow
  are recomputed from slabs by :func:`cai.ops.logspace.log_matmul_exp`);
* ``keep="all"`` (the general backup, storing Q and the policy).

It first asserts that both routes agree (relative 1e-10, entry by entry) with the general route
without slabs (rows that underflow recomputed term by term), and reports how the fused step fared
(steps run / declined / refused after a decline). Medians of interleaved repeats. ``--quick`` is a
smoke run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import cai  # noqa: E402
from cai.ops import backup, logspace  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402


def _open_grid(N: int, T: int):
    layout = "\n".join(["S" + "." * (N - 1)] + ["." * N] * (N - 2) + ["." * (N - 1) + "G"])
    return gridworld(layout, sparse=True, slip=0.1, horizon=T)


def _general(fn: Callable, slabs: bool = True) -> Callable:
    """``fn`` with the fused step switched off (and, with ``slabs=False``, the slabbed recomputation
    too: underflowing rows term by term, a reference that shares no slab code)."""
    def run(*a, **k):
        orig, orig_b = backup.SoftValueStep.for_solver, logspace._banded
        backup.SoftValueStep.for_solver = classmethod(lambda cls, *x, **y: None)
        if not slabs:
            logspace._banded = lambda *x, **y: None
        try:
            return fn(*a, **k)
        finally:
            backup.SoftValueStep.for_solver, logspace._banded = orig, orig_b
    return run


def _count_steps(fn: Callable, *a, **k) -> Dict[str, int]:
    """Fused steps run, declined, and refused after a decline (declining is sticky)."""
    counts = {"ran": 0, "declined": 0, "refused": 0}
    orig = backup.SoftValueStep.__call__

    def spy(self, *x, **y):
        was = self.declined
        out = orig(self, *x, **y)
        counts["refused" if was else "declined" if out is None else "ran"] += 1
        return out

    backup.SoftValueStep.__call__ = spy
    try:
        fn(*a, **k)
    finally:
        backup.SoftValueStep.__call__ = orig
    return counts


def _rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest entry-wise relative difference (absolute below 1)."""
    return float(((x - ref).abs() / ref.abs().clamp(min=1.0)).max())


def _median_times(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, float]:
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()                                                    # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke-sized run")
    p.add_argument("--grid", type=int, default=200, help="side N of the open N x N gridworld")
    p.add_argument("--horizon", type=int, default=100)
    p.add_argument("--alphas", type=float, nargs="*", default=[1.0, 0.2, 0.05])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.grid, args.horizon, args.alphas, args.repeats = 12, 20, [1.0, 0.02], 1
    torch.set_num_threads(args.threads)
    mdp = _open_grid(args.grid, args.horizon)
    print(f"command: python benchmarks/bench_low_temperature.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"grid {args.grid}x{args.grid}: S={mdp.n_states}, T={args.horizon}, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f}")
    print()
    print("| solver | alpha | V spread / alpha | fused steps run / declined / refused after | keep=values s | "
          "keep=values, general route s | keep=all s |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for alpha in args.alphas:
        for name, solver in (("exact", cai.backward_messages), ("soft VI", cai.soft_value_iteration)):
            fused = solver(mdp, alpha, keep="values")
            general = _general(solver)(mdp, alpha, keep="values")
            reference = _general(solver, slabs=False)(mdp, alpha, keep="values")
            for what, x in (("fused", fused), ("general", general)):
                err = _rel_err(x.V, reference.V)
                assert err <= 1e-10, f"{name} at alpha={alpha}: the {what} route differs by {err:.3g}"
            spread = float((general.V[0].max() - general.V[0].min()) / alpha)
            counts = _count_steps(solver, mdp, alpha, keep="values")
            t = _median_times({
                "fused": lambda solver=solver, alpha=alpha: solver(mdp, alpha, keep="values"),
                "general": lambda solver=solver, alpha=alpha: _general(solver)(mdp, alpha, keep="values"),
                "all": lambda solver=solver, alpha=alpha: solver(mdp, alpha, keep="all"),
            }, args.repeats)
            print(f"| {name} | {alpha:g} | {spread:.0f} | {counts['ran']} / {counts['declined']} / {counts['refused']} | "
                  f"{t['fused']:.3f} | {t['general']:.3f} | {t['all']:.3f} |", flush=True)
    print()
    print("agreement: fused and general routes within 1e-10 (relative, entry by entry) of the general route "
          "without slabs (underflowing rows term by term), asserted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
