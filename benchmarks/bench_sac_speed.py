"""Training speed of cai's SAC vs Stable-Baselines3's SAC on Pendulum-v1, interleaved.

Usage::

    python benchmarks/bench_sac_speed.py --reps 3 --steps 3000

Both libraries train ``--steps`` environment steps (the first 1,000 uniformly random, then one
gradient step per environment step) with the same sizes: two hidden layers of 256, batch 256,
Adam 3e-4, automatic temperature. The runs alternate cai / SB3 ``--reps`` times so that a
machine whose load changes over time slows both alike; the script prints the steps/s of every
run and the median ratio. Only ``fit``/``learn`` is timed (no evaluation). Two clocks: wall time,
and the process's CPU time (``time.process_time``), which a shared machine's load disturbs far less;
with one intra-op thread, steps per CPU-second is the throughput of one core.
"""

import argparse
import time

import numpy as np
import torch

from cai.algorithms.deep.sac import SAC, SACConfig


def cai_run(steps, seed):
    import gymnasium as gym

    t0, c0 = time.perf_counter(), time.process_time()
    SAC(SACConfig(seed=seed, progress=False)).fit(gym.make("Pendulum-v1"), total_steps=steps)
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def sb3_run(steps, seed):
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC

    model = SB3SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=3e-4, buffer_size=1_000_000,
                   learning_starts=1000, batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
                   ent_coef="auto", policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0)
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    cai, sb3 = [], []  # rows of (wall steps/s, CPU steps/s)
    for rep in range(args.reps):
        cai.append(cai_run(args.steps, rep))
        sb3.append(sb3_run(args.steps, rep))
        print(f"rep {rep}: cai {cai[-1][0]:.1f} steps/s wall, {cai[-1][1]:.1f} per CPU-s; "
              f"sb3 {sb3[-1][0]:.1f} steps/s wall, {sb3[-1][1]:.1f} per CPU-s", flush=True)
    cai, sb3 = np.array(cai), np.array(sb3)
    for k, clock in enumerate(["wall", "CPU"]):
        print(f"{clock}: median cai {np.median(cai[:, k]):.1f}, sb3 {np.median(sb3[:, k]):.1f} steps/s; "
              f"median ratio cai/sb3 {np.median(cai[:, k] / sb3[:, k]):.2f}")

if __name__ == "__main__":
    main()
