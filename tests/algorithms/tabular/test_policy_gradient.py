"""Soft REINFORCE: an unbiased gradient of alpha * ELBO, converging to the soft-optimal policy."""
import pytest
import torch

import cai
from cai.algorithms.tabular.policy_gradient import reinforce_gradient, soft_reinforce, softmax_policy
from cai.worlds.builders import random_mdp


@pytest.mark.parametrize("baseline", [None, "loo"])
def test_estimator_is_unbiased(baseline):
    """The mean of 20 independent estimates (4000 trajectories each) is within 4.5 standard
    errors (per entry; 24 entries) of the autograd gradient of J = alpha * cai.elbo."""
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    alpha = 0.8
    theta = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    th = theta.clone().requires_grad_(True)
    exact, = torch.autograd.grad(alpha * cai.elbo(mdp, softmax_policy(th), alpha), th)
    g = torch.Generator().manual_seed(1)
    est = torch.stack([
        reinforce_gradient(mdp, theta, cai.sample_trajectories(mdp, softmax_policy(theta), 4000, generator=g),
                           alpha, baseline=baseline)[0] for _ in range(20)])
    z = (est.mean(0) - exact).abs() / (est.std(0) / 20 ** 0.5)
    assert z.max().item() < 4.5


def test_baseline_reduces_variance():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    theta = torch.zeros(3, 4, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    var = {}
    for bl in (None, "loo"):
        est = torch.stack([reinforce_gradient(mdp, theta, cai.sample_trajectories(
            mdp, softmax_policy(theta), 200, generator=g), 1.0, baseline=bl)[0] for _ in range(30)])
        var[bl] = est.var(0).sum().item()
    assert var["loo"] < var[None]


def test_converges_to_soft_value_iteration():
    # 400 steps of 256 trajectories; claims: policy within 0.05 (max abs) of soft VI's and the
    # exact objective within 1e-3 of the maximal alpha * ELBO (measured: 0.008 and 2e-4)
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    alpha = 0.8
    sv = cai.soft_value_iteration(mdp, alpha)
    res = soft_reinforce(mdp, alpha, n_iter=400, batch_size=256, lr=0.1, lr_decay=0.02,
                         reference_policy=sv.policy, generator=torch.Generator().manual_seed(0))
    assert (res.policy - sv.policy).abs().max().item() < 0.05
    best = (alpha * sv.max_elbo).item()
    assert best - res.history[-1].objective < 1e-3
    assert all(h.objective <= best + 1e-12 for h in res.history)   # nobody beats soft VI


def test_stationary_with_running_baseline_improves():
    mdp = random_mdp(4, 2, 2, seed=2, horizon=None, discount=0.7)
    sv = cai.soft_value_iteration(mdp, 1.0)
    res = soft_reinforce(mdp, 1.0, n_iter=60, batch_size=128, length=20, lr=0.2, baseline="running",
                         reference_policy=sv.policy, generator=torch.Generator().manual_seed(0))
    assert res.logits.shape == (4, 2)
    assert res.history[-1].policy_error < res.history[0].policy_error / 2
    assert res.history[-1].objective > res.history[0].objective


def test_bad_inputs():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    with pytest.raises(ValueError, match="baseline"):
        soft_reinforce(mdp, baseline="mean", n_iter=1)
    with pytest.raises(ValueError, match="length"):
        soft_reinforce(random_mdp(4, 2, 2, seed=0, horizon=None, discount=0.9), n_iter=1)
    with pytest.raises(ValueError, match="logits"):
        reinforce_gradient(mdp, torch.zeros(2, 4, 2), cai.sample_trajectories(mdp, torch.ones(4, 2) / 2, 3))
    with pytest.raises(ValueError, match="lr"):
        soft_reinforce(mdp, lr=0.0, n_iter=1)
    with pytest.raises(ValueError, match="batch_size"):
        soft_reinforce(mdp, batch_size=1, n_iter=1)


def test_trajectories_out_of_range_or_too_long_are_named():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    logits = torch.zeros(3, 4, 2, dtype=torch.float64)
    tr = cai.sample_trajectories(mdp, torch.full((3, 4, 2), 0.5), 5, generator=torch.Generator().manual_seed(0))
    bad = [cai.Trajectories(tr.states + 4, tr.actions),
           cai.Trajectories(tr.states, tr.actions + 2),
           cai.Trajectories(torch.cat([tr.states, tr.states[:, :1]], 1), torch.cat([tr.actions, tr.actions[:, :1]], 1)),
           cai.Trajectories(tr.states[:, :-1], tr.actions)]
    for t in bad:
        with pytest.raises(ValueError, match="^trajectories: expected"):
            reinforce_gradient(mdp, logits, t)
    with pytest.raises(TypeError, match="^trajectories: expected integer tensors"):
        reinforce_gradient(mdp, logits, cai.Trajectories(tr.states.double(), tr.actions))
