"""Linearly solvable MDPs: three routes to the same values and controlled dynamics."""
import pytest
import torch

import cai
from cai.algorithms.tabular.lmdp import LMDP, controlled_from_policy
from cai.worlds.builders import random_mdp


def _passive(S=8, seed=0, density=0.5):
    g = torch.Generator().manual_seed(seed)
    P = torch.rand(S, S, generator=g, dtype=torch.float64) * (torch.rand(S, S, generator=g) < density)
    P = P + 0.1 * torch.eye(S, dtype=torch.float64)             # aperiodic, no empty row
    return P / P.sum(-1, keepdim=True), g


def test_first_exit_linear_solve_equals_soft_vi():
    """Linear solve vs soft VI on the embedded MDP (action prior = passive dynamics).

    With q >= 0.5 on non-terminal states the finite-horizon values converge to the first-exit
    ones at rate rho(G_N P_NN) <= exp(-0.5) ~ 0.61, so after 80 steps the gap is < 0.61^80 ~ 1e-17:
    the routes must agree to 1e-8.
    """
    P, g = _passive()
    q = 0.5 + torch.rand(8, generator=g, dtype=torch.float64)
    lm = LMDP(P, q, terminal=[0, 5])
    fe = lm.solve_first_exit()
    assert fe.residual < 1e-12
    alpha = 0.5
    mdp, prior = lm.to_mdp(alpha=alpha, horizon=80)
    sv = cai.soft_value_iteration(mdp, alpha, prior)
    torch.testing.assert_close(-sv.V[0, :8] / alpha, fe.v, atol=1e-8, rtol=0)
    u = controlled_from_policy(mdp, sv.policy[0])[:8, :8]
    N = ~lm.terminal
    torch.testing.assert_close(u[N], fe.controlled[N], atol=1e-8, rtol=0)
    # deterministic dynamics: exact inference on the embedding agrees as well
    msg = cai.backward_messages(mdp, alpha, prior)
    torch.testing.assert_close(-msg.V[0, :8] / alpha, fe.v, atol=1e-8, rtol=0)


def test_finite_horizon_is_soft_vi_exactly():
    P, g = _passive(seed=1)
    q = torch.rand(8, generator=g, dtype=torch.float64)
    final = torch.randn(8, generator=g, dtype=torch.float64)
    lm = LMDP(P, q, terminal=[3])
    fh = lm.solve_finite_horizon(7, final_cost=final)
    mdp, prior = lm.to_mdp(alpha=1.3, horizon=7, final_cost=final)
    sv = cai.soft_value_iteration(mdp, 1.3, prior)
    torch.testing.assert_close(-sv.V[:, :8] / 1.3, fh.v, atol=1e-12, rtol=0)
    u = controlled_from_policy(mdp, sv.policy)[:, :8, :8]
    N = ~lm.terminal
    torch.testing.assert_close(u[:, N], fh.controlled[:, N], atol=1e-12, rtol=0)


def test_average_cost_eigenvector_power_and_soft_vi_agree():
    """Eigenvector vs power iteration vs soft VI over a long horizon.

    Soft VI computes exp(V_t) = (G P)^{T-t} exp(V_T): a power iteration, so V_t - V_{t+1} -> -c
    and V_0 - max V_0 -> -v at the rate of the second eigenvalue ratio (< 0.5 here), and 200
    steps leave < 1e-50: agreement to 1e-8.
    """
    P, g = _passive(seed=2, density=0.8)
    q = torch.rand(8, generator=g, dtype=torch.float64)
    lm = LMDP(P, q)
    ev = lm.solve_average_cost("eig")
    pw = lm.solve_average_cost("power")
    assert abs(ev.average_cost - pw.average_cost) < 1e-10
    torch.testing.assert_close(ev.v, pw.v, atol=1e-8, rtol=0)
    assert ev.v.min().item() == 0.0
    mdp, prior = lm.to_mdp(horizon=200)
    sv = cai.soft_value_iteration(mdp, 1.0, prior, keep="first")
    V0 = sv.V[0]
    torch.testing.assert_close(-(V0 - V0.max()), ev.v, atol=1e-8, rtol=0)
    torch.testing.assert_close(sv.V[1] - sv.V[0], torch.full((8,), ev.average_cost, dtype=torch.float64),
                               atol=1e-8, rtol=0)
    torch.testing.assert_close(controlled_from_policy(mdp, sv.policy_at(0)), ev.controlled, atol=1e-8, rtol=0)
    # the controlled chain is a distribution and puts mass only where the passive one does
    torch.testing.assert_close(ev.controlled.sum(-1), torch.ones(8, dtype=torch.float64))
    assert bool(((ev.controlled > 0) == (P > 0)).all())


@pytest.mark.parametrize("prior", [False, True])
def test_from_mdp_round_trip(prior):
    # soft VI on a deterministic MDP (any action prior) is an LMDP in units of alpha
    mdp = random_mdp(6, 3, 1, seed=3, horizon=5)
    rho = None
    if prior:
        rho = torch.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64), -1)
    lm = LMDP.from_mdp(mdp, alpha=0.7, action_prior=rho)
    fh = lm.solve_finite_horizon(5, final_cost=-mdp.terminal_rewards / 0.7)
    sv = cai.soft_value_iteration(mdp, 0.7, rho)
    torch.testing.assert_close(sv.V / 0.7, -fh.v, atol=1e-12, rtol=0)
    torch.testing.assert_close(controlled_from_policy(mdp, sv.policy), fh.controlled, atol=1e-12, rtol=0)
    # and back: the LMDP's embedding has the same values
    back, pr = lm.to_mdp(alpha=0.7, horizon=5, final_cost=-mdp.terminal_rewards / 0.7)
    torch.testing.assert_close(cai.soft_value_iteration(back, 0.7, pr).V, sv.V, atol=1e-12, rtol=0)


def test_first_exit_closed_form_chain():
    # two states: 0 non-terminal with cost q and passive p(0|0) = p, p(1|0) = 1 - p; 1 terminal
    # with final cost 0. z0 = e^{-q} (p z0 + (1-p)) => z0 = e^{-q}(1-p) / (1 - p e^{-q}).
    import math
    p, q = 0.3, 0.4
    lm = LMDP([[p, 1 - p], [0.0, 1.0]], [q, 0.0], terminal=[1])
    z0 = math.exp(-q) * (1 - p) / (1 - p * math.exp(-q))
    assert abs(lm.solve_first_exit().z[0].item() - z0) < 1e-15


def test_bad_inputs():
    P, _ = _passive()
    with pytest.raises(ValueError, match="passive"):
        LMDP(P[:, :7], torch.zeros(8))
    with pytest.raises(ValueError, match="passive: expected the row"):
        LMDP(P * 2, torch.zeros(8))
    with pytest.raises(ValueError, match="state_cost"):
        LMDP(P, torch.zeros(7))
    with pytest.raises(ValueError, match="state_cost"):
        LMDP(P, torch.full((8,), float("inf")))
    with pytest.raises(ValueError, match="terminal"):
        LMDP(P, torch.zeros(8), terminal=[9])
    with pytest.raises(ValueError, match="terminal"):
        LMDP(P, torch.zeros(8)).solve_first_exit()
    with pytest.raises(ValueError, match="terminal"):
        LMDP(P, torch.zeros(8), terminal=[0]).solve_average_cost()
    with pytest.raises(ValueError, match="no finite solution"):
        # state 1 loops on itself at zero cost and never exits
        LMDP([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [0.0, 0.0, 0.0], terminal=[2]).solve_first_exit()
    with pytest.raises(ValueError, match="deterministic"):
        LMDP.from_mdp(random_mdp(4, 2, 2, seed=0, horizon=3))
    with pytest.raises(ValueError, match="discount"):
        LMDP.from_mdp(random_mdp(4, 2, 1, seed=0, horizon=None, discount=0.9))
    with pytest.raises(ValueError, match="horizon"):
        LMDP(P, torch.zeros(8)).to_mdp()


# --- costs too large for exp(-q) (review of issue 11) ----------------------------------------

def test_first_exit_large_costs_log_space_matches_soft_vi():
    """Costs above 745 underflow exp(-q): the first-exit solve must still return finite v.

    Reference: soft VI (log space) on the embedded MDP over 12 steps; the first-exit problem is
    the horizon -> infinity limit at rate rho(G_N P_NN) <= exp(-800), so 12 steps agree to
    rounding (the last step's neglected mass is exp(-800 * 12) relative).
    """
    P, g = _passive(seed=4)
    q = 800.0 + 50 * torch.rand(8, generator=g, dtype=torch.float64)
    q[[0, 5]] = torch.tensor([900.0, 1000.0], dtype=torch.float64)
    lm = LMDP(P, q, terminal=[0, 5])
    fe = lm.solve_first_exit()
    assert bool(torch.isfinite(fe.v).all())
    assert fe.residual < 1e-12
    mdp, prior = lm.to_mdp(alpha=1.0, horizon=12)
    sv = cai.soft_value_iteration(mdp, 1.0, prior)
    torch.testing.assert_close(-sv.V[0, :8], fe.v, atol=1e-9, rtol=1e-13)
    N = ~lm.terminal
    u = controlled_from_policy(mdp, sv.policy[0])[:8, :8]
    torch.testing.assert_close(u[N], fe.controlled[N], atol=1e-9, rtol=0)


def test_average_cost_shift_invariance_at_large_costs():
    """c(q + K) = c(q) + K and z is unchanged (G and the Perron root scale by exp(-K))."""
    P, g = _passive(seed=2, density=0.8)
    q = torch.rand(8, generator=g, dtype=torch.float64)
    small = LMDP(P, q).solve_average_cost()
    for method in ("eig", "power"):
        big = LMDP(P, q + 2000.0).solve_average_cost(method)
        assert abs(big.average_cost - (small.average_cost + 2000.0)) < 1e-9
        torch.testing.assert_close(big.v, small.v, atol=1e-9, rtol=0)


def test_average_cost_from_mdp_low_temperature_matches_soft_vi():
    """LMDP.from_mdp at alpha = 1e-3: costs spread over thousands of nats (exp(-q) underflows).

    Reference: soft VI on the deterministic MDP over 400 steps: V_t - V_{t+1} -> alpha * c (the
    optimal cycle's reward per step) and V_0 - max V_0 -> -alpha v; with alpha = 1e-3 the
    contraction towards the optimal cycle is exp(-gap/alpha), so 400 steps are plenty.
    """
    S = 6                                   # a ring: action 0 moves on, action 1 stays (aperiodic)
    P = torch.zeros(S, 2, S, dtype=torch.float64)
    P[torch.arange(S), 0, (torch.arange(S) + 1) % S] = 1.0
    P[torch.arange(S), 1, torch.arange(S)] = 1.0
    r = -torch.tensor([0.9, 0.3, 0.0, 1.5, 0.6, 1.2], dtype=torch.float64)   # state rewards
    mdp = cai.TabularMDP(P, r, horizon=400)
    alpha = 1e-3
    lm = LMDP.from_mdp(mdp, alpha=alpha)
    assert float(lm.state_cost.max() - lm.state_cost.min()) > 745.0   # the case this test is for
    ev = lm.solve_average_cost()
    pw = lm.solve_average_cost("power")
    sv = cai.soft_value_iteration(mdp, alpha, keep="first")
    assert abs(ev.average_cost - pw.average_cost) < 1e-9
    assert abs((sv.V[0] - sv.V[1]).mean().item() / alpha + ev.average_cost) < 1e-6
    V0 = sv.V[0] / alpha
    torch.testing.assert_close(-(V0 - V0.max()), ev.v, atol=1e-6, rtol=1e-9)


def test_average_cost_refuses_reducible_passive():
    P = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]], dtype=torch.float64)
    with pytest.raises(ValueError, match="passive: expected irreducible"):
        LMDP(P, torch.zeros(3)).solve_average_cost()


def test_to_mdp_final_cost_nan_names_final_cost():
    P, _ = _passive()
    lm = LMDP(P, torch.ones(8), terminal=[0])
    with pytest.raises(ValueError, match="final_cost: expected finite"):
        lm.to_mdp(horizon=3, final_cost=[float("nan")] + [0.0] * 7)
