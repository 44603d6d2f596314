"""Deep PCL: the path replay buffer against a plain loop, the update's residual against the pure
function, the learned value and policy against soft value iteration on a deterministic tabular
world, and a CartPole smoke run (finite losses)."""
import numpy as np
import pytest
import torch

import cai
from cai.algorithms.deep.pcl import PCL, PCLConfig
from cai.algorithms.deep.replay import PathReplayBuffer
from cai.algorithms.tabular.pcl import pcl_residual
from cai.worlds.tabular_env import TabularEnv, one_hot_states
from tests.common import random_tiny_mdp

gym = pytest.importorskip("gymnasium")


def _episodes(buf, lengths, terminal_last, start=0.0):
    """Add episodes of the given lengths; observations count up (episode k starts at 100 k)."""
    for k, (n, term) in enumerate(zip(lengths, terminal_last)):
        for i in range(n):
            o = np.array([100.0 * k + i + start], np.float32)
            buf.add(o, i % 2, float(i), o + 1, term and i == n - 1)


def _reference_path(buf, logical_start, d):
    """Follow the buffer from a logical position (0 = oldest): the valid steps and the end observation."""
    n, cap = len(buf), buf.capacity
    oldest = 0 if n < cap else buf._next
    idx = [(oldest + logical_start) % cap]
    for j in range(1, d):
        p = idx[-1]
        if logical_start + j >= n or buf.terminated[p] or buf.next_obs[p][0] != buf.obs[(p + 1) % cap][0]:
            break
        idx.append((p + 1) % cap)
    return idx, buf.next_obs[idx[-1]][0], buf.terminated[idx[-1]]


@pytest.mark.parametrize("capacity", [50, 17])   # 17: the ring has wrapped (oldest slot = write position)
def test_path_buffer_follows_episodes_and_stops_at_their_ends(capacity):
    buf = PathReplayBuffer(capacity, (1,), (), discrete=True, seed=0, path_length=4)
    # episode 0 terminates after 5 steps, episode 1 is truncated after 6 (no terminal flag), episode 2 runs on
    _episodes(buf, [5, 6, 7], [True, False, False])
    batch = buf.sample(400)
    rng = np.random.default_rng(0)           # the buffer's generator draws the starts: replay it
    starts = rng.integers(0, len(buf), size=400)
    for b in range(400):
        idx, end, term = _reference_path(buf, int(starts[b]), 4)
        k = len(idx)
        assert batch.mask[b].tolist() == [1.0] * k + [0.0] * (4 - k)
        np.testing.assert_array_equal(batch.obs[b, :k, 0].numpy(), buf.obs[idx, 0])
        np.testing.assert_array_equal(batch.reward[b, :k].numpy(), buf.reward[idx])
        np.testing.assert_array_equal(batch.action[b, :k].numpy(), buf.action[idx])
        assert batch.end_obs[b, 0].item() == end and batch.terminated[b].item() == term
    assert batch.terminated.sum() > 0 and (batch.mask.sum(-1) < 4).any() and (batch.mask.sum(-1) == 4).any()
    with pytest.raises(ValueError, match="path_length"):
        PathReplayBuffer(10, (1,), path_length=0)


def test_pcl_update_minimises_the_pure_residual():
    agent = PCL(PCLConfig(hidden_sizes=(16,), rollout=3, batch_size=8, learning_starts=20, progress=False,
                          tau=1.0, seed=1))
    agent.fit("CartPole-v1", 40)
    batch = agent.buffer_.sample(8)
    with torch.no_grad():
        B, d = batch.reward.shape
        log_pi = torch.log_softmax(agent.pi_(batch.obs.reshape(B * d, -1)), -1)
        log_pi = log_pi.gather(-1, batch.action.reshape(-1, 1)).reshape(B, d)
        C = pcl_residual(agent.v_(batch.obs[:, 0]).squeeze(-1), agent.v_target_(batch.end_obs).squeeze(-1),
                         batch.reward, log_pi, 0.99, agent.config.alpha, batch.mask, batch.terminated)
    out = agent.update(batch)
    assert out["loss"].item() == pytest.approx(0.5 * (C ** 2).mean().item(), rel=1e-5)


def test_pcl_cartpole_smoke():
    agent = PCL(PCLConfig(hidden_sizes=(32,), rollout=5, batch_size=16, learning_starts=100, log_every=10,
                          progress=False, eval_every=300, eval_episodes=1)).fit("CartPole-v1", 300)
    losses = agent.history_.losses
    assert set(losses) == {"loss", "abs_residual", "v_mean"}
    assert len(losses["loss"]) == 20 and all(np.isfinite(v) for _, v in losses["loss"])
    assert agent.n_updates_ == 201
    p = agent.policy_probs(np.zeros((2, 4), np.float32))
    assert p.shape == (2, 2) and np.allclose(p.sum(-1), 1)
    assert agent.act(np.zeros(4, np.float32)) in (0, 1)
    with pytest.raises(ValueError, match="rollout"):
        PCLConfig(rollout=0)
    with pytest.raises(ValueError, match="Discrete"):
        PCL().fit("Pendulum-v1", 10)


def test_deep_pcl_finds_the_soft_optimum_of_a_deterministic_tabular_world():
    # A deterministic random MDP (4 states, 3 actions, gamma 0.8) as an environment with one-hot
    # observations; reference: soft value iteration at alpha 0.5. On a deterministic world every path's
    # consistency can be met exactly, so the networks reach the soft optimum to float32 precision.
    # Measured after 1500 steps, seeds 0 / 1: max |V - V*| 5.4e-6 / 5.0e-6, max policy TV 1.2e-7 / 3.6e-7
    # (the uniform policy's max TV is 0.33); tolerances leave 20x.
    _, mdp = random_tiny_mdp(np.random.default_rng(1), S=4, A=3, T=None, discount=0.8, deterministic=True)
    sol = cai.soft_value_iteration(mdp, 0.5)
    cfg = PCLConfig(hidden_sizes=(32,), alpha=0.5, rollout=3, lr_pi=1e-2, lr_v=1e-2, batch_size=64,
                    learning_starts=200, gamma=0.8, tau=0.05, progress=False, seed=0, max_grad_norm=None)
    agent = PCL(cfg).fit(TabularEnv(mdp, max_episode_steps=50, seed=0), 1500)
    tv = 0.5 * np.abs(agent.policy_probs(one_hot_states(4)) - sol.policy.numpy()).sum(-1)
    with torch.no_grad():
        v = agent.v_(torch.eye(4)).squeeze(-1).double().numpy()
    assert np.abs(v - sol.V.numpy()).max() < 1e-4
    assert tv.max() < 1e-5
