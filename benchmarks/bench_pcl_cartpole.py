"""Path consistency learning (deep PCL) on CartPole-v1: the greedy policy's return after a budget.

Usage::

    python benchmarks/bench_pcl_cartpole.py --seeds 0 1 2 --steps 40000
    python benchmarks/bench_pcl_cartpole.py --smoke      # a few hundred steps, tiny networks

Evaluates 10 greedy episodes (``argmax pi``) every ``--eval-every`` steps and prints the first step
whose mean reached 475, the best and the last evaluation means, and steps/s. Curves go to
``benchmarks/out/pcl_cartpole_seed{seed}.json``.
"""

import argparse
import json
import os

import numpy as np
import torch

from cai.algorithms.deep.pcl import PCL, PCLConfig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=PCLConfig.alpha)
    parser.add_argument("--rollout", type=int, default=PCLConfig.rollout)
    parser.add_argument("--lr-pi", type=float, default=PCLConfig.lr_pi)
    parser.add_argument("--lr-v", type=float, default=PCLConfig.lr_v)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(PCLConfig.hidden_sizes))
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI): 300 steps, 16 units")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args(argv)
    extra = {}
    if args.smoke:
        args.seeds, args.steps, args.eval_every, args.eval_episodes, args.hidden = [0], 300, 150, 2, [16]
        extra = dict(learning_starts=100, batch_size=16)
    import gymnasium as gym

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for seed in args.seeds:
        cfg = PCLConfig(alpha=args.alpha, rollout=args.rollout, lr_pi=args.lr_pi, lr_v=args.lr_v,
                        hidden_sizes=tuple(args.hidden), seed=seed, eval_every=args.eval_every,
                        eval_episodes=args.eval_episodes, progress=False, **extra)
        agent = PCL(cfg).fit(gym.make("CartPole-v1"), total_steps=args.steps, eval_env=gym.make("CartPole-v1"))
        h = agent.history_
        means = [float(np.mean(r)) for r in h.eval_returns]
        first = next((s for s, m in zip(h.eval_steps, means) if m >= 475), None)
        results[seed] = dict(means=means, losses=h.losses)
        print(f"pcl seed {seed}: first eval >= 475 at step {first}; best {max(means):.1f}; last {means[-1]:.1f}; "
              f"steps/s {h.steps_per_second:.0f}; curve {np.round(means, 1).tolist()}", flush=True)
        with open(os.path.join(args.out, f"pcl_cartpole_seed{seed}.json"), "w") as f:
            json.dump(dict(seed=seed, config={k: v for k, v in cfg.__dict__.items()}, eval_steps=h.eval_steps,
                           eval_means=means, first_475=first, episode_steps=h.episode_steps,
                           episode_returns=h.episode_returns), f, default=str)
    return results


if __name__ == "__main__":
    main()
