"""Soft policy iteration: monotone improvement at every state, and soft value iteration's answer."""
import numpy as np
import pytest
import torch

import cai
import cai.worlds
from tests.common import brute_elbo, random_tiny_mdp


def _check_monotone(hist):
    for prev, new in zip(hist[:-1], hist[1:]):
        # the soft policy improvement theorem: no state, no step gets worse (to round-off)
        assert bool((new >= prev - 1e-11 * max(1.0, float(prev.abs().max()))).all())


@pytest.mark.parametrize("layout", ["sa", "tsa", "sas"])
def test_finite_horizon_monotone_and_equals_soft_vi(layout):
    rng = np.random.default_rng(3)
    _, mdp = random_tiny_mdp(rng, S=4, A=3, T=5, layout=layout, scale=2.0)
    hist = []
    sol = cai.soft_policy_iteration(mdp, alpha=0.7, history=hist)
    ref = cai.soft_value_iteration(mdp, alpha=0.7)
    assert sol.method == "soft_policy_iteration"
    _check_monotone(hist)
    # strictly improving somewhere until converged; exact after at most T improvements
    assert float((hist[1] - hist[0]).max()) > 1e-3
    assert sol.iterations <= mdp.horizon + 1
    torch.testing.assert_close(sol.V, ref.V, atol=1e-10, rtol=0)
    torch.testing.assert_close(sol.policy, ref.policy, atol=1e-10, rtol=0)
    torch.testing.assert_close(sol.Q, ref.Q, atol=1e-10, rtol=0)
    torch.testing.assert_close(sol.max_elbo, ref.max_elbo, atol=1e-10, rtol=0)


def test_first_and_last_iterates_against_enumeration():
    # the history starts at the uniform policy's objective and ends at the returned policy's,
    # both checked against brute-force enumeration of every path
    rng = np.random.default_rng(5)
    d, mdp = random_tiny_mdp(rng, S=3, A=2, T=3)
    hist = []
    sol = cai.soft_policy_iteration(mdp, alpha=1.3, history=hist)
    first, _ = brute_elbo(d, np.full((3, 3, 2), 0.5), 1.3)
    last, _ = brute_elbo(d, sol.policy.numpy(), 1.3)
    assert abs(float((mdp.initial * hist[0][0]).sum()) / 1.3 - first) < 1e-12
    assert abs(float((mdp.initial * hist[-1][0]).sum()) / 1.3 - last) < 1e-12
    assert last > first + 1e-3


def test_stationary_monotone_and_equals_soft_vi():
    mdp = cai.worlds.random_mdp(12, 3, 3, seed=1, horizon=None, discount=0.9)
    hist = []
    alpha = torch.tensor([0.1, 1.0, 5.0], dtype=torch.float64)
    sol = cai.soft_policy_iteration(mdp, alpha=alpha, history=hist, tol=1e-14)
    ref = cai.soft_value_iteration(mdp, alpha=alpha, tol=1e-14)
    _check_monotone(hist)
    assert len(hist) >= 3
    torch.testing.assert_close(sol.V, ref.V, atol=1e-10, rtol=0)
    torch.testing.assert_close(sol.policy, ref.policy, atol=1e-10, rtol=0)


def test_kl_prior_and_forbidden_actions():
    rng = np.random.default_rng(7)
    _, mdp = random_tiny_mdp(rng, S=3, A=3, T=4, forbid=True)
    prior = torch.tensor(rng.dirichlet(np.ones(3), size=3))
    sol = cai.soft_policy_iteration(mdp, alpha=0.5, action_prior=prior)
    ref = cai.soft_value_iteration(mdp, alpha=0.5, action_prior=prior)
    torch.testing.assert_close(sol.V, ref.V, atol=1e-10, rtol=0)
    assert float(sol.policy[..., 0, 0].max()) == 0.0


def test_bad_input():
    mdp = cai.worlds.chain(4)
    with pytest.raises(ValueError, match="max_iter"):
        cai.soft_policy_iteration(mdp, max_iter=0)
    with pytest.raises(ValueError, match="alpha"):
        cai.soft_policy_iteration(mdp, alpha=-1.0)
    with pytest.raises(ValueError, match="policy"):
        cai.soft_policy_iteration(mdp, policy=torch.ones(4, 3))
