"""Composable soft Q: the composed policy's value lies within the reported bounds."""
import pytest
import torch

import cai
from cai.algorithms.tabular.composition import combined_mdp, compose
from cai.worlds.builders import random_mdp


def _tasks(k=3, **kw):
    base = random_mdp(6, 3, 3, seed=0, **kw)
    g = torch.Generator().manual_seed(1)
    finite = kw.get("horizon") is not None
    return [base.replace(rewards=torch.randn(6, 3, generator=g, dtype=torch.float64),
                         terminal_rewards=torch.randn(6, generator=g, dtype=torch.float64) if finite else None)
            for _ in range(k)]


@pytest.mark.parametrize("kw", [dict(horizon=6), dict(horizon=None, discount=0.9)])
@pytest.mark.parametrize("prior", [False, True])
def test_bounds_hold_against_exact_solutions(kw, prior):
    # Q_Sigma - C <= Q^{pi_Sigma} <= Q*_C <= Q_Sigma, with Q*_C from soft VI on the combined task
    # and Q^{pi_Sigma} from soft policy evaluation; D = Q_Sigma - Q^{pi_Sigma} exactly
    rho = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1) \
        if prior else None
    alpha = 0.5
    sols = [cai.soft_value_iteration(m, alpha, rho) for m in _tasks(**kw)]
    c = compose(sols, [0.2, 0.5, 0.3])
    star = cai.soft_value_iteration(c.mdp, alpha, rho)
    pe = cai.soft_policy_evaluation(c.mdp, c.policy, alpha, rho)
    tol = 1e-9 if kw.get("horizon") else 1e-7   # stationary: fixed points to tol 1e-10 relative
    assert (star.Q - c.Q).max().item() <= tol                        # upper bound
    assert (c.Q - c.bound - pe.Q).max().item() <= tol                # Theorem 1 lower bound (via Q^pi)
    assert (pe.Q - star.Q).max().item() <= tol                       # Q*_C is optimal
    torch.testing.assert_close(c.Q - pe.Q, c.policy_gap, atol=tol, rtol=0)   # D is exact
    assert (c.policy_gap - c.bound).max().item() <= tol              # D <= C
    assert (c.divergence >= 0).all()
    # value-level: V*_C - V^{pi_Sigma} <= E_pi D_0 <= max_a C_0
    gap = star.V0 - pe.V0
    assert (gap - c.value_gap).max().item() <= tol
    assert (c.value_gap - c.value_gap_bound).max().item() <= tol
    V_sig0 = c.V[0] if kw.get("horizon") else c.V
    torch.testing.assert_close(V_sig0 - pe.V0, c.value_gap, atol=tol, rtol=0)


def test_bound_is_attained_with_two_steps():
    # horizon 2: at t = 1 Q_Sigma = r_C = Q*_C, so Q*_C,0 = r_C + P V_Sigma,1 = Q_Sigma,0 - P delta_1
    # = Q_Sigma,0 - C_0: the lower bound of Theorem 1 holds with equality
    sols = [cai.soft_value_iteration(m, 0.7) for m in _tasks(horizon=2)]
    c = compose(sols, [0.5, 0.25, 0.25])
    star = cai.soft_value_iteration(c.mdp, 0.7)
    torch.testing.assert_close(star.Q[0], c.Q[0] - c.bound[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(star.Q[1], c.Q[1], atol=1e-12, rtol=0)
    assert c.bound[1].abs().max().item() == 0.0
    assert c.bound[0].max().item() > 1e-3           # and the bound is not trivially zero


def test_identical_policies_compose_exactly():
    # tasks whose rewards differ by a per-state constant c(s) on the last step share policies
    # there; at horizon 1 every task's policy is softmax(r_i) and r_i = r + c_i: delta = 0
    base = random_mdp(5, 2, 2, seed=1, horizon=1)
    r = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    tasks = [base.replace(rewards=r + torch.arange(5, dtype=torch.float64).unsqueeze(-1) * i) for i in range(3)]
    c = compose([cai.soft_value_iteration(m, 1.0) for m in tasks], [0.3, 0.3, 0.4])
    assert c.divergence.abs().max().item() < 1e-12
    torch.testing.assert_close(c.Q, cai.soft_value_iteration(c.mdp, 1.0).Q, atol=1e-12, rtol=0)


def test_two_task_divergence_is_renyi_half():
    # counting prior, w = (1/2, 1/2): delta = -alpha log sum_a sqrt(pi_1 pi_2) = (alpha/2) D_{1/2}
    sols = [cai.soft_value_iteration(m, 0.8) for m in _tasks(k=2, horizon=3)]
    c = compose(sols, [0.5, 0.5])
    p1, p2 = sols[0].policy, sols[1].policy
    renyi = -2 * torch.log(torch.sqrt(p1 * p2).sum(-1))
    torch.testing.assert_close(c.divergence[:3], 0.8 / 2 * renyi, atol=1e-12, rtol=0)


def test_combined_mdp_reward():
    tasks = _tasks(k=2, horizon=3)
    sols = [cai.soft_value_iteration(m, 1.0) for m in tasks]
    m = combined_mdp(sols, [0.25, 0.75])
    torch.testing.assert_close(m.rewards, 0.25 * tasks[0].rewards + 0.75 * tasks[1].rewards)
    torch.testing.assert_close(m.terminal_rewards, 0.25 * tasks[0].terminal_rewards + 0.75 * tasks[1].terminal_rewards)


def test_bad_inputs():
    tasks = _tasks(k=2, horizon=3)
    sols = [cai.soft_value_iteration(m, 1.0) for m in tasks]
    with pytest.raises(ValueError, match="weights"):
        compose(sols, [1.0, 1.0])
    with pytest.raises(ValueError, match="weights"):
        compose(sols, [0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="temperature"):
        compose([sols[0], cai.soft_value_iteration(tasks[1], 0.5)], [0.5, 0.5])
    with pytest.raises(TypeError, match="soft_value_iteration"):
        compose([sols[0], cai.value_iteration(tasks[1])], [0.5, 0.5])
    other = random_mdp(6, 3, 3, seed=9, horizon=3)
    with pytest.raises(ValueError, match="dynamics"):
        compose([sols[0], cai.soft_value_iteration(other, 1.0)], [0.5, 0.5])
    with pytest.raises(TypeError, match="solutions"):
        compose(sols[0], [1.0])


@pytest.mark.parametrize("weights", [[float("nan"), 1.0, 0.0], [float("inf"), 0.0, 0.0], [0.5, 0.5, float("nan")]])
def test_non_finite_weights_are_refused(weights):
    sols = [cai.soft_value_iteration(m, 0.7) for m in _tasks(horizon=4)]
    with pytest.raises(ValueError, match="weights: expected finite non-negative weights"):
        compose(sols, weights)
