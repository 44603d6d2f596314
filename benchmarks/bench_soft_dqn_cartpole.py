"""Soft DQN on CartPole-v1: evaluation returns of the greedy policy during training.

Usage::

    python benchmarks/bench_soft_dqn_cartpole.py --seeds 0 1 2 --steps 40000

Evaluates 10 episodes of ``argmax_a Q(s, a)`` every ``--eval-every`` steps and reports the first
step at which the mean reached 475, the best and the last evaluation. Curves are written to
``benchmarks/out/soft_dqn_cartpole_seed{seed}.json``.
"""

import argparse
import json
import os

import numpy as np
import torch

from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig

CONFIG = dict(hidden_sizes=(256, 256), alpha=0.01, lr=5e-4, batch_size=128, buffer_size=100_000, gamma=0.99,
              target_every=1, tau=0.005, train_every=1, learning_starts=1000, huber=True, max_grad_norm=10.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--eval-every", type=int, default=2_500)
    parser.add_argument("--alpha", type=float, default=CONFIG["alpha"])
    parser.add_argument("--lr", type=float, default=CONFIG["lr"])
    parser.add_argument("--tau", type=float, default=CONFIG["tau"])
    parser.add_argument("--target-every", type=int, default=CONFIG["target_every"])
    parser.add_argument("--batch", type=int, default=CONFIG["batch_size"])
    parser.add_argument("--hidden", type=int, nargs="+", default=list(CONFIG["hidden_sizes"]))
    parser.add_argument("--tag", default="")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    import gymnasium as gym

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    for seed in args.seeds:
        overrides = dict(alpha=args.alpha, lr=args.lr, tau=args.tau, target_every=args.target_every,
                         batch_size=args.batch, hidden_sizes=tuple(args.hidden))
        cfg = SoftDQNConfig(**{**CONFIG, **overrides}, seed=seed, eval_every=args.eval_every,
                            eval_episodes=10, progress=args.progress)
        agent = SoftDQN(cfg).fit(gym.make("CartPole-v1"), total_steps=args.steps, eval_env=gym.make("CartPole-v1"))
        h = agent.history_
        means = [float(np.mean(r)) for r in h.eval_returns]
        first = next((s for s, m in zip(h.eval_steps, means) if m >= 475), None)
        print(f"seed {seed}: first eval >= 475 at step {first}; best {max(means):.1f}; last {means[-1]:.1f}; "
              f"steps/s {h.steps_per_second:.0f}; curve {np.round(means, 1).tolist()}", flush=True)
        with open(os.path.join(args.out, f"soft_dqn_cartpole{args.tag}_seed{seed}.json"), "w") as f:
            json.dump(dict(seed=seed, config={k: v for k, v in cfg.__dict__.items()}, eval_steps=h.eval_steps,
                           eval_means=means, first_475=first, episode_steps=h.episode_steps,
                           episode_returns=h.episode_returns), f, default=str)


if __name__ == "__main__":
    main()
