"""Smoke-sized training runs (a few hundred steps) of SAC, SVGD soft Q-learning and soft DQN.

They check that each learner runs end to end, records its training curve and stays finite.
A tiny deterministic MDP also checks that soft DQN's Q network converges to the soft Bellman
fixed point computed directly. A stub learner checks the schedule of the shared off-policy loop.
Full-size runs are marked ``slow``.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cai.algorithms.deep.loop import TrainingHistory, run_off_policy
from cai.algorithms.deep.sac import SAC, SACConfig
from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig
from cai.algorithms.deep.sql import SQL, SQLConfig
from cai.worlds.multigoal import MultiGoalEnv, goal_hit_fractions


def _finite(module):
    return all(torch.isfinite(p).all() for p in module.parameters())


def _check_history(hist, steps):
    assert hist.env_steps == steps and hist.wall_time > 0
    assert len(hist.episode_returns) == len(hist.episode_steps) > 0
    assert all(math.isfinite(v) for curve in hist.losses.values() for _, v in curve)
    assert len(hist.losses) > 0


class Box:
    def __init__(self, low, high, shape):
        self.low, self.high, self.shape = np.full(shape, low, np.float32), np.full(shape, high, np.float32), shape


class Discrete:
    def __init__(self, n):
        self.n, self.shape = n, ()


class ChainEnv:
    """Deterministic 3-state chain, one-hot observations, action 0 = left, 1 = right; r = 1 in state 2."""

    n_states, n_actions = 3, 2

    def __init__(self, horizon=20):
        self.observation_space, self.action_space = Box(0, 1, (3,)), Discrete(2)
        self.horizon = horizon
        self.rng = np.random.default_rng(0)

    def next_state(self, s, a):
        return max(s - 1, 0) if a == 0 else min(s + 1, 2)

    def reward(self, s, a):
        return 1.0 if s == 2 else 0.0

    def obs(self):
        o = np.zeros(3, np.float32)
        o[self.s] = 1
        return o

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.s, self.t = int(self.rng.integers(3)), 0
        return self.obs(), {}

    def step(self, a):
        r = self.reward(self.s, a)
        self.s, self.t = self.next_state(self.s, int(a)), self.t + 1
        return self.obs(), r, False, self.t >= self.horizon, {}


def test_sac_smoke_on_multigoal():
    cfg = SACConfig(hidden_sizes=(32, 32), batch_size=32, learning_starts=100, eval_every=100, eval_episodes=2,
                    log_every=10, progress=False, seed=0)
    agent = SAC(cfg).fit(MultiGoalEnv(), total_steps=200)
    _check_history(agent.history_, 200)
    assert _finite(agent.actor_) and _finite(agent.critic_) and math.isfinite(agent.log_alpha_.item())
    assert agent.history_.eval_steps == [100, 200] and len(agent.history_.eval_returns[0]) == 2
    a = agent.act(np.zeros(2, np.float32))
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    # same seed, same run
    again = SAC(cfg).fit(MultiGoalEnv(), total_steps=200)
    assert again.history_.episode_returns == agent.history_.episode_returns


def test_sql_smoke_on_multigoal():
    cfg = SQLConfig(hidden_sizes=(32, 32), batch_size=16, learning_starts=100, value_particles=8,
                    kernel_particles=8, log_every=10, progress=False, alpha=1.0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # a float64 session (as in the LQR tutorial) must not break the learners
    try:
        agent = SQL(cfg).fit(MultiGoalEnv(), total_steps=300)
        SAC(SACConfig(hidden_sizes=(16,), batch_size=8, learning_starts=20, progress=False)).fit(MultiGoalEnv(), 40)
    finally:
        torch.set_default_dtype(old)
    _check_history(agent.history_, 300)
    assert _finite(agent.q_) and _finite(agent.sampler_)
    samples = agent.sample_actions(np.zeros(2, np.float32), 50)
    assert samples.shape == (50, 2) and np.all(np.abs(samples) < 1)
    frac, paths = goal_hit_fractions(MultiGoalEnv(max_episode_steps=5), agent.act, n_rollouts=3)
    assert frac.shape == (4,) and len(paths) == 3


def test_soft_dqn_smoke_and_soft_bellman_fixed_point():
    env = ChainEnv()
    cfg = SoftDQNConfig(hidden_sizes=(32,), alpha=0.5, gamma=0.8, lr=3e-3, batch_size=64, learning_starts=200,
                        target_every=50, tau=1.0, huber=False, log_every=20, progress=False)
    agent = SoftDQN(cfg).fit(env, total_steps=1500)
    _check_history(agent.history_, 1500)
    # stationary soft Q by direct iteration of the soft Bellman backup
    Q = np.zeros((3, 2))
    for _ in range(500):
        V = cfg.alpha * np.log(np.exp(Q / cfg.alpha).sum(1))
        Q = np.array([[env.reward(s, a) + cfg.gamma * V[env.next_state(s, a)] for a in range(2)] for s in range(3)])
    with torch.no_grad():
        learned = agent.q_(torch.eye(3)).numpy()
    # One-hot inputs: the network can represent Q exactly. Measured error after 1500 steps: ~0.015 (seeds
    # 0-2). The hard (alpha -> 0) fixed point differs by > 0.3 (e.g. Q(2, right) = 5 vs 5.338 soft), so a
    # max instead of a log-sum-exp target fails this tolerance.
    np.testing.assert_allclose(learned, Q, atol=0.08)
    assert np.argmax(learned[0]) == 1 and np.argmax(learned[1]) == 1


def test_gym_smoke_pendulum_and_cartpole():
    gym = pytest.importorskip("gymnasium")
    sac = SAC(SACConfig(hidden_sizes=(32, 32), batch_size=32, learning_starts=100, progress=False))
    sac.fit(gym.make("Pendulum-v1"), total_steps=300)
    _check_history(sac.history_, 300)
    assert sac.act(np.zeros(3, np.float32)).shape == (1,)
    dqn = SoftDQN(SoftDQNConfig(hidden_sizes=(32,), batch_size=32, learning_starts=100, progress=False))
    dqn.fit(gym.make("CartPole-v1"), total_steps=400)
    _check_history(dqn.history_, 400)
    assert _finite(dqn.q_)


class _StubLearner:
    """Records what the loop asks of a learner: buffer adds, updates (with their step), evaluations."""

    def __init__(self, **config):
        self.config = SimpleNamespace(batch_size=2, seed=0, progress=False, eval_episodes=1, **config)
        self.history_ = TrainingHistory()
        self.n_updates_, self.added, self.update_at, self.acted = 0, [], [], 0
        self.buffer_ = SimpleNamespace(add=lambda *t: self.added.append(t), sample=lambda n: n)

    def update(self, batch):
        assert batch == self.config.batch_size
        self.n_updates_ += 1
        self.update_at.append(len(self.added))
        return dict(n=torch.tensor(float(self.n_updates_)))

    def act(self, obs):
        self.acted += 1
        return 0


def test_run_off_policy_schedule():
    agent = _StubLearner(learning_starts=5, log_every=4, eval_every=7)
    env, sent = ChainEnv(horizon=8), []
    env_step = env.step
    env.step = lambda a: (sent.append(a), env_step(a))[1]
    hist = run_off_policy(agent, env, 20, eval_env=ChainEnv(horizon=3), random_action=lambda: 1,
                          policy_action=lambda obs: 0, to_env=lambda a: 1 - a, updates_per_step=2, train_every=3)
    assert hist is agent.history_ and hist.env_steps == 20
    # warm-up: steps 0-4 random (1), then the policy (0); the environment gets to_env, the buffer the raw action
    assert [t[1] for t in agent.added] == [1] * 5 + [0] * 15 and sent == [0] * 5 + [1] * 15
    # learn from step + 1 = 5 on, every 3rd step (step + 1 in 6, 9, 12, 15, 18), 2 updates each
    assert agent.update_at == [6, 6, 9, 9, 12, 12, 15, 15, 18, 18]
    # updates 4 and 8 (multiples of log_every) happen at steps 9 and 15
    assert hist.losses == {"n": [(9, 4.0), (15, 8.0)]}
    # horizon-8 episodes end at steps 8 and 16; evaluations (1 episode of 3 steps) at 7 and 14
    assert hist.episode_steps == [8, 16] and len(hist.episode_returns) == 2
    assert hist.eval_steps == [7, 14] and agent.acted == 2 * 3
    # each episode return is the sum of the rewards the environment gave within it
    rewards = [t[2] for t in agent.added]
    assert hist.episode_returns == [sum(rewards[:8]), sum(rewards[8:16])]


@pytest.mark.slow
def test_full_sac_pendulum_reaches_minus_200():
    gym = pytest.importorskip("gymnasium")
    agent = SAC(SACConfig(seed=0, eval_every=20_000, eval_episodes=10, progress=False))
    agent.fit(gym.make("Pendulum-v1"), total_steps=20_000, eval_env=gym.make("Pendulum-v1"))
    assert np.mean(agent.history_.eval_returns[-1]) >= -200


@pytest.mark.slow
def test_full_soft_dqn_cartpole_reaches_475():
    gym = pytest.importorskip("gymnasium")
    agent = SoftDQN(SoftDQNConfig(seed=0, eval_every=2500, eval_episodes=10, progress=False))
    agent.fit(gym.make("CartPole-v1"), total_steps=40_000, eval_env=gym.make("CartPole-v1"))
    assert max(np.mean(r) for r in agent.history_.eval_returns) >= 475


@pytest.mark.slow
def test_full_sql_multigoal_reaches_every_goal():
    agent = SQL(SQLConfig(hidden_sizes=(128, 128), alpha=14.0, batch_size=64, seed=0, progress=False))
    agent.fit(MultiGoalEnv(), total_steps=20_000)
    frac, _ = goal_hit_fractions(MultiGoalEnv(), agent.act, n_rollouts=100, seed=1)
    assert np.all(frac >= 0.1), frac
