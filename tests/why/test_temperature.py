"""The automatic temperature: dual descent with exact solves against bisection on the exact curve."""
import math

import numpy as np
import pytest
import torch

import cai
import cai.worlds
from cai.why import dual_temperature_descent, mean_policy_entropy, temperature_for_entropy
from tests.common import brute_elbo, random_tiny_mdp


def test_mean_entropy_against_enumeration():
    rng = np.random.default_rng(2)
    d, mdp = random_tiny_mdp(rng, S=3, A=3, T=3)
    for alpha in (0.3, 1.0, 4.0):
        pi = cai.soft_value_iteration(mdp, alpha).policy.numpy()
        # E_q[-sum_t log pi_t(a_t|s_t)] = E_q[sum_t H(pi_t(.|s_t))]: the ELBO with the reward
        # term scaled away (alpha = 1e12 against rewards of order 1)
        total, _ = brute_elbo(d, pi, 1e12)
        assert mean_policy_entropy(mdp, alpha).item() == pytest.approx(total / 3, abs=1e-10)


def test_envelope_theorem_dual_gradient():
    # dV_soft/dalpha = D * Hbar(alpha): a different computation (a derivative of soft VI's value)
    mdp = cai.worlds.random_mdp(10, 3, 2, seed=4, horizon=6, discount=0.95)
    D = sum(0.95 ** t for t in range(6))
    for alpha in (0.2, 1.0):
        h = 1e-5
        v = cai.soft_value_iteration(mdp, torch.tensor([alpha - h, alpha + h], dtype=torch.float64)).value
        fd = float(v[1] - v[0]) / (2 * h)
        assert fd == pytest.approx(D * mean_policy_entropy(mdp, alpha).item(), abs=1e-7)


def test_entropy_curve_is_monotone():
    mdp = cai.worlds.random_mdp(12, 4, 3, seed=1, horizon=8)
    h = mean_policy_entropy(mdp, torch.logspace(-3, 3, 40, dtype=torch.float64))
    assert bool((h[1:] >= h[:-1] - 1e-12).all())
    assert h[0].item() < 1e-3 and h[-1].item() == pytest.approx(math.log(4), abs=1e-3)


@pytest.mark.parametrize("frac", [0.2, 0.5, 0.9])
def test_dual_descent_matches_bisection(frac):
    mdp = cai.worlds.random_mdp(12, 4, 3, seed=1, horizon=8)
    target = frac * math.log(4)
    root = temperature_for_entropy(mdp, target, points=17, rtol=1e-11)
    assert mean_policy_entropy(mdp, root).item() == pytest.approx(target, abs=1e-9)
    path = dual_temperature_descent(mdp, target, alpha0=1.0, lr=0.5, tol=1e-11)
    assert path.alpha == pytest.approx(root, rel=1e-8)
    # the dual function decreases to its minimum at alpha*
    assert bool((path.dual[1:] <= path.dual[:-1] + 1e-12).all())
    D = 8.0
    g = lambda a: cai.soft_value_iteration(mdp, a).value.item() - a * D * target  # noqa: E731
    assert g(root) <= min(g(root * 1.01), g(root / 1.01))


def test_bad_targets():
    mdp = cai.worlds.random_mdp(6, 2, 2, seed=0, horizon=4)
    with pytest.raises(ValueError, match="target"):
        temperature_for_entropy(mdp, 2 * math.log(2))
    with pytest.raises(ValueError, match="target"):
        dual_temperature_descent(mdp, float("nan"))
    with pytest.raises(ValueError, match="horizon"):
        mean_policy_entropy(cai.worlds.chain(4, horizon=None, discount=0.9), 1.0)
    with pytest.raises(ValueError, match="lr"):
        dual_temperature_descent(mdp, 0.3, lr=0.0)
