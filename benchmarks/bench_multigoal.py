"""Soft Q-learning (SVGD) and SAC on the multi-goal world: which goals do rollouts from the origin reach?

Usage::

    python benchmarks/bench_multigoal.py --algo sql --steps 20000 --seeds 0
    python benchmarks/bench_multigoal.py --algo sac --steps 20000 --seeds 0

After training, 100 rollouts of the stochastic policy start exactly at the origin; the script reports
the fraction that reaches each of the four goals (criterion: every goal >= 10%). It writes the
fractions and curves to ``benchmarks/out/multigoal_{algo}_seed{seed}.json`` and a figure (rollouts and
action samples) to ``benchmarks/out/multigoal_{algo}_seed{seed}.png``.
"""

import argparse
import json
import os

import numpy as np
import torch

from cai.algorithms.deep.sac import SAC, SACConfig
from cai.algorithms.deep.sql import SQL, SQLConfig
from cai.viz import plot_multigoal  # noqa: E402
from cai.worlds.multigoal import MultiGoalEnv, goal_hit_fractions

STATES = [(0.0, 0.0), (-2.5, -2.5), (2.5, 2.5), (2.5, -2.5)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["sql", "sac"], required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--alpha", type=float, default=14.0, help="SQL temperature")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for seed in args.seeds:
        if args.algo == "sql":
            cfg = SQLConfig(hidden_sizes=tuple(args.hidden), alpha=args.alpha, batch_size=64, seed=seed,
                            progress=args.progress)
            agent = SQL(cfg).fit(MultiGoalEnv(), total_steps=args.steps)
            act = agent.act
            samples = {s: agent.sample_actions(np.array(s, np.float32), 100) for s in STATES}
        else:
            cfg = SACConfig(hidden_sizes=tuple(args.hidden), batch_size=256, seed=seed, progress=args.progress)
            agent = SAC(cfg).fit(MultiGoalEnv(), total_steps=args.steps)

            def act(o, agent=agent):
                return agent.act(o, deterministic=False)

            samples = {s: np.stack([act(np.array(s, np.float32)) for _ in range(100)]) for s in STATES}
        frac, paths = goal_hit_fractions(MultiGoalEnv(), act, n_rollouts=100, seed=seed + 1)
        h = agent.history_
        print(f"{args.algo} seed {seed}: goal fractions (5,0),(-5,0),(0,5),(0,-5) = {frac.tolist()}; "
              f"all >= 10%: {bool(np.all(frac >= 0.1))}; steps/s {h.steps_per_second:.1f}; "
              f"mean of last 20 training returns {np.mean(h.episode_returns[-20:]):.1f}", flush=True)
        name = f"multigoal_{args.algo}{args.tag}_seed{seed}"
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(dict(algo=args.algo, seed=seed, steps=args.steps, fractions=frac.tolist(),
                           config={k: v for k, v in cfg.__dict__.items()}, episode_steps=h.episode_steps,
                           episode_returns=h.episode_returns), f, default=str)
        ax = plot_multigoal(paths=paths, action_samples=samples)
        ax.set_title(f"{args.algo.upper()} seed {seed}: {np.round(frac, 2).tolist()}")
        ax.figure.savefig(os.path.join(args.out, name + ".png"), dpi=100)
        plt.close(ax.figure)


if __name__ == "__main__":
    main()
