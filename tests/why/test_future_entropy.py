"""Myopic (one-step) entropy bonus against the MaxEnt objective."""
import math

import numpy as np
import pytest
import torch

import cai
import cai.worlds
from cai.why import myopic_policy
from tests.common import random_tiny_mdp


@pytest.mark.parametrize("n,c,alpha", [(4, 0.0, 1.0), (4, 0.5, 0.5), (3, 1.0, 2.0), (2, -0.3, 0.7)])
def test_options_fork_by_hand(n, c, alpha):
    mdp = cai.worlds.options_fork(n, corridor_bonus=c)
    soft = cai.soft_value_iteration(mdp, alpha).policy
    my = myopic_policy(mdp, alpha).policy
    # derived by hand (horizon 2): V_1(corridor) = c-free, one option -> alpha log 1 = 0;
    # V_1(hub) = alpha log n; the myopic agent sees V*_1 = 0 for both
    p_soft = n / (n + math.exp(c / alpha))
    p_my = 1.0 / (1.0 + math.exp(c / alpha))
    assert soft[0, 0, 1].item() == pytest.approx(p_soft, abs=1e-12)
    assert my[0, 0, 1].item() == pytest.approx(p_my, abs=1e-12)
    assert soft[0, 0, 1].item() > my[0, 0, 1].item()        # MaxEnt leans towards more options
    # corridor and hub lead only to `end`: the two agree there (and at the last step everywhere)
    torch.testing.assert_close(soft[0, 1:3], my[0, 1:3], atol=1e-14, rtol=0)
    torch.testing.assert_close(soft[1], my[1], atol=1e-14, rtol=0)


def test_agree_at_last_step_differ_before_on_random_mdps():
    rng = np.random.default_rng(0)
    _, mdp = random_tiny_mdp(rng, S=4, A=3, T=4)
    soft = cai.soft_value_iteration(mdp, 0.8).policy
    my = myopic_policy(mdp, 0.8).policy
    torch.testing.assert_close(soft[-1], my[-1], atol=1e-14, rtol=0)
    assert float((soft[0] - my[0]).abs().max()) > 1e-3
    # the exact ratio: pi_soft / pi_my ∝ exp(P (V_soft - V*) / alpha), per state
    hard = cai.value_iteration(mdp)
    sv = cai.soft_value_iteration(mdp, 0.8)
    P = mdp.dense_transitions()
    for t in range(3):
        extra = torch.einsum("sak,k->sa", P, sv.V[t + 1] - hard.V[t + 1]) / 0.8
        ratio = torch.log(soft[t]) - torch.log(my[t]) - extra
        torch.testing.assert_close(ratio - ratio[:, :1], torch.zeros_like(ratio), atol=1e-10, rtol=0)


def test_batched_alpha_and_stationary():
    mdp = cai.worlds.chain(5, horizon=None, discount=0.9)
    a = torch.tensor([0.5, 2.0], dtype=torch.float64)
    pol = myopic_policy(mdp, a).policy
    assert pol.shape == (2, 5, 2)
    for k in range(2):
        torch.testing.assert_close(pol[k], myopic_policy(mdp, float(a[k])).policy, atol=1e-15, rtol=0)
    with pytest.raises(ValueError, match="alpha"):
        myopic_policy(mdp, 0.0)
