"""Robust reward: the inner minimisation in closed form, the bound, and who maximises it."""
import math

import numpy as np
import pytest
import scipy.optimize
import torch

import cai
import cai.worlds
from cai.dp import expected_return
from cai.why import robust_return, worst_case_reward
from tests.common import brute_elbo, random_tiny_mdp


def _maxent(mdp, pi, beta):
    return cai.soft_policy_evaluation(mdp, pi, beta).value


def test_expected_return_against_enumeration():
    rng = np.random.default_rng(0)
    d, mdp = random_tiny_mdp(rng, S=3, A=2, T=3, layout="sas")
    pi = torch.tensor(rng.dirichlet(np.ones(2), size=(3, 3)))
    # E_q[R] = alpha * (ELBO - E_q[-sum log pi]): two enumerations at different alpha
    e1, _ = brute_elbo(d, pi.numpy(), 1.0)
    e2, _ = brute_elbo(d, pi.numpy(), 2.0)
    assert expected_return(mdp, pi).item() == pytest.approx(2 * (e1 - e2), abs=1e-10)


def test_inner_minimisation_against_a_numerical_optimiser():
    rng = np.random.default_rng(1)
    _, mdp = random_tiny_mdp(rng, S=2, A=2, T=2)
    pi = torch.tensor(rng.dirichlet(np.ones(2), size=(2, 2)))
    beta, eps = 0.7, 0.3
    d = cai.policy_marginals(mdp, pi).state_action.numpy().ravel()
    r = cai.dp.expected_rewards(mdp).numpy()
    cons = [{"type": "ineq", "fun": (lambda x, t=t, s=s: eps - np.log(np.exp((r[t, s] - x.reshape(2, 2, 2)[t, s]) / beta).sum()))}
            for t in range(2) for s in range(2)]
    res = scipy.optimize.minimize(lambda x: d @ x, r.ravel() + 1.0, constraints=cons, method="SLSQP",
                                  options={"ftol": 1e-14, "maxiter": 500})
    assert res.success
    terminal = float((cai.policy_marginals(mdp, pi).state[-1] * mdp.terminal_rewards).sum())
    assert robust_return(mdp, pi, beta, eps).item() == pytest.approx(res.fun + terminal, abs=1e-6)
    np.testing.assert_allclose(res.x.reshape(2, 2, 2), worst_case_reward(mdp, pi, beta, eps).numpy(), atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maxent_lower_bounds_every_reward_in_the_set_on_random_mdps(seed):
    mdp = cai.worlds.random_mdp(15, 3, 3, seed=seed, horizon=6, discount=0.95)
    rng = np.random.default_rng(seed)
    T, S, A = 6, 15, 3
    D = sum(0.95 ** t for t in range(T))
    beta, eps = 0.5, 0.2
    pols = [cai.soft_value_iteration(mdp, a).policy for a in (0.1, 0.5, 2.0)]
    pols.append(torch.tensor(rng.dirichlet(np.ones(A), size=(T, S))))
    r = cai.dp.expected_rewards(mdp)
    for pi in pols:
        bound = _maxent(mdp, pi, beta) - beta * eps * D
        # the worst case attains the bound exactly (tight)
        assert robust_return(mdp, pi, beta, eps).item() == pytest.approx(bound.item(), abs=1e-10)
        for _ in range(20):
            # a random reward on the boundary of the set, raised by a random slack >= 0
            q = torch.tensor(rng.dirichlet(np.ones(A), size=(T, S)))
            rt = r - beta * (torch.log(q) + eps) + torch.tensor(rng.exponential(0.1, size=(T, S, A)))
            lse = torch.logsumexp((r - rt) / beta, -1)
            assert bool((lse <= eps + 1e-12).all())
            assert expected_return(mdp, pi, rt).item() >= bound.item() - 1e-10


def test_soft_policy_at_beta_maximises_the_worst_case():
    mdp = cai.worlds.random_mdp(15, 3, 3, seed=3, horizon=6)
    beta, eps = 0.5, 0.1
    best = robust_return(mdp, cai.soft_value_iteration(mdp, beta).policy, beta, eps).item()
    assert best == pytest.approx(cai.soft_value_iteration(mdp, beta).value.item() - beta * eps * 6, abs=1e-10)
    hard = cai.value_iteration(mdp).policy
    h = robust_return(mdp, hard, beta, eps).item()
    assert h == pytest.approx(expected_return(mdp, hard).item() - beta * eps * 6, abs=1e-10)   # no entropy credit
    for a in (0.05, 0.2, 1.0, 3.0):
        assert robust_return(mdp, cai.soft_value_iteration(mdp, a).policy, beta, eps).item() < best
    assert h < best


def test_deterministic_policy_worst_reward_is_infinite_off_support_and_bad_input():
    mdp = cai.worlds.chain(4, horizon=3)
    hard = cai.value_iteration(mdp).policy
    w = worst_case_reward(mdp, hard, 1.0, 0.0)
    assert bool(torch.isinf(w[hard == 0]).all()) and bool(torch.isfinite(w[hard > 0]).all())
    with pytest.raises(ValueError, match="beta"):
        robust_return(mdp, hard, 0.0)
    with pytest.raises(ValueError, match="epsilon"):
        robust_return(mdp, hard, 1.0, -1.0)
    with pytest.raises(ValueError, match="rewards"):
        expected_return(mdp, torch.full((4, 2), 0.5), w)
    assert math.isfinite(robust_return(mdp, hard).item())
