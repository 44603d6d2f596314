"""The stationary (infinite-horizon, discounted) problem: iteration, linear solve, divergence."""

import math

import numpy as np
import pytest
import torch

import cai
from cai.worlds import random_mdp
from tests.common import random_tiny_mdp


def _stationary(seed=0, S=6, A=3, gamma=0.9, scale=1.0, layout="sa"):
    rng = np.random.default_rng(seed)
    d, fin = random_tiny_mdp(rng, S, A, None if layout != "tsa" else 3, discount=gamma, layout=layout,
                             scale=scale, terminal=False)
    return d, fin


@pytest.mark.parametrize("layout", ["sa", "sas"])
def test_iteration_and_linear_solve_agree(layout):
    # negative rewards keep the spectral radius of M below one with the counting prior
    rng = np.random.default_rng(31)
    S, A = 6, 3
    P = rng.random((S, A, S)); P /= P.sum(-1, keepdims=True)
    shape = (S, A) if layout == "sa" else (S, A, S)
    r = -1.5 - rng.random(shape)
    mdp = cai.TabularMDP(P, r, None, discount=0.9)
    it = cai.backward_messages(mdp, alpha=1.0, method="iterate", tol=1e-13)
    lin = cai.backward_messages(mdp, alpha=1.0, method="linear")
    assert it.iterations > 1 and it.residual < 1e-11
    torch.testing.assert_close(it.V, lin.V, atol=1e-9, rtol=1e-10)
    torch.testing.assert_close(it.policy, lin.policy, atol=1e-9, rtol=1e-10)
    torch.testing.assert_close(it.log_evidence, lin.log_evidence, atol=1e-9, rtol=1e-10)
    # the fixed point satisfies the backup
    Q = cai.ops.q_backup(mdp, None, it.V, it.alpha, "exact")
    V, _ = cai.ops.soft_max(Q, it.alpha, None)
    torch.testing.assert_close(V, it.V, atol=1e-10, rtol=0)


def test_normalised_prior_with_nonpositive_rewards_converges_and_agrees():
    """With a normalised prior and r <= 0, M's row sums are <= gamma < 1: always convergent."""
    rng = np.random.default_rng(32)
    S, A = 5, 2
    P = rng.random((S, A, S)); P /= P.sum(-1, keepdims=True)
    r = -np.abs(rng.standard_normal((S, A)))
    prior = np.full((S, A), 1 / A)
    mdp = cai.TabularMDP(P, r, None, discount=0.8)
    it = cai.backward_messages(mdp, 0.5, prior, tol=1e-13)
    lin = cai.backward_messages(mdp, 0.5, prior, method="linear")
    torch.testing.assert_close(it.V, lin.V, atol=1e-9, rtol=1e-10)


def test_stationary_is_the_limit_of_long_horizons():
    rng = np.random.default_rng(33)
    S, A, g = 5, 3, 0.8
    P = rng.random((S, A, S)); P /= P.sum(-1, keepdims=True)
    r = -1.2 - rng.random((S, A))
    stat = cai.TabularMDP(P, r, None, discount=g)
    fin = cai.TabularMDP(P, r, None, horizon=200, discount=g)
    for fn in (cai.soft_value_iteration, cai.backward_messages):
        a = fn(stat, 0.7, tol=1e-13)
        b = fn(fin, 0.7, keep="first")
        torch.testing.assert_close(a.V, b.V[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(a.policy, b.policy_at(0), atol=1e-10, rtol=0)
    hard_s = cai.value_iteration(stat, tol=1e-13)
    torch.testing.assert_close(hard_s.V, cai.value_iteration(fin).V[0], atol=1e-10, rtol=0)
    # the stationary discounted occupancy is the sum of the long-horizon marginals
    ms = cai.backward_messages(stat, 0.7, tol=1e-13)
    mf = cai.backward_messages(fin, 0.7)
    occ_s = cai.forward_messages(stat, ms, tol=1e-14).visitation
    occ_f = cai.forward_messages(fin, mf).visitation
    torch.testing.assert_close(occ_s, occ_f, atol=1e-8, rtol=1e-8)


def test_divergent_problem_raises_a_clear_error():
    """Counting prior, reward 0, A=2, gamma=0.9: M = 0.9 * sum_a P(.|s,a) has row sums 1.8,
    so its spectral radius is 1.8 > 1 and the evidence is infinite."""
    rng = np.random.default_rng(34)
    S, A = 4, 2
    P = rng.random((S, A, S)); P /= P.sum(-1, keepdims=True)
    mdp = cai.TabularMDP(P, np.zeros((S, A)), None, discount=0.9)
    with pytest.raises(cai.DivergenceError, match="spectral radius"):
        cai.backward_messages(mdp, 1.0)
    with pytest.raises(ValueError, match="1.8"):
        cai.backward_messages(mdp, 1.0, method="linear")
    # soft value iteration is a gamma-contraction: it converges on the same MDP
    sv = cai.soft_value_iteration(mdp, 1.0)
    assert sv.error_bound <= 1e-10 * max(1, sv.V.abs().max().item())
    # reward 0, two actions everywhere: V* = alpha log 2 / (1 - gamma) at every state
    torch.testing.assert_close(sv.V, torch.full((S,), math.log(2) / 0.1, dtype=torch.float64), atol=1e-9, rtol=0)


def test_divergence_far_beyond_float_range_still_raises_the_clear_error():
    """Rewards of 800 at alpha 1: the Collatz-Wielandt bound is about exp(800), past float64;
    the message gives it in log form instead of overflowing."""
    P = np.full((2, 1, 2), 0.5)
    mdp = cai.TabularMDP(P, np.full((2, 1), 800.0), None, discount=0.9)
    with pytest.raises(cai.DivergenceError, match=r"spectral radius >= exp\(7\d\d"):
        cai.backward_messages(mdp, 1.0)


@pytest.mark.parametrize("bad", [dict(max_iter=0), dict(max_iter=2.5), dict(max_iter=True), dict(tol=-1e-3),
                                 dict(tol=float("nan"))])
def test_iteration_controls_are_validated(bad):
    _, mdp = random_tiny_mdp(np.random.default_rng(1), T=None, discount=0.9)
    name = next(iter(bad))
    for solver in (cai.backward_messages, cai.soft_value_iteration):
        with pytest.raises(ValueError, match=name):
            solver(mdp, 1.0, **bad)


def test_nonconvergence_warns_and_reports():
    rng = np.random.default_rng(35)
    S, A = 4, 2
    P = rng.random((S, A, S)); P /= P.sum(-1, keepdims=True)
    mdp = cai.TabularMDP(P, rng.standard_normal((S, A)), None, discount=0.99)
    with pytest.warns(cai.ConvergenceWarning, match="max_iter=5"):
        sv = cai.soft_value_iteration(mdp, 1.0, max_iter=5)
    assert sv.iterations == 5 and sv.residual > 1e-3


def test_linear_route_refuses_large_or_overflowing_systems():
    mdp = cai.TabularMDP(np.ones((2, 1, 2)) / 2, [[800.0], [0.0]], None, discount=0.5)
    with pytest.raises(ValueError, match="overflow"):
        cai.backward_messages(mdp, 1.0, method="linear")
    with pytest.raises(ValueError, match="method"):
        cai.backward_messages(mdp, 1.0, method="bogus")
    big = random_mdp(5001, 1, 1, horizon=None, discount=0.5, sparse=True)
    with pytest.raises(ValueError, match="S <= 5000"):
        cai.backward_messages(big, 1.0, method="linear")


def test_sparse_stationary_matches_dense():
    d = random_mdp(30, 3, 4, seed=3, horizon=None, discount=0.9, reward_scale=1.0)
    s = random_mdp(30, 3, 4, seed=3, horizon=None, discount=0.9, reward_scale=1.0, sparse=True)
    pr = np.full((30, 3), 1 / 3)
    d, s = (m.replace(rewards=-m.rewards.abs()) for m in (d, s))  # r <= 0: convergent
    a = cai.backward_messages(d, 0.5, pr, tol=1e-13)
    b = cai.backward_messages(s, 0.5, pr, tol=1e-13)
    torch.testing.assert_close(a.V, b.V, atol=1e-11, rtol=0)
    torch.testing.assert_close(cai.soft_value_iteration(d, 0.5).V, cai.soft_value_iteration(s, 0.5).V,
                               atol=1e-11, rtol=0)
