"""Tune SAC's entropy target (the temperature's set point) on Pendulum with Ray Tune.

SAC adjusts its temperature ``alpha`` by dual descent so that the policy's entropy stays at
``target_entropy`` (default ``-action_dim = -1`` on Pendulum). This script tries several targets
and seeds as Ray Tune trials on a local 2-CPU cluster that it starts and shuts down, each trial
being :func:`cai.algorithms.deep.experiment.tune_trainable` (``train(config)`` reporting after every
evaluation), and prints the final evaluation return per target, averaged over seeds.

    python examples/tune_sac_temperature.py                      # 4 targets x 2 seeds, 10k steps each
    python examples/tune_sac_temperature.py --smoke              # tiny budget (CI smoke test)
    python examples/tune_sac_temperature.py --smoke --no-tune    # same trials via cai.sweep, serially, no Ray

Needs ``pip install 'control-as-inference[tune,gym]'``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import List, Optional

TARGETS = [-4.0, -2.0, -1.0, 0.0]
SEEDS = [0, 1]


def base_config(smoke: bool) -> dict:
    """The fixed part of every trial's :func:`~cai.algorithms.deep.experiment.train` configuration."""
    if smoke:
        return dict(algorithm="sac", env="Pendulum-v1", total_steps=120, eval_every=60, eval_episodes=1,
                    hidden_sizes=[16], batch_size=16, learning_starts=40)
    return dict(algorithm="sac", env="Pendulum-v1", total_steps=10_000, eval_every=2000, eval_episodes=5,
                learning_starts=1000)


def search_axes(smoke: bool) -> dict:
    """The searched values: entropy targets and seeds."""
    return dict(target_entropy=TARGETS[1:3] if smoke else TARGETS, seed=SEEDS[:1] if smoke else SEEDS)


def run_tune(smoke: bool, storage: str):
    """Every trial through Ray Tune on a local cluster started (``num_cpus=2``) and shut down here."""
    import ray
    from ray import tune

    from cai.algorithms.deep.experiment import tune_trainable

    axes = search_axes(smoke)
    space = {**base_config(smoke), **{k: tune.grid_search(v) for k, v in axes.items()}}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(tune.with_resources(tune_trainable, {"cpu": 1}), param_space=space,
                           tune_config=tune.TuneConfig(metric="eval_return", mode="max"),
                           run_config=tune.RunConfig(name="tune_sac_temperature", storage_path=os.path.abspath(storage),
                                                     verbose=0))
        results = tuner.fit()
        df = results.get_dataframe()
    finally:
        ray.shutdown()
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} trial(s) failed; first: {errors[0]}")
    return df.rename(columns={f"config/{k}": k for k in axes})


def run_direct(smoke: bool):
    """The same trials without Ray: :func:`cai.sweep.sweep` of ``train`` on the serial engine."""
    from cai.algorithms.deep.experiment import train
    from cai.sweep import grid, sweep

    configs = [{**base_config(smoke), **c} for c in grid(**search_axes(smoke))]   # (grid would read lists as axes)
    df = sweep(train, configs, progress=False)
    if df["error"].notna().any():
        raise RuntimeError(f"trial failed: {df['error'].dropna().iloc[0]}")
    return df


def summarise(df) -> str:
    """Final evaluation return (mean over seeds) and final temperature per entropy target."""
    table = df.groupby("target_entropy")[["eval_return", "best_return", "alpha"]].mean().sort_index()
    best = table["eval_return"].idxmax()
    return (f"{table.to_string(float_format=lambda x: f'{x:.3f}')}\n"
            f"eval_return: mean return of the final policy's evaluation episodes, averaged over seeds\n"
            f"best entropy target: {best}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budget (seconds of training per trial)")
    parser.add_argument("--no-tune", action="store_true", help="run the trials with cai.sweep instead of Ray Tune")
    parser.add_argument("--storage", default=None, help="Ray Tune results directory (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.no_tune:
        df = run_direct(args.smoke)
    elif args.storage is None:
        with tempfile.TemporaryDirectory() as storage:
            df = run_tune(args.smoke, storage)
    else:
        df = run_tune(args.smoke, args.storage)
    print(summarise(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())
