"""Soft Q-learning converges to soft VI's Q; hard Q-learning to hard VI's Q (fixed seeds)."""
import pytest
import torch

import cai
from cai.algorithms.tabular.soft_q import PolynomialStepSize, q_learning, soft_q_learning
from cai.worlds.builders import random_mdp

# Tolerances: max |Q - Q_ref| <= 0.1 over all entries (values are O(1-5) here), policy
# max |pi - pi_ref| <= 0.03. Measured with these seeds: 0.03-0.06 after 400k transitions.
Q_TOL, PI_TOL = 0.1, 0.03


def test_soft_q_learning_discounted():
    mdp = random_mdp(5, 2, 3, seed=0, horizon=None, discount=0.8)
    ref = cai.soft_value_iteration(mdp, 1.0)
    res = soft_q_learning(mdp, 1.0, n_samples=400_000, n_envs=64, reference=ref.Q, eval_every=50_000,
                          generator=torch.Generator().manual_seed(0))
    assert (res.Q - ref.Q).abs().max().item() <= Q_TOL
    assert (res.policy - ref.policy).abs().max().item() <= PI_TOL
    assert res.history[-1][1] < res.history[0][1] / 20      # started at max|Q_ref| ~ 5.6
    assert res.visits.sum().item() == res.n_samples


def test_soft_q_learning_finite_horizon():
    mdp = random_mdp(5, 2, 3, seed=0, horizon=4)
    ref = cai.soft_value_iteration(mdp, 1.0)
    res = soft_q_learning(mdp, 1.0, n_samples=400_000, n_envs=64, step_size=PolynomialStepSize(power=1.0),
                          generator=torch.Generator().manual_seed(0))
    assert (res.Q - ref.Q).abs().max().item() <= Q_TOL
    assert (res.policy - ref.policy).abs().max().item() <= PI_TOL
    torch.testing.assert_close(res.V[-1], mdp.terminal_rewards)


def test_hard_q_learning_converges_to_value_iteration():
    mdp = random_mdp(5, 2, 3, seed=0, horizon=None, discount=0.8)
    ref = cai.value_iteration(mdp)
    soft = cai.soft_value_iteration(mdp, 1.0)
    res = q_learning(mdp, n_samples=400_000, n_envs=64, generator=torch.Generator().manual_seed(0))
    assert (res.Q - ref.Q).abs().max().item() <= Q_TOL
    # ... and not to the soft Q, which is larger by up to alpha log 2 / (1 - gamma) ~ 3.5
    assert (res.Q - soft.Q).abs().max().item() > 10 * Q_TOL
    assert torch.equal(res.policy.argmax(-1), ref.policy.argmax(-1))


def test_stops_at_tolerance_and_uses_forbidden_actions_never():
    mdp = random_mdp(4, 3, 2, seed=1, horizon=None, discount=0.7)
    r = mdp.rewards.clone()
    r[0, 2] = -float("inf")
    mdp = mdp.replace(rewards=r)
    ref = cai.soft_value_iteration(mdp, 0.5)
    res = soft_q_learning(mdp, 0.5, n_samples=10**6, reference=ref.Q, tol=0.2, eval_every=2000,
                          generator=torch.Generator().manual_seed(0))
    assert res.samples_to_tol is not None and res.samples_to_tol < 10**6
    assert res.history[-1][1] <= 0.2
    assert res.visits[0, 2].item() == 0 and torch.isneginf(res.Q[0, 2])
    assert res.policy[0, 2].item() == 0.0


def test_same_seed_same_result():
    mdp = random_mdp(3, 2, 2, seed=0, horizon=3)
    a = soft_q_learning(mdp, n_samples=3000, generator=torch.Generator().manual_seed(3))
    b = soft_q_learning(mdp, n_samples=3000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.Q, b.Q)


def test_bad_inputs():
    mdp = random_mdp(3, 2, 2, seed=0, horizon=3)
    with pytest.raises(ValueError, match="step_size"):
        soft_q_learning(mdp, n_samples=10, step_size=1.5)
    with pytest.raises(ValueError, match="behaviour"):
        soft_q_learning(mdp, n_samples=10, behaviour="greedy")
    with pytest.raises(ValueError, match="behaviour"):
        soft_q_learning(mdp, n_samples=10, behaviour=torch.tensor([[1.0, 0.0]] * 3))
    with pytest.raises(ValueError, match="n_samples"):
        soft_q_learning(mdp, n_samples=0)
    with pytest.raises(ValueError, match="reference"):
        soft_q_learning(mdp, n_samples=10, reference=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="alpha"):
        soft_q_learning(mdp, alpha=-1.0, n_samples=10)
    with pytest.raises(ValueError, match="PolynomialStepSize"):
        PolynomialStepSize(power=0.0)
