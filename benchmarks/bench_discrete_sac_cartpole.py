"""Discrete SAC beside soft DQN on CartPole-v1, the same budget of environment steps and seeds.

Usage::

    python benchmarks/bench_discrete_sac_cartpole.py --seeds 0 1 2 --steps 40000
    python benchmarks/bench_discrete_sac_cartpole.py --smoke      # a few hundred steps, tiny networks

For each seed, runs :class:`cai.DiscreteSAC` with its CartPole-v1 preset
(``DiscreteSACConfig.preset("CartPole-v1")``; one run per ``--ratios`` entry, the target entropy as
a fraction of ``log |A|``, and ``--tau`` / ``--lr`` overriding the preset's) and :class:`cai.SoftDQN`
with its defaults (its CartPole-v1 setting), on the same budget: the same environment steps, seeds,
warm-up, discount and evaluation schedule (10 greedy episodes every ``--eval-every`` steps).
``--hidden`` and ``--batch`` set both learners' network and batch size. Prints for each run the
first step whose evaluation mean reached 475, the best and the last evaluation means, steps/s
(training wall time only) and, for discrete SAC, the final temperature and entropy.
Curves go to ``benchmarks/out/discrete_sac_cartpole_{learner}_seed{seed}.json``.
"""

import argparse
import json
import os

import numpy as np
import torch

from cai.algorithms.deep.discrete_sac import PRESETS, DiscreteSAC, DiscreteSACConfig
from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig


def summary(history):
    means = [float(np.mean(r)) for r in history.eval_returns]
    first = next((s for s, m in zip(history.eval_steps, means) if m >= 475), None)
    return means, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--ratios", type=float, nargs="*", default=[PRESETS["CartPole-v1"]["target_entropy_ratio"]],
                        help="target entropy ratios of discrete SAC (fractions of log|A|)")
    parser.add_argument("--tau", type=float, default=None, help="discrete SAC's Polyak tau (default: the preset's)")
    parser.add_argument("--lr", type=float, default=None, help="discrete SAC's learning rate (default: the preset's)")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, help="both learners (default: their own)")
    parser.add_argument("--batch", type=int, default=None, help="both learners (default: their own)")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--skip-dqn", action="store_true")
    parser.add_argument("--skip-dsac", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI): 300 steps, 16 units")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.steps, args.eval_every, args.eval_episodes = [0], 300, 150, 2
        args.hidden, args.batch, args.learning_starts = [16], 16, 100
    import gymnasium as gym

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    shared = dict(learning_starts=args.learning_starts, gamma=0.99, eval_every=args.eval_every,
                  eval_episodes=args.eval_episodes, progress=False)
    if args.hidden is not None:
        shared["hidden_sizes"] = tuple(args.hidden)
    if args.batch is not None:
        shared["batch_size"] = args.batch
    dsac_only = {k: v for k, v in dict(tau=args.tau, lr=args.lr).items() if v is not None}
    results, rows = {}, []
    for seed in args.seeds:
        runs = [(f"dsac{r:g}", DiscreteSAC(DiscreteSACConfig.preset("CartPole-v1", **shared, **dsac_only,
                                                                     target_entropy_ratio=r, seed=seed)))
                for r in ([] if args.skip_dsac else args.ratios)]
        if not args.skip_dqn:
            runs.append(("soft_dqn", SoftDQN(SoftDQNConfig(**shared, seed=seed))))
        for name, agent in runs:
            agent.fit(gym.make("CartPole-v1"), total_steps=args.steps, eval_env=gym.make("CartPole-v1"))
            h = agent.history_
            means, first = summary(h)
            results[(name, seed)] = means
            extra = ""
            if "alpha" in h.losses:
                extra = f"; final alpha {h.losses['alpha'][-1][1]:.4f}, entropy {h.losses['entropy'][-1][1]:.3f}"
            print(f"{name} seed {seed}: first eval >= 475 at step {first}; best {max(means):.1f}; last {means[-1]:.1f}; "
                  f"steps/s {h.steps_per_second:.0f}{extra}; curve {np.round(means, 1).tolist()}", flush=True)
            with open(os.path.join(args.out, f"discrete_sac_cartpole_{name}_seed{seed}.json"), "w") as f:
                json.dump(dict(seed=seed, learner=name, config={k: v for k, v in agent.config.__dict__.items()},
                               eval_steps=h.eval_steps, eval_means=means, first_475=first,
                               episode_steps=h.episode_steps, episode_returns=h.episode_returns), f, default=str)
            rows.append(f"| {name} | {seed} | {first if first is not None else f'not within {args.steps}'} | "
                        f"{max(means):.1f} | {means[-1]:.1f} | {h.steps_per_second:.0f} |")
    print("\n| learner | seed | first eval >= 475 (step) | best eval | last eval | steps/s |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    return results


if __name__ == "__main__":
    main()
