"""SAC on Pendulum-v1: final evaluation return and env steps/s, beside Stable-Baselines3's SAC.

Usage::

    python benchmarks/bench_sac_pendulum.py --seeds 0 1 2 --steps 20000 [--no-sb3]

For each seed: cai's SAC trains ``--steps`` environment steps with a deterministic evaluation of
10 episodes every 2,000 steps; the reported figure is the mean of the last evaluation (10
episodes at the final step). Then, when installed, SB3's SAC trains with the same network sizes
(256, 256), learning rate, batch size, buffer, warm-up and one gradient step per environment
step, and is evaluated the same way. Steps/s counts training only (evaluation excluded) for both.
Curves are written to ``benchmarks/out/sac_pendulum_seed{seed}.json``.
"""

import argparse
import json
import os
import time

import numpy as np
import torch

from cai.algorithms.deep.loop import evaluate_policy
from cai.algorithms.deep.sac import SAC, SACConfig


def run_cai(seed, steps, progress):
    import gymnasium as gym

    cfg = SACConfig(seed=seed, eval_every=2000, eval_episodes=10, progress=progress)
    agent = SAC(cfg).fit(gym.make("Pendulum-v1"), total_steps=steps, eval_env=gym.make("Pendulum-v1"))
    h = agent.history_
    return dict(final_eval=float(np.mean(h.eval_returns[-1])), steps_per_s=h.steps_per_second,
                eval_steps=h.eval_steps, eval_means=[float(np.mean(r)) for r in h.eval_returns],
                episode_steps=h.episode_steps, episode_returns=h.episode_returns)


def run_sb3(seed, steps, progress):
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    env = gym.make("Pendulum-v1")
    model = SB3SAC("MlpPolicy", env, learning_rate=3e-4, buffer_size=1_000_000, learning_starts=1000,
                   batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                   policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=False)
    wall = time.perf_counter() - t0
    returns = evaluate_policy(gym.make("Pendulum-v1"), lambda o: model.predict(o, deterministic=True)[0], 10,
                              seed=seed + 10_000 + steps)
    return dict(final_eval=float(np.mean(returns)), steps_per_s=steps / wall)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--no-sb3", action="store_true")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both libraries)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    rows = []
    for seed in args.seeds:
        res = dict(seed=seed, cai=run_cai(seed, args.steps, args.progress))
        print(f"seed {seed} cai: final eval {res['cai']['final_eval']:.1f}  "
              f"steps/s {res['cai']['steps_per_s']:.1f}  curve {np.round(res['cai']['eval_means'], 1).tolist()}",
              flush=True)
        if not args.no_sb3:
            try:
                res["sb3"] = run_sb3(seed, args.steps, args.progress)
                print(f"seed {seed} sb3: final eval {res['sb3']['final_eval']:.1f}  "
                      f"steps/s {res['sb3']['steps_per_s']:.1f}", flush=True)
            except ImportError as err:
                print(f"stable-baselines3 not available: {err}", flush=True)
        with open(os.path.join(args.out, f"sac_pendulum_seed{seed}.json"), "w") as f:
            json.dump(res, f)
        rows.append(res)
    finals = [r["cai"]["final_eval"] for r in rows]
    print(f"cai SAC final eval per seed {np.round(finals, 1).tolist()}, mean {np.mean(finals):.1f}; "
          f"steps/s mean {np.mean([r['cai']['steps_per_s'] for r in rows]):.1f}")
    if rows and "sb3" in rows[0]:
        print(f"SB3 SAC final eval per seed {np.round([r['sb3']['final_eval'] for r in rows], 1).tolist()}; "
              f"steps/s mean {np.mean([r['sb3']['steps_per_s'] for r in rows]):.1f}")


if __name__ == "__main__":
    main()
