"""policy_visitation: the forward pass of a fixed policy under the true dynamics."""
import itertools

import numpy as np
import pytest
import torch

import cai
from cai.dp.visitation import policy_visitation
from cai.worlds.builders import random_mdp


def brute_visitation_exact(P, pi, p0, T, gamma=1.0):
    S, A = pi.shape[-2:]
    d = np.zeros((T, S, A))
    # enumerate full trajectories (s0, a0, s1, ..., a_{T-1}) and their probabilities
    for traj in itertools.product(*([range(S), range(A)] * T)):
        p = p0[traj[0]]
        for t in range(T):
            s, a = traj[2 * t], traj[2 * t + 1]
            p *= pi[t, s, a]
            if t + 1 < T:
                p *= P[s, a, traj[2 * t + 2]]
        for t in range(T):
            d[t, traj[2 * t], traj[2 * t + 1]] += p * gamma ** t
    return d


@pytest.mark.parametrize("gamma", [None, 0.7])
def test_matches_trajectory_enumeration(gamma):
    mdp = random_mdp(3, 2, 2, seed=4, horizon=3, discount=gamma)
    g = torch.Generator().manual_seed(0)
    pi = torch.softmax(torch.randn(3, 3, 2, generator=g, dtype=torch.float64), -1)
    ref = brute_visitation_exact(mdp.transitions.numpy(), pi.numpy(), mdp.initial.numpy(), 3,
                                 1.0 if gamma is None else gamma)
    d = policy_visitation(mdp, pi)
    np.testing.assert_allclose(d.numpy(), ref, atol=1e-12)


def test_deterministic_dynamics_equal_forward_messages():
    # with deterministic dynamics exact inference and soft VI agree (docs/design.md §2.4), so the
    # posterior marginals of forward_messages are the soft-VI policy's visitation
    mdp = random_mdp(6, 3, 1, seed=2, horizon=5)
    sv = cai.soft_value_iteration(mdp, 0.6)
    msg = cai.backward_messages(mdp, 0.6)
    fm = cai.forward_messages(mdp, msg)
    # forward_messages reweights p0 by exp(V_0/alpha); start policy_visitation from that posterior
    q0 = fm.state[0]
    torch.testing.assert_close(policy_visitation(mdp, sv.policy, q0), fm.state_action, atol=1e-12, rtol=0)


def test_stationary_occupancy_sums_and_fixed_point():
    mdp = random_mdp(5, 2, 3, seed=1, horizon=None, discount=0.9)
    pi = cai.soft_value_iteration(mdp, 1.0).policy
    d = policy_visitation(mdp, pi)
    assert abs(d.sum().item() - 1 / (1 - 0.9)) < 1e-9
    # d(s) = p0(s) + gamma sum_{s',a'} P(s|s',a') d(s',a'), solved directly
    P = mdp.transitions
    Ppi = torch.einsum("sa,sat->st", pi, P)
    ds = torch.linalg.solve(torch.eye(5, dtype=torch.float64) - 0.9 * Ppi.T, mdp.initial)
    torch.testing.assert_close(d.sum(-1), ds, atol=1e-9, rtol=0)


def test_stationary_policy_on_finite_horizon_and_gradients():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    logits = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    d = policy_visitation(mdp, torch.softmax(logits, -1))
    assert d.shape == (3, 4, 2)
    torch.testing.assert_close(d.sum((1, 2)), torch.ones(3, dtype=torch.float64))
    d.sum().backward()  # differentiable
    assert logits.grad is not None


def test_bad_inputs():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    with pytest.raises(ValueError, match="policy"):
        policy_visitation(mdp, torch.ones(4, 3) / 3)
    with pytest.raises(ValueError, match="initial"):
        policy_visitation(mdp, torch.ones(4, 2) / 2, initial=torch.ones(4))
    with pytest.raises(TypeError, match="mdp"):
        policy_visitation("mdp", torch.ones(4, 2) / 2)
