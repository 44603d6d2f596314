"""Absorbing exit states have one action: they are worth 0 (a goal its reward) under every solver."""
import pytest
import torch

import cai
from cai.mdp.tabular import absorbing_states, uniform_action_prior
from cai.worlds.registry import make_world

GRIDS = ["cliff", "demo", "two-route", "square", "frozenlake", "cliffwalking"]


@pytest.mark.parametrize("name", GRIDS)
def test_exit_is_worth_zero_and_a_goal_its_reward(name):
    if name in ("frozenlake", "cliffwalking"):
        pytest.importorskip("gymnasium")
    m = make_world(name, horizon=12)
    exits = absorbing_states(m)
    assert bool(exits.any())
    assert bool((m.allowed[exits].sum(-1) == 1).all())                  # one action each
    sols = [cai.soft_value_iteration(m, 1.0), cai.backward_messages(m, 1.0), cai.value_iteration(m),
            cai.soft_value_iteration(m, 1.0, uniform_action_prior(m))]
    for sol in sols:
        assert float(sol.V[:, exits].abs().max()) < 1e-12, sol.method   # was alpha log 4 per remaining step
    if m.metadata.get("kind") == "grid" and "goals" in m.metadata and not m.metadata.get("env_id"):
        g = m.metadata["goals"]
        for sol in sols:            # the goal pays its reward once, then the exit: V_t(G) = r(G) for t < T
            torch.testing.assert_close(sol.V[:-1, g], m.rewards[g, 0].expand(12, len(g)), atol=1e-12, rtol=0)


def test_stationary_exit_is_worth_zero():
    m = make_world("cliff", horizon=None, discount=0.9)
    rho = uniform_action_prior(m)
    exits = absorbing_states(m)
    for sol in (cai.soft_value_iteration(m, 1.0, rho), cai.backward_messages(m, 1.0, rho),
                cai.soft_value_iteration(m, 1.0), cai.value_iteration(m)):
        # a stationary solve is within tol * max(1, max |V|) of the fixed point (default tol 1e-10),
        # the exit included: dynamic programming returns the midpoint of MacQueen's bounds
        assert float(sol.V[exits].abs().max()) < 1e-10 * max(1.0, float(sol.V.abs().max())), sol.method
