"""Batches of temperatures and reward functions broadcast through every routine."""
import numpy as np
import pytest
import torch

import cai
from tests.common import random_tiny_mdp


@pytest.fixture
def base():
    rng = np.random.default_rng(41)
    return random_tiny_mdp(rng, 4, 3, 4, discount=0.9)[1]


def test_alpha_sweep_equals_separate_calls(base):
    alphas = torch.tensor([0.1, 0.5, 2.0], dtype=torch.float64)
    for fn in (cai.backward_messages, cai.soft_value_iteration):
        batch = fn(base, alphas)
        assert batch.V.shape == (3, 5, 4) and batch.Q.shape == (3, 4, 4, 3)
        for i, a in enumerate(alphas.tolist()):
            one = fn(base, a)
            torch.testing.assert_close(batch.V[i], one.V, atol=1e-13, rtol=1e-13)
            torch.testing.assert_close(batch.policy[i], one.policy, atol=1e-13, rtol=1e-13)
    msg = cai.backward_messages(base, alphas)
    fwd = cai.forward_messages(base, msg)
    assert fwd.state_action.shape == (3, 4, 4, 3)
    for i, a in enumerate(alphas.tolist()):
        torch.testing.assert_close(msg.log_evidence[i], cai.backward_messages(base, a).log_evidence)
        torch.testing.assert_close(fwd.state_action[i],
                                   cai.forward_messages(base, cai.backward_messages(base, a)).state_action,
                                   atol=1e-13, rtol=1e-12)
    pol = cai.soft_value_iteration(base, alphas).policy
    torch.testing.assert_close(cai.elbo(base, pol, alphas),
                               torch.stack([cai.elbo(base, pol[i], a) for i, a in enumerate(alphas.tolist())]))


def test_reward_batch_and_alpha_batch_broadcast(base):
    rng = np.random.default_rng(42)
    R = torch.as_tensor(rng.standard_normal((2, 1, 4, 3)))          # batch (2, 1)
    alphas = torch.tensor([0.3, 1.0, 3.0], dtype=torch.float64)     # batch (3,) -> (2, 3)
    mdp = base.replace(rewards=R, reward_layout="sa")
    assert mdp.batch_shape == (2, 1)
    msg = cai.backward_messages(mdp, alphas)
    assert msg.log_evidence.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = cai.backward_messages(base.replace(rewards=R[i, 0]), alphas[j].item())
            torch.testing.assert_close(msg.Q[i, j], one.Q, atol=1e-13, rtol=1e-13)
            torch.testing.assert_close(msg.log_evidence[i, j], one.log_evidence)
    sv = cai.soft_value_iteration(mdp, alphas)
    assert sv.V.shape == (2, 3, 5, 4)
    hard = cai.value_iteration(mdp)
    assert hard.V.shape == (2, 1, 5, 4)


def test_batched_stationary(base):
    stat = base.replace(horizon=None, rewards=-base.rewards.abs())  # r <= 0: convergent
    alphas = torch.tensor([0.5, 1.0], dtype=torch.float64)
    pr = np.full((4, 3), 1 / 3)
    b = cai.backward_messages(stat, alphas, pr, tol=1e-13)
    for i, a in enumerate(alphas.tolist()):
        torch.testing.assert_close(b.V[i], cai.backward_messages(stat, a, pr, tol=1e-13).V, atol=1e-11, rtol=0)


def test_incompatible_batch_shapes_are_reported(base):
    mdp = base.replace(rewards=torch.zeros(2, 4, 3, dtype=torch.float64), reward_layout="sa")
    with pytest.raises(ValueError, match="alpha: expected a shape that broadcasts"):
        cai.backward_messages(mdp, torch.ones(3, dtype=torch.float64))


def test_autograd_through_a_batch(base):
    r = base.rewards.clone().requires_grad_(True)
    alphas = torch.tensor([0.5, 2.0], dtype=torch.float64, requires_grad=True)
    mdp = base.replace(rewards=r)
    msg = cai.backward_messages(mdp, alphas)
    msg.log_evidence.sum().backward()
    fwd = cai.forward_messages(base, cai.backward_messages(base, alphas.detach()))
    want = (fwd.visitation / alphas.detach()[:, None, None]).sum(0)
    torch.testing.assert_close(r.grad, want, atol=1e-12, rtol=1e-10)
    assert torch.isfinite(alphas.grad).all()


def test_a_batch_of_policies(base):
    rng = np.random.default_rng(43)
    pols = torch.softmax(torch.as_tensor(rng.standard_normal((2, 4, 4, 3))), -1)   # (2, T, S, A)
    e = cai.elbo(base, pols, 0.7)
    assert e.shape == (2,)
    for i in range(2):
        torch.testing.assert_close(e[i], cai.elbo(base, pols[i], 0.7), atol=1e-13, rtol=1e-13)
    with pytest.raises(ValueError, match="policy: expected a batch shape"):
        cai.elbo(base, pols, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [(1,), (1, 1)])
def test_a_batch_of_one_equals_the_single_solve(sparse, shape):
    """A batch of one temperature (or one reward table) is the single solve, bit for bit, with every
    output kept: the one-column fast path must write into ``(*1, ...)`` outputs too (a regression:
    it refused them with a NumPy broadcast error)."""
    from cai.worlds.builders import gridworld

    mdp = gridworld("S..\n.#G", slip=0.1, horizon=5, sparse=sparse)
    tables = mdp.replace(rewards=mdp.rewards.expand(*shape, *mdp.rewards.shape).clone(), reward_layout="sa")
    for fn in (cai.soft_value_iteration, cai.backward_messages):
        one = fn(mdp, 0.7)
        for batch in (fn(mdp, torch.full(shape, 0.7, dtype=torch.float64)), fn(tables, 0.7)):
            assert batch.Q.shape == (*shape, *one.Q.shape)
            for k in ("V", "Q", "log_policy", "policy"):
                assert torch.equal(getattr(batch, k).reshape(getattr(one, k).shape), getattr(one, k)), (fn, k)
