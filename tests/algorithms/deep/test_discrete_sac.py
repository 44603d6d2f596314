"""Discrete SAC: its loss terms against hand-computed values and closed forms, and the learner's
policy against soft value iteration on a tabular world with a fixed temperature."""
import math

import numpy as np
import pytest
import torch

import cai
from cai.algorithms.deep.discrete_sac import (
    PRESETS,
    DiscreteSAC,
    DiscreteSACConfig,
    discrete_sac_actor_loss,
    discrete_sac_critic_loss,
    discrete_sac_critic_target,
    discrete_sac_temperature_loss,
)
from cai.worlds.tabular_env import TabularEnv, one_hot_states
from tests.common import random_tiny_mdp

pytest.importorskip("gymnasium")

# one state, two actions, twin critics Q_1 = (1, 3), Q_2 = (2, 0): min = (1, 0); pi = (1/4, 3/4)
Q = torch.tensor([[[1.0, 3.0]], [[2.0, 0.0]]], dtype=torch.float64)
LOG_PI = torch.log(torch.tensor([[0.25, 0.75]], dtype=torch.float64))


def test_critic_target_hand_computed():
    # V(s') = 1/4 (1 - 0.5 log 1/4) + 3/4 (0 - 0.5 log 3/4) = 0.25 * 1.693147 + 0.75 * 0.143841 = 0.531168
    v = 0.25 * (1 + 0.5 * math.log(4)) + 0.75 * (0.5 * math.log(4 / 3))
    assert v == pytest.approx(0.5311675, abs=1e-6)
    y = discrete_sac_critic_target(torch.tensor([1.0], dtype=torch.float64), torch.tensor([0.9], dtype=torch.float64),
                                   Q, LOG_PI, torch.tensor(0.5, dtype=torch.float64))
    assert y.item() == pytest.approx(1 + 0.9 * v, abs=1e-12)
    # terminal: no bootstrap; a zero-probability action contributes nothing (no NaN from 0 * inf)
    y0 = discrete_sac_critic_target(torch.tensor([1.0]), torch.tensor([0.0]), Q.float(), LOG_PI.float(),
                                    torch.tensor(0.5))
    assert y0.item() == 1.0
    log_pi_det = torch.tensor([[0.0, -math.inf]])
    y1 = discrete_sac_critic_target(torch.tensor([0.0]), torch.tensor([1.0]), Q.float(), log_pi_det, torch.tensor(0.5))
    assert y1.item() == 1.0  # pi = (1, 0): V = min Q(s', 0) = 1


def test_critic_loss_gathers_the_taken_action_of_each_critic():
    q = torch.tensor([[[1.0, 3.0], [0.0, 2.0]], [[2.0, 0.0], [1.0, 1.0]]])  # (E=2, B=2, A=2)
    a = torch.tensor([1, 0])
    y = torch.tensor([2.0, 0.5])
    # critic 1: (3 - 2, 0 - 0.5) -> mean of halves of squares (1 + 0.25) / 2 / 2 = 0.3125; critic 2: (0 - 2, 1 - 0.5) -> (4 + 0.25) / 4
    assert discrete_sac_critic_loss(q, a, y).item() == pytest.approx(0.3125 + 1.0625)


def test_actor_loss_hand_computed_and_minimised_by_the_boltzmann_policy():
    alpha = torch.tensor(0.5, dtype=torch.float64)
    # 1/4 (0.5 log 1/4 - 1) + 3/4 (0.5 log 3/4 - 0) = -0.531168 (minus the soft value above)
    assert discrete_sac_actor_loss(Q, LOG_PI, alpha).item() == pytest.approx(-0.5311675, abs=1e-6)
    # minimising over the logits reaches softmax(min Q / alpha), where the loss is -alpha logsumexp(min Q / alpha)
    logits = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([logits], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = discrete_sac_actor_loss(Q, torch.log_softmax(logits, -1), alpha)
        loss.backward()
        return loss

    opt.step(closure)
    target = torch.softmax(torch.tensor([[1.0, 0.0]], dtype=torch.float64) / 0.5, -1)
    torch.testing.assert_close(torch.softmax(logits.detach(), -1), target, atol=1e-7, rtol=0)
    best = discrete_sac_actor_loss(Q, torch.log(target), alpha).item()
    assert best == pytest.approx(-0.5 * math.log(math.exp(2.0) + 1.0), abs=1e-12)
    # the critics get no gradient from the actor loss
    q = Q.clone().requires_grad_(True)
    assert not discrete_sac_actor_loss(q, LOG_PI, alpha).requires_grad


def test_temperature_loss_uses_the_exact_entropy():
    # H(1/4, 3/4) = 0.562335 nats; target 0.98 log 2 = 0.679284: entropy below target, so the gradient in
    # log alpha is H - target < 0 and descent raises alpha
    H = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert abs(H - 0.5623351) < 1e-7
    target = 0.98 * math.log(2)
    log_alpha = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    loss = discrete_sac_temperature_loss(log_alpha, LOG_PI, target)
    assert loss.item() == pytest.approx(0.3 * (H - target), abs=1e-12)
    loss.backward()
    assert log_alpha.grad.item() == pytest.approx(H - target, abs=1e-12) and log_alpha.grad.item() < 0


def test_config_checks_and_target_entropy():
    with pytest.raises(ValueError, match="target_entropy_ratio"):
        DiscreteSACConfig(target_entropy_ratio=1.5)
    with pytest.raises(ValueError, match="init_alpha"):
        DiscreteSACConfig(init_alpha=0.0)
    agent = DiscreteSAC(DiscreteSACConfig(hidden_sizes=(8,), learning_starts=5, batch_size=4, progress=False))
    agent.fit("CartPole-v1", 10)
    assert agent.target_entropy_ == pytest.approx(0.98 * math.log(2))
    with pytest.raises(ValueError, match="Discrete"):
        DiscreteSAC().fit("Pendulum-v1", 10)


def test_cartpole_preset_fields_and_overrides():
    cfg = DiscreteSACConfig.preset("CartPole-v1", seed=3, tau=0.1)
    assert (cfg.target_entropy_ratio, cfg.lr, tuple(cfg.hidden_sizes), cfg.batch_size) == (0.7, 1e-3, (64, 64), 128)
    assert (cfg.seed, cfg.tau) == (3, 0.1)  # overrides win over the preset
    assert cfg.gamma == DiscreteSACConfig().gamma and cfg.autotune_alpha  # the rest are the defaults
    assert PRESETS["CartPole-v1"]["tau"] == 0.02  # the override did not leak into the table
    with pytest.raises(ValueError, match="name: expected one of the presets"):
        DiscreteSACConfig.preset("Acrobot-v1")
    with pytest.raises(ValueError, match="name: expected one of the presets"):
        DiscreteSACConfig.preset(["CartPole-v1"])          # not a name (was a raw 'unhashable type')
    with pytest.raises(TypeError):
        DiscreteSACConfig.preset("CartPole-v1", not_a_field=1)
    with pytest.raises(ValueError, match="target_entropy_ratio"):
        DiscreteSACConfig.preset("CartPole-v1", target_entropy_ratio=2.0)


def test_fixed_temperature_policy_matches_soft_value_iteration_on_a_tabular_world():
    # A random stochastic MDP (4 states, 3 actions, gamma 0.8) wrapped as an environment with one-hot
    # observations; alpha fixed at 0.5. Reference: soft VI's policy at alpha 0.5. Measured max TV over the
    # states after 1500 steps (every state visited), learner seeds 0 / 1 / 2 / 3: 0.008 / 0.053 / 0.038 /
    # 0.032 (the floor is the SGD noise of lr 1e-2); the uniform policy's max TV is 0.58. The test runs
    # seed 0 with a tolerance of 0.05, the spread over seeds.
    _, mdp = random_tiny_mdp(np.random.default_rng(1), S=4, A=3, T=None, discount=0.8)
    sol = cai.soft_value_iteration(mdp, 0.5)
    cfg = DiscreteSACConfig(hidden_sizes=(32,), lr=1e-2, batch_size=64, learning_starts=200, init_alpha=0.5,
                            autotune_alpha=False, gamma=0.8, tau=0.05, progress=False, seed=0)
    agent = DiscreteSAC(cfg).fit(TabularEnv(mdp, max_episode_steps=50, seed=0), 1500)
    assert agent.log_alpha_.exp().item() == pytest.approx(0.5)  # fixed
    visited = np.unique(agent.buffer_.obs[:len(agent.buffer_)].argmax(-1))
    assert len(visited) == 4
    tv = 0.5 * np.abs(agent.policy_probs(one_hot_states(4)) - sol.policy.numpy()).sum(-1)
    uniform_tv = 0.5 * np.abs(1 / 3 - sol.policy.numpy()).sum(-1)
    assert tv[visited].max() < TV_TOL, tv
    assert uniform_tv.max() > 5 * TV_TOL  # the check would catch a policy that learned nothing


TV_TOL = 0.05


def _entropy(p):
    return -(p * np.log(np.clip(p, 1e-300, None))).sum(-1)


def test_automatic_temperature_settles_where_soft_vi_policy_meets_the_target_entropy():
    # The dual descent's fixed point: the alpha* at which soft VI's policy at temperature alpha*, weighted
    # by where the agent is (the buffer's last 500 states), has the target entropy 0.5 log 3. Found by
    # root-finding over soft VI solves (an independent route: no network, no dual). Measured, 1000 steps,
    # learner seeds 0 / 1 / 2: mean alpha of the last 300 updates 0.482 / 0.475 / 0.480 against
    # alpha* 0.479 / 0.490 / 0.484 (largest gap 0.015; the tolerance is twice that); from init_alpha 1.
    # Checked to fail on two planted bugs: the temperature loss's sign flipped (alpha 1195) and the
    # entropy taken without the pi weights, -mean_a log pi (alpha 0.0002).
    from scipy.optimize import brentq

    _, mdp = random_tiny_mdp(np.random.default_rng(1), S=4, A=3, T=None, discount=0.8)
    target = 0.5 * math.log(3)
    cfg = DiscreteSACConfig(hidden_sizes=(32,), lr=1e-2, batch_size=64, learning_starts=200, init_alpha=1.0,
                            target_entropy_ratio=0.5, gamma=0.8, tau=0.05, progress=False, seed=0, log_every=10)
    agent = DiscreteSAC(cfg).fit(TabularEnv(mdp, max_episode_steps=50, seed=0), 1000)
    assert agent.target_entropy_ == pytest.approx(target)
    states = agent.buffer_.obs[:len(agent.buffer_)].argmax(-1)[-500:]
    w = np.bincount(states, minlength=4) / len(states)

    def entropy_gap(alpha):
        return float(w @ _entropy(cai.soft_value_iteration(mdp, alpha).policy.double().numpy())) - target

    alpha_star = brentq(entropy_gap, 0.05, 20.0, xtol=1e-10)
    alphas = [v for _, v in agent.history_.losses["alpha"]]
    learned = float(np.mean(alphas[-30:]))
    assert abs(learned - alpha_star) < 0.03, (learned, alpha_star)
    assert abs(1.0 - alpha_star) > 10 * 0.03  # it moved: init_alpha would fail the check


@pytest.mark.slow
def test_full_discrete_sac_cartpole_reaches_475():
    # Issue 16's goal at soft DQN's budget: the CartPole-v1 preset's greedy evaluation (10 episodes every
    # 2,500 steps) reaches a mean of 475 within 40,000 steps, the next evaluation too, and the temperature
    # stays bounded (with the paper's target ratio 0.98 it grew from 1 to 2e5 by 22,500 steps; with the
    # preset's 0.7 its largest value at the evaluations was 18.8 over seeds 0-2). Seed 0 reached 475 at 15,000 steps,
    # seeds 1 and 2 at 27,500 and 22,500 (benchmarks/README.md). Stops one evaluation after the first >= 475.
    gym = pytest.importorskip("gymnasium")

    def stop_after_confirmation(local):
        means = [np.mean(r) for r in local["history"].eval_returns]
        hit = [i for i, m in enumerate(means) if m >= 475]
        return not (hit and len(means) > hit[0] + 1)

    agent = DiscreteSAC(DiscreteSACConfig.preset("CartPole-v1", seed=0, eval_every=2500, eval_episodes=10,
                                                 progress=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the benchmark, so this is the measured run (float sums in the same order)
    try:
        agent.fit(gym.make("CartPole-v1"), total_steps=40_000, eval_env=gym.make("CartPole-v1"),
                  callback=stop_after_confirmation)
    finally:
        torch.set_num_threads(threads)
    means = [float(np.mean(r)) for r in agent.history_.eval_returns]
    first = next((i for i, m in enumerate(means) if m >= 475), None)
    assert first is not None, means
    assert len(means) > first + 1 and means[first + 1] >= 475, means
    alphas = [v for _, v in agent.history_.losses["alpha"]]
    assert max(alphas) < 100, max(alphas)
