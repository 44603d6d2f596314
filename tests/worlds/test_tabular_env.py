"""TabularEnv: a TabularMDP simulated as a gymnasium environment (one-hot observations).

References: the MDP's own arrays (transition frequencies against ``P`` with a binomial tolerance,
rewards entry by entry) and gymnasium's environment checker."""
import numpy as np
import pytest
import torch

import cai
from cai.worlds.tabular_env import TabularEnv, one_hot_states
from tests.common import random_tiny_mdp

gym = pytest.importorskip("gymnasium")


def test_steps_follow_the_transition_table_and_pay_the_rewards():
    d, mdp = random_tiny_mdp(np.random.default_rng(0), S=3, A=2, T=None, discount=0.9)
    env = TabularEnv(mdp, max_episode_steps=10_000, seed=1)
    obs, info = env.reset(seed=1)
    counts = np.zeros((3, 2, 3))
    n = 6000
    rng = np.random.default_rng(2)
    for _ in range(n):
        s = info["state"]
        assert obs.dtype == np.float32 and np.array_equal(obs, one_hot_states(3)[s])
        a = int(rng.integers(2))
        obs, r, term, trunc, info = env.step(a)
        assert r == d["r"][s, a] and not term and not trunc
        counts[s, a, info["state"]] += 1
    freq = counts / counts.sum(-1, keepdims=True)
    se = np.sqrt(d["P"] * (1 - d["P"]) / counts.sum(-1, keepdims=True))
    assert np.all(np.abs(freq - d["P"]) < 5 * se + 1e-12)   # 5 standard errors of a binomial frequency


def test_time_limit_truncates_and_finite_horizon_terminates_with_the_terminal_reward():
    d, mdp = random_tiny_mdp(np.random.default_rng(3), S=3, A=2, T=None, discount=0.9, deterministic=True,
                             layout="sas")
    env = TabularEnv(mdp, max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    d, fin = random_tiny_mdp(np.random.default_rng(4), S=3, A=2, T=2, layout="tsa")
    env = TabularEnv(fin, max_episode_steps=None)
    _, info = env.reset(seed=0)
    s0 = info["state"]
    _, r0, term0, _, info = env.step(1)
    s1 = info["state"]
    _, r1, term1, _, info = env.step(0)
    assert (term0, term1) == (False, True)
    assert r0 == d["r"][0, s0, 1] and r1 == pytest.approx(d["r"][1, s1, 0] + d["rT"][info["state"]])


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    mdp = random_tiny_mdp(np.random.default_rng(5), S=4, A=3, T=None, discount=0.95)[1]
    check_env(TabularEnv(mdp, max_episode_steps=20), skip_render_check=True)


def test_bad_input():
    _, forbid = random_tiny_mdp(np.random.default_rng(0), S=3, A=2, T=None, discount=0.9, forbid=True)
    with pytest.raises(ValueError, match="forbidden action a=0 in state s=0"):
        TabularEnv(forbid)
    _, mdp = random_tiny_mdp(np.random.default_rng(0), S=3, A=2, T=None, discount=0.9)
    with pytest.raises(ValueError, match="max_episode_steps"):
        TabularEnv(mdp, max_episode_steps=0)
    _, fin = random_tiny_mdp(np.random.default_rng(0), S=3, A=2, T=4)
    with pytest.raises(ValueError, match="max_episode_steps"):
        TabularEnv(fin, max_episode_steps=10)
    with pytest.raises(TypeError, match="TabularMDP"):
        TabularEnv("chain")
    batched = cai.TabularMDP(torch.full((2, 1, 2), 0.5), torch.zeros(3, 2, 1), discount=0.9, reward_layout="sa")
    with pytest.raises(ValueError, match="unbatched"):
        TabularEnv(batched)
    env = TabularEnv(mdp)
    with pytest.raises(ValueError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(2)
