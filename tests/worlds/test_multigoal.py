"""The Multigoal environment: reward, dynamics, termination, API and plot."""


import numpy as np
import pytest

from cai.viz import plot_multigoal
from cai.worlds.multigoal import GOALS, MultiGoalEnv, goal_hit_fractions


def test_reward_and_dynamics_by_hand():
    env = MultiGoalEnv()
    env.reset(seed=0, options={"state": (1.0, 2.0)})
    obs, r, term, trunc, info = env.step([0.5, -0.25])
    np.testing.assert_allclose(obs, [1.5, 1.75])
    # nearest goal of (1.5, 1.75): (0, 5) at 1.5^2 + 3.25^2 = 12.8125; (5, 0): 3.5^2 + 1.75^2 = 15.3125
    assert r == pytest.approx(-(30 * (0.25 + 0.0625) + 12.8125), abs=1e-12)
    assert (term, trunc, info["goal"]) == (False, False, -1)


def test_actions_and_positions_are_clipped():
    env = MultiGoalEnv()
    env.reset(options={"state": (6.8, -6.9)})
    obs, r, *_ = env.step([3.0, -2.0])  # action clipped to (1, -1), position to (7, -7)
    np.testing.assert_allclose(obs, [7.0, -7.0])
    assert r == pytest.approx(-(30 * 2.0 + min(((np.array([7.0, -7.0]) - GOALS) ** 2).sum(1))))


def test_goal_reached_terminates_with_bonus():
    env = MultiGoalEnv()
    env.reset(options={"state": (0.0, -4.5)})
    obs, r, term, trunc, info = env.step([0.0, -0.6])  # lands at (0, -5.1), 0.1 from goal (0, -5)
    assert term and not trunc and info["goal"] == 3
    assert r == pytest.approx(-(30 * 0.36 + 0.01) + 10.0)


def test_truncation_and_initial_distribution():
    env = MultiGoalEnv(max_episode_steps=5)
    starts = np.array([env.reset(seed=s)[0] for s in range(2000)])
    assert abs(starts.std() - 0.1) < 0.01 and np.abs(starts.mean(0)).max() < 0.01
    env.reset(seed=1)
    for _ in range(5):
        _, _, term, trunc, _ = env.step([0.0, 0.0])
    assert trunc and not term
    a = MultiGoalEnv().reset(seed=7)[0]
    b = MultiGoalEnv().reset(seed=7)[0]
    np.testing.assert_array_equal(a, b)


def test_goal_hit_fractions_with_scripted_policy():
    env = MultiGoalEnv()
    target = GOALS[2]  # always head for (0, 5)

    def act(obs):
        d = target - obs
        return np.clip(d, -1, 1)

    frac, paths = goal_hit_fractions(env, act, n_rollouts=5)
    np.testing.assert_allclose(frac, [0, 0, 1, 0])
    assert all(np.allclose(p[0], 0) for p in paths) and len(paths) == 5


def test_gymnasium_api_conformance():
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env

    env = MultiGoalEnv()
    assert isinstance(env, gym.Env)
    check_env(env, skip_render_check=True)


def test_plot_returns_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = MultiGoalEnv()
    path = np.array([[0, 0], [1, 0], [2, 0.5]])
    ax = plot_multigoal(env=env, paths=[path], action_samples={(0.0, 0.0): np.random.uniform(-1, 1, (10, 2))})
    assert ax.get_xlim() == (-7.0, 7.0)
    assert len(ax.lines) >= 1 + 1 + 10
    plt.close(ax.figure)


def test_works_without_gymnasium():
    # Block the gymnasium import in a fresh interpreter: the stand-in Box and plain base class take over.
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['gymnasium'] = None\n"
        "from cai.worlds.multigoal import MultiGoalEnv\n"
        "env = MultiGoalEnv(); obs, info = env.reset(seed=0)\n"
        "out = env.step(env.action_space.sample())\n"
        "assert type(env).__mro__[1] is object and obs.shape == (2,) and len(out) == 5\n"
        "assert env.action_space.contains(env.action_space.sample())\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root, timeout=120)
