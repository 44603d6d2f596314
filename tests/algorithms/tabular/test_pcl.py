"""Path consistency: the residual vanishes at soft value iteration's optimum; tabular PCL finds it.

References: ``cai.soft_value_iteration`` (solved to 1e-12), a plain-Python loop over one path for
the residual, and the closed form of the stochastic residual (a discounted sum of
``V(s') - E[V(s')]`` terms, derived in ``cai.algorithms.tabular.pcl``).
"""
import math

import numpy as np
import pytest
import torch

import cai
from cai.algorithms.tabular.pcl import path_residuals, pcl, pcl_residual
from cai.exact.sampling import Trajectories, sample_trajectories
from tests.common import random_tiny_mdp

GAMMA = 0.9


def _mdp(seed, deterministic=True, S=4, A=3):
    return random_tiny_mdp(np.random.default_rng(seed), S=S, A=A, T=None, discount=GAMMA,
                           deterministic=deterministic)[1]


def _rollouts(mdp, policy, n=8, length=12, seed=0):
    return sample_trajectories(mdp, policy, n, generator=torch.Generator().manual_seed(seed), length=length)


def test_pcl_residual_hand_computed():
    # gamma 0.9, alpha 0.1, V(s_0) = 1, V(s_2) = 2, r = (1, 0.5), pi(a_j|s_j) = (0.5, 0.25):
    # C = -1 + 0.81 * 2 + (1 + 0.1 log 2) + 0.9 (0.5 + 0.1 log 4) = 2.2640812...
    v0, v2 = torch.tensor([1.0]), torch.tensor([2.0])
    r = torch.tensor([[1.0, 0.5]])
    lp = torch.log(torch.tensor([[0.5, 0.25]], dtype=torch.float64)).float()
    full = -1 + 1.62 + (1 + 0.1 * math.log(2)) + 0.9 * (0.5 + 0.1 * math.log(4))
    assert pcl_residual(v0, v2, r, lp, 0.9, 0.1).item() == pytest.approx(full, abs=1e-6)
    assert full == pytest.approx(2.2640812, abs=1e-7)
    # one valid step: bootstrap with gamma^1 from the value after it; terminated: no bootstrap
    mask = torch.tensor([[1.0, 0.0]])
    one = -1 + 0.9 * 2 + (1 + 0.1 * math.log(2))
    assert pcl_residual(v0, v2, r, lp, 0.9, 0.1, mask).item() == pytest.approx(one, abs=1e-6)
    assert pcl_residual(v0, v2, r, lp, 0.9, 0.1, mask, torch.tensor([1.0])).item() == \
        pytest.approx(0.1 * math.log(2), abs=1e-6)
    # padded steps may hold anything, even -inf log-probabilities
    lp_bad = torch.tensor([[math.log(0.5), -math.inf]])
    assert pcl_residual(v0, v2, r, lp_bad, 0.9, 0.1, mask).item() == pytest.approx(one, abs=1e-6)
    with pytest.raises(ValueError, match="rewards, log_pi"):
        pcl_residual(v0, v2, r, lp[:, :1], 0.9, 0.1)
    with pytest.raises(ValueError, match="v_start"):
        pcl_residual(torch.zeros(2), v2, r, lp, 0.9, 0.1)


def test_path_residuals_match_a_plain_loop():
    mdp = _mdp(3, deterministic=False)
    rng = np.random.default_rng(0)
    V = rng.standard_normal(4)
    pi = rng.random((4, 3)) + 0.1
    pi /= pi.sum(-1, keepdims=True)
    traj = _rollouts(mdp, torch.full((4, 3), 1 / 3, dtype=torch.float64), n=3, length=6)
    alpha, d = 0.7, 3
    C = path_residuals(mdp, V, pi, traj, d, alpha)
    R = mdp.rewards.numpy()
    for k in range(3):
        for i in range(6 - d + 1):
            s = traj.states[k].tolist()
            a = traj.actions[k].tolist()
            ref = -V[s[i]] + GAMMA ** d * V[s[i + d]]
            for j in range(d):
                ref += GAMMA ** j * (R[s[i + j], a[i + j]] - alpha * math.log(pi[s[i + j], a[i + j]]))
            assert C[k, i].item() == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_consistency_is_zero_at_the_soft_optimum_for_every_path_length(seed):
    mdp = _mdp(seed)
    alpha = [0.3, 1.0, 2.0][seed]
    prior = None
    if seed == 2:  # a KL-regularised objective: alpha log(pi / rho) in the residual
        prior = torch.tensor(np.random.default_rng(5).dirichlet(np.ones(3), size=4))
    sol = cai.soft_value_iteration(mdp, alpha, prior, tol=1e-13)
    uniform = torch.full((4, 3), 1 / 3, dtype=torch.float64)
    for behaviour in (sol.policy, uniform):  # the soft-optimal policy's own rollouts, and off-policy paths
        traj = _rollouts(mdp, behaviour, n=6, length=10, seed=seed)
        for d in range(1, 11):
            C = path_residuals(mdp, sol.V, sol.policy, traj, d, alpha, prior)
            assert C.shape == (6, 11 - d)
            assert C.abs().max().item() < 1e-9, (d, C.abs().max().item())


def test_consistency_detects_a_perturbed_policy_and_value():
    mdp = _mdp(4)
    sol = cai.soft_value_iteration(mdp, 0.5, tol=1e-13)
    traj = _rollouts(mdp, torch.full((4, 3), 1 / 3, dtype=torch.float64), n=16, length=10)
    for d in (1, 4):
        pi = sol.policy.clone()
        pi[1] = 0.9 * pi[1] + 0.1 / 3  # mix state 1's action distribution with uniform
        C = path_residuals(mdp, sol.V, pi, traj, d, 0.5)
        # the residual of a path is alpha * sum_j gamma^j log(pi*(a_j|s_j) / pi(a_j|s_j)): exact
        ratio = torch.log(sol.policy / pi)
        assert C.abs().max().item() > 1e-3
        s, a = traj.states, traj.actions
        ref = torch.stack([sum(GAMMA ** j * 0.5 * ratio[s[:, i + j], a[:, i + j]] for j in range(d))
                           for i in range(10 - d + 1)], -1)
        torch.testing.assert_close(C, ref, atol=1e-9, rtol=0)
        V = sol.V.clone()
        V[2] += 0.1
        assert path_residuals(mdp, V, sol.policy, traj, d, 0.5).abs().max().item() > 0.05


def test_stochastic_consistency_is_the_discounted_sum_of_next_value_noise():
    mdp = _mdp(6, deterministic=False)
    sol = cai.soft_value_iteration(mdp, 0.8, tol=1e-13)
    traj = _rollouts(mdp, sol.policy, n=10, length=8)
    P = mdp.transitions
    EV = P @ sol.V  # (S, A): E[V(s') | s, a]
    s, a = traj.states, traj.actions
    noise = GAMMA * (sol.V[s[:, 1:]] - EV[s[:, :-1], a])  # (n, L)
    d = 3
    C = path_residuals(mdp, sol.V, sol.policy, traj, d, 0.8)
    ref = torch.stack([sum(GAMMA ** j * noise[:, i + j] for j in range(d)) for i in range(8 - d + 1)], -1)
    torch.testing.assert_close(C, ref, atol=1e-9, rtol=0)
    assert C.abs().max().item() > 1e-2  # not zero path by path: PCL's squared loss is biased here


@pytest.mark.parametrize("seed, d", [(0, 1), (1, 3), (2, 5)])
def test_tabular_pcl_converges_to_soft_value_iteration(seed, d):
    # deterministic MDPs (where PCL's fixed point is the soft optimum), uniform behaviour covering
    # every (s, a). Measured after 3000 Adam steps (lr 0.05, batch 256): max |V - V*| = 1.5e-8, 6e-12,
    # 7.4e-6 and policy TV 1e-9, 1e-15, 5e-7 on these three (after 2000 steps: up to 1.1e-2 and 6.7e-4,
    # so convergence, not a lucky start, is what the tolerances test); tolerances leave over 10x
    mdp = _mdp(seed)
    alpha = 0.5
    sol = cai.soft_value_iteration(mdp, alpha, tol=1e-13)
    res = pcl(mdp, alpha, d=d, n_iter=3000, seed=seed)
    assert (res.V - sol.V).abs().max().item() < 1e-4
    assert 0.5 * (res.policy - sol.policy).abs().sum(-1).max().item() < 1e-5
    assert res.losses[-1] < 1e-10 * res.losses[0]
    traj = res.trajectories
    assert traj.states.shape == (64, 21)


def test_tabular_pcl_with_a_forbidden_action_and_a_prior():
    d_, mdp = random_tiny_mdp(np.random.default_rng(8), S=4, A=3, T=None, discount=GAMMA, deterministic=True,
                              forbid=True)
    prior = torch.tensor(np.random.default_rng(9).dirichlet(np.ones(3), size=4))
    sol = cai.soft_value_iteration(mdp, 0.5, prior, tol=1e-13)
    res = pcl(mdp, 0.5, prior, d=2, n_iter=2000)  # measured: |V - V*| 5e-12, TV 2e-15
    assert res.policy[0, 0].item() == 0.0
    assert (res.V - sol.V).abs().max().item() < 1e-6
    assert 0.5 * (res.policy - sol.policy).abs().sum(-1).max().item() < 1e-7


def test_pcl_input_errors():
    finite = random_tiny_mdp(np.random.default_rng(0), S=3, A=2, T=3)[1]
    with pytest.raises(ValueError, match="horizon=None"):
        pcl(finite, 1.0)
    mdp = _mdp(0)
    with pytest.raises(ValueError, match="trajectory_length"):
        pcl(mdp, 1.0, d=5, trajectory_length=4)
    with pytest.raises(ValueError, match="d: expected"):
        pcl(mdp, 1.0, d=0)
    with pytest.raises(ValueError, match="lr"):
        pcl(mdp, 1.0, lr=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        pcl(mdp, torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="TabularMDP"):
        pcl("mdp", 1.0)
    _, forbid = random_tiny_mdp(np.random.default_rng(8), S=4, A=3, T=None, discount=GAMMA, forbid=True)
    with pytest.raises(ValueError, match="behaviour: expected zero probability on forbidden"):
        pcl(forbid, 1.0, behaviour=torch.full((4, 3), 1 / 3, dtype=torch.float64), n_iter=1)
    traj = Trajectories(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))
    sol = cai.soft_value_iteration(mdp, 1.0)
    with pytest.raises(ValueError, match="d: expected a path length"):
        path_residuals(mdp, sol.V, sol.policy, traj, 3)
    with pytest.raises(ValueError, match="values"):
        path_residuals(mdp, torch.zeros(5), sol.policy, traj, 1)
