"""``train(config) -> metrics``, its use by ``cai.sweep``, the Ray Tune trainable and the example script.

Every metric is checked against a learner trained directly with the loop's own evaluation (the same
seeds give the same numbers, exactly); the Ray Tune run (slow) must give the serial sweep's table.
"""
import importlib.util
import math
import os

import numpy as np
import pytest

from cai.algorithms.deep.experiment import METRICS, train, tune_trainable
from cai.algorithms.deep.sac import SAC, SACConfig
from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig

gym = pytest.importorskip("gymnasium")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY = dict(hidden_sizes=[16], batch_size=16, learning_starts=40, log_every=10, seed=3, buffer_size=5000)
SAC_RUN = dict(algorithm="sac", env="Pendulum-v1", total_steps=200, eval_every=100, eval_episodes=1, **TINY)


def without_times(m):
    return {k: v for k, v in m.items() if k not in ("train_time", "wall_time")}


def test_train_metrics_are_those_of_the_learner_trained_directly():
    reports = []
    m = train(SAC_RUN, report=reports.append)
    assert set(m) == set(METRICS)
    direct = SAC(SACConfig(**{**TINY, "hidden_sizes": (16,)}, eval_every=100, eval_episodes=1, progress=False))
    direct.fit("Pendulum-v1", 200)
    means = [float(np.mean(r)) for r in direct.history_.eval_returns]
    assert direct.history_.eval_steps == [100, 200]
    assert m["eval_return"] == means[-1] and m["eval_step"] == 200
    assert m["best_return"] == max(means) and m["best_step"] == 100 * (1 + means.index(max(means)))
    assert (m["steps"], m["updates"], m["episodes"]) == (200, direct.n_updates_, len(direct.history_.episode_returns))
    assert m["alpha"] == float(direct.log_alpha_.detach().exp()) and m["alpha"] != 1.0   # learned
    assert m["stopped_early"] is False and 0 < m["train_time"] <= m["wall_time"]
    # one report per evaluation, the last one the final metrics
    assert [r["eval_step"] for r in reports] == [100, 200]
    assert without_times(reports[-1]) == without_times(m)


def test_train_always_evaluates_the_final_policy_and_stops_early():
    cfg = dict(algorithm="soft_dqn", env="CartPole-v1", total_steps=130, eval_every=60, eval_episodes=1, **TINY)
    m = train(cfg)
    direct = SoftDQN(SoftDQNConfig(**{**TINY, "hidden_sizes": (16,)}, progress=False)).fit("CartPole-v1", 130)
    assert m["eval_step"] == m["steps"] == 130 and m["alpha"] == direct.config.alpha
    assert m["updates"] == direct.n_updates_
    stopped = train({**cfg, "stop_threshold": -1e9})
    assert stopped["stopped_early"] is True and stopped["steps"] == stopped["eval_step"] == 60


def test_train_logs_to_tensorboard_and_saves_the_best_model(tmp_path):
    pytest.importorskip("tensorboard")
    from tests.algorithms.deep.test_callbacks import read_scalars

    cfg = dict(algorithm="soft_dqn", env="CartPole-v1", total_steps=120, eval_every=40, eval_episodes=1, **TINY,
               log_dir=str(tmp_path / "tb"), best_model_path=str(tmp_path / "best.pt"))
    m = train(cfg)
    evals = read_scalars(tmp_path / "tb")["eval/mean_return"]
    assert [s for s, _ in evals] == [40, 80, 120] and evals[-1][1] == np.float32(m["eval_return"])
    assert max(v for _, v in evals) == np.float32(m["best_return"])
    assert SoftDQN.load(tmp_path / "best.pt").num_timesteps_ == m["best_step"]


def test_sweep_over_sac_target_entropy_gives_a_table_of_metrics():
    pytest.importorskip("pandas")
    from cai.sweep import sweep

    configs = [{**SAC_RUN, "target_entropy": t} for t in (-1.0, 0.5)]
    df = sweep(train, configs, engine="serial", progress=False)
    assert list(df["target_entropy"]) == [-1.0, 0.5] and df["error"].isna().all()
    assert set(METRICS) <= set(df.columns) and list(df["steps"]) == [200, 200]
    # -1.0 is SAC's default target on Pendulum (-action_dim): the row is the default run, exactly
    default = train(SAC_RUN)
    row = df.iloc[0].to_dict()
    assert {k: row[k] for k in without_times(default)} == without_times(default)
    assert df["alpha"].iloc[0] != df["alpha"].iloc[1]            # the target moves the temperature


def test_tune_trainable_without_tune_reports_every_evaluation():
    reports = []
    tune_trainable({**SAC_RUN, "total_steps": 100, "eval_every": 50}, report=reports.append)
    assert [r["eval_step"] for r in reports] == [50, 100] and all(set(r) == set(METRICS) for r in reports)


def test_bad_configs_name_the_key():
    with pytest.raises(TypeError, match="config"):
        train([("algorithm", "sac")])
    with pytest.raises(ValueError, match="algorithm"):
        train({**SAC_RUN, "algorithm": "ppo"})
    with pytest.raises(ValueError, match="'env'"):
        train({k: v for k, v in SAC_RUN.items() if k != "env"})
    with pytest.raises(ValueError, match="total_steps"):
        train({**SAC_RUN, "total_steps": 0})
    with pytest.raises(ValueError, match="eval_every"):
        train({**SAC_RUN, "eval_every": -5})
    with pytest.raises(ValueError, match="target_entropyy"):
        train({**SAC_RUN, "target_entropyy": 0.0})
    with pytest.raises(ValueError, match="env"):
        train({**SAC_RUN, "env": "NoSuchEnv-v9"})
    with pytest.raises(ValueError, match="patience"):
        train({**SAC_RUN, "patience": 0})
    with pytest.raises(TypeError, match="report"):
        train(SAC_RUN, report=3)


# --------------------------------------------------------------------------- the example script


def load_example():
    spec = importlib.util.spec_from_file_location("tune_sac_temperature",
                                                  os.path.join(ROOT, "examples", "tune_sac_temperature.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_smoke_without_tune(capsys):
    pytest.importorskip("pandas")
    assert load_example().main(["--smoke", "--no-tune"]) == 0
    out = capsys.readouterr().out
    assert "best entropy target" in out and "eval_return: mean return" in out


@pytest.mark.slow
def test_example_with_ray_tune_gives_the_serial_sweeps_table(tmp_path):
    """Starts a local 2-CPU Ray cluster: 100 s on a loaded 2-core machine (30 s of it starting Ray)."""
    pytest.importorskip("ray.tune", reason="Ray Tune is an optional extra (cai[tune])")
    import ray

    example = load_example()
    tuned = example.run_tune(True, str(tmp_path)).sort_values("target_entropy").reset_index(drop=True)
    assert not ray.is_initialized()                              # the script shut its cluster down
    direct = example.run_direct(True).sort_values("target_entropy").reset_index(drop=True)
    assert list(tuned["target_entropy"]) == list(direct["target_entropy"])
    for k in ("eval_return", "best_return", "alpha", "steps", "updates", "episodes"):
        assert list(tuned[k]) == list(direct[k]), k
    assert (tuned["training_iteration"] == 2).all()              # one Tune result per evaluation
    assert all(math.isfinite(x) for x in tuned["eval_return"])
