"""Path integral control against the exact linear-Gaussian messages; MPPI on Multigoal."""
import math

import numpy as np
import pytest
import torch

from cai import LinearGaussianSystem
from cai.gaussian import lg_soft_value_iteration
from cai.pathint import (
    MPPIController,
    lg_exact_first_control,
    lg_path_integral_control,
    lg_rollout,
    multigoal_mppi,
    path_integral_step,
)
from cai.worlds.multigoal import MultiGoalEnv, goal_hit_fractions

X0 = torch.tensor([1.0, -0.5], dtype=torch.float64)


def _system(W=None, m=1):
    A = [[1.0, 0.1], [0.0, 1.0]]
    B = [[0.0], [0.1]] if m == 1 else [[0.1, 0.0], [0.0, 0.1]]
    return LinearGaussianSystem.from_lqr(A, B, torch.eye(2), 0.5 * torch.eye(m), horizon=5, Q_T=2 * torch.eye(2), W=W)


@pytest.mark.parametrize("W", [None, 0.02], ids=["deterministic", "noisy"])
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_sampled_first_control_converges_to_the_exact_messages(W, alpha):
    """Error within 4 Monte Carlo standard errors at n and 16n samples, and the standard error
    shrinks as 1/sqrt(n): by 4 between n and 16n (within 25%: the delta-method error of the
    self-normalised estimator is itself estimated, and low at small effective sample sizes)."""
    sys = _system(None if W is None else W * torch.eye(2), m=2)
    exact = lg_exact_first_control(sys, X0, alpha)
    n = 8000
    small = lg_path_integral_control(sys, X0, alpha, n, seed=1)
    large = lg_path_integral_control(sys, X0, alpha, 16 * n, seed=2)
    for est in (small, large):
        assert torch.all((est.first - exact).abs() <= 4 * est.std_error), (est.first, exact, est.std_error)
    ratio = small.std_error / large.std_error
    assert torch.all((ratio > 4 / 1.25) & (ratio < 4 * 1.25)), ratio
    # the root-mean-square error over seeds shrinks too (fixed seeds 10..17)
    rms = []
    for k in (1000, 16000):
        errs = torch.stack([lg_path_integral_control(sys, X0, alpha, k, seed=10 + s).first - exact for s in range(8)])
        rms.append(float(errs.pow(2).mean().sqrt()))
    assert rms[1] < rms[0] / 2


def test_with_a_nominal_the_limit_is_the_same():
    """Sampling around a nominal sequence (the MPPI correction term) leaves the limit unchanged."""
    sys = _system()
    exact = lg_exact_first_control(sys, X0, 1.0)
    est = lg_path_integral_control(sys, X0, 1.0, 20000, nominal=torch.full((5, 1), 0.7), seed=3)
    assert abs(float(est.first - exact)) <= 4 * float(est.std_error)


def test_deterministic_limit_is_the_lqr_gain_and_noise_makes_exact_inference_optimistic():
    """With W = 0 exact inference and soft VI agree (the LQR control). With W != 0 the
    path integral weighs the noise like exact inference, not like soft VI."""
    sys = _system()
    soft = lg_soft_value_iteration(sys, 1.0).policy_mean(X0, 0)
    assert torch.allclose(lg_exact_first_control(sys, X0, 1.0), soft, atol=1e-12)
    noisy = _system(0.5 * torch.eye(2))
    exact = lg_exact_first_control(noisy, X0, 1.0)
    soft = lg_soft_value_iteration(noisy, 1.0).policy_mean(X0, 0)
    est = lg_path_integral_control(noisy, X0, 1.0, 64000, seed=4)
    gap = float((exact - soft).abs())
    assert gap > 10 * float(est.std_error)                          # the two answers are told apart
    assert abs(float(est.first - exact)) <= 4 * float(est.std_error)


def test_weights_depend_on_states_only_when_sampling_at_zero():
    """Sigma = alpha R^-1 and ubar = 0: the control cost cancels the proposal density, so the
    estimate is the average of u weighted by exp(S_state / alpha) (Kappen's form)."""
    sys = _system()
    roll = lg_rollout(sys)
    alpha, K = 0.7, 500
    g1 = torch.Generator().manual_seed(5)
    est = path_integral_step(roll, X0, torch.zeros(5, 1, dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64),
                             alpha, K, generator=g1)
    g2 = torch.Generator().manual_seed(5)
    L = math.sqrt(alpha / 0.5)
    u = torch.randn(K, 5, 1, dtype=torch.float64, generator=g2) * L
    S = roll(X0, u, g2)
    w = torch.softmax(S / alpha, 0)
    assert torch.allclose(est.controls, torch.einsum("k,khm->hm", w, u), atol=1e-12)


def test_path_integral_bad_input():
    sys = _system()
    with pytest.raises(ValueError, match="alpha"):
        lg_path_integral_control(sys, X0, 0.0)
    with pytest.raises(ValueError, match="x0: expected shape"):
        lg_path_integral_control(sys, [1.0], 1.0)
    with pytest.raises(ValueError, match="n_samples"):
        lg_path_integral_control(sys, X0, 1.0, 0)
    cross = LinearGaussianSystem.from_lqr([[1.0]], [[1.0]], [[1.0]], [[1.0]], horizon=2, N=[[0.3]])
    with pytest.raises(ValueError, match="cross term"):
        lg_path_integral_control(cross, [0.0], 1.0)
    with pytest.raises(ValueError, match="control_cost: expected a positive-definite"):
        MPPIController(lg_rollout(sys), 3, 1, -torch.eye(1), 1.0)
    with pytest.raises(ValueError, match=r"rollout: expected a tensor of shape \(4,\)"):
        path_integral_step(lambda x, u, g: torch.zeros(3), X0, torch.zeros(2, 1), torch.eye(1), 1.0, 4)


def test_mppi_reaches_the_goals_of_multigoal():
    """Small budget: 64 samples, horizon 10, one rollout per seed; every rollout ends at a goal
    within the 30 steps, and different seeds pick different goals (the world is symmetric)."""
    env = MultiGoalEnv()
    goals = []
    for seed in range(4):
        fr, paths = goal_hit_fractions(env, multigoal_mppi(env, 1.0, horizon=10, n_samples=64, seed=seed),
                                       n_rollouts=1, seed=seed)
        assert fr.sum() == 1.0 and len(paths[0]) <= 31
        goals.append(int(np.argmax(fr)))
    assert len(set(goals)) >= 2


def test_singular_dynamics_noise_is_sampled():
    """Noise on the velocity only (W singular, as when noise enters through the control channel)."""
    sys = _system(torch.tensor([[0.0, 0.0], [0.0, 0.05]]))
    exact = lg_exact_first_control(sys, X0, 1.0)
    est = lg_path_integral_control(sys, X0, 1.0, 32000, seed=6)
    assert abs(float(est.first - exact)) <= 4 * float(est.std_error)
