"""Sweep engines side by side: 1,000 Garnet MDPs (S=200, A=4) serially, on joblib and on a local Ray cluster.

Each configuration builds one Garnet MDP and solves it by exact inference, soft VI and hard VI
(:func:`cai.sweep.studies.garnet`). Each engine is started once and warmed up on a few
configurations (worker processes import torch and cai; Ray starts its local cluster), reported
separately; then the three runs are interleaved ``--repeats`` times. The table gives the median
wall time of each engine and its speed-up over the serial loop, and checks that every engine
produced the serial table exactly.

    python benchmarks/bench_sweep.py                   # the recorded run (1000 MDPs, 2 workers)
    python benchmarks/bench_sweep.py --n 40 --repeats 1  # smoke
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from cai.sweep import RayEngine, grid, sweep  # noqa: E402
from cai.sweep.studies import garnet  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="number of Garnet MDPs")
    p.add_argument("--states", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    configs = grid(n_states=args.states, n_actions=4, branching=3, alpha=1.0, horizon=20, seed=list(range(args.n)))
    from cai.sweep import JoblibEngine, SerialEngine

    engines = {"serial": SerialEngine(), "joblib": JoblibEngine(args.workers)}
    ray_engine = None
    if not args.no_ray:
        try:
            ray_engine = RayEngine(args.workers)
            engines["ray"] = ray_engine
        except ImportError:
            pass
    warm = configs[: 2 * args.workers]
    t_start = {}
    for name, eng in engines.items():                   # start the pools / the cluster, import cai there
        t0 = time.perf_counter()
        sweep(garnet, warm, engine=eng, progress=False)
        t_start[name] = time.perf_counter() - t0
    times = {k: [] for k in engines}
    tables = {}
    for _ in range(args.repeats):
        for name, eng in engines.items():
            t0 = time.perf_counter()
            tables[name] = sweep(garnet, configs, engine=eng, workers=args.workers, progress=False)
            times[name].append(time.perf_counter() - t0)
    for eng in engines.values():
        eng.close()
    for df in tables.values():
        pd.testing.assert_frame_equal(df, tables["serial"])
    base = statistics.median(times["serial"])
    print(f"# sweep engines: {args.n} Garnet MDPs (S={args.states}, A=4, T=20), {args.workers} workers, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load {os.getloadavg()[0]:.2f}\n")
    print("| engine | start-up + warm-up (s) | median wall (s) | runs (s) | speed-up over serial |")
    print("|---|---:|---:|---|---:|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {t_start[name]:.2f} | {m:.2f} | {', '.join(f'{t:.2f}' for t in ts)} | {base / m:.2f}x |")
    if "ray" in times:
        print(f"\nray / joblib wall time: {statistics.median(times['ray']) / statistics.median(times['joblib']):.2f}x")
    print("every engine's table equals the serial table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
