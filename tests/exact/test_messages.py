"""Exact backward/forward messages against brute-force enumeration of every trajectory."""
import zlib

import numpy as np
import pytest
import torch

import cai
from tests.common import brute_force, random_tiny_mdp, t64

CASES = [
    # (S, A, T, discount, layout, deterministic, prior)
    (3, 2, 3, None, "sa", False, False),
    (3, 2, 4, None, "sa", False, True),
    (2, 2, 3, 0.8, "sa", False, False),
    (3, 2, 2, 0.7, "sa", False, True),
    (3, 2, 3, None, "tsa", False, False),
    (2, 2, 3, None, "sas", False, False),
    (2, 2, 2, 0.6, "sas", False, True),
    (3, 1, 3, None, "s", False, False),
    (3, 2, 3, None, "sa", True, False),
]


def _prior(rng, S, A):
    p = rng.random((S, A)) + 0.1
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("S,A,T,discount,layout,det,use_prior", CASES)
@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_log_evidence_and_marginals_match_brute_force(S, A, T, discount, layout, det, use_prior, alpha):
    rng = np.random.default_rng(zlib.crc32(repr((S, A, T, discount, layout, det, use_prior)).encode()))
    d, mdp = random_tiny_mdp(rng, S, A, T, discount=discount, layout=layout, deterministic=det)
    prior = _prior(rng, S, A) if use_prior else None
    bf = brute_force(d, alpha, prior)
    msg = cai.backward_messages(mdp, alpha=alpha, action_prior=prior)
    assert msg.log_evidence.item() == pytest.approx(bf["log_evidence"], abs=1e-10, rel=1e-12)
    fwd = cai.forward_messages(mdp, msg)
    np.testing.assert_allclose(fwd.state_action.numpy(), bf["state_action"], atol=1e-10)
    np.testing.assert_allclose(fwd.state.numpy(), bf["state"], atol=1e-10)
    # posterior dynamics p(s'|s,a,O), where (s,a) has posterior mass
    K = cai.posterior_dynamics(mdp, msg).numpy()
    mask = bf["state_action"] > 1e-9
    np.testing.assert_allclose(K[mask], bf["next_given_sa"][mask], atol=1e-8)
    # policies are distributions; the posterior policy is the conditional of the marginals
    pol = msg.policy
    np.testing.assert_allclose(pol.sum(-1).numpy(), 1.0, atol=1e-12)
    cond = bf["state_action"] / bf["state_action"].sum(-1, keepdims=True)
    np.testing.assert_allclose(pol.numpy()[mask], cond[mask], atol=1e-9)


def test_forbidden_actions_get_zero_probability():
    rng = np.random.default_rng(3)
    d, mdp = random_tiny_mdp(rng, 3, 2, 3, forbid=True)
    msg = cai.backward_messages(mdp, alpha=0.5)
    assert torch.all(msg.policy[:, 0, 0] == 0)
    assert torch.isneginf(msg.Q[:, 0, 0]).all()
    bf = brute_force(d, 0.5)
    assert msg.log_evidence.item() == pytest.approx(bf["log_evidence"], abs=1e-10)
    fwd = cai.forward_messages(mdp, msg)
    np.testing.assert_allclose(fwd.state_action.numpy(), bf["state_action"], atol=1e-10)
    sv = cai.soft_value_iteration(mdp, alpha=0.5)
    assert torch.all(sv.policy[:, 0, 0] == 0)


@pytest.mark.parametrize("discount", [None, 0.9])
def test_gradient_of_log_evidence_is_posterior_visitation(discount):
    """d log p(O) / d r(s,a) = (1/alpha) sum_t p(s_t=s, a_t=a | O): autograd vs forward messages."""
    rng = np.random.default_rng(11)
    _, base = random_tiny_mdp(rng, 4, 3, 5, discount=discount)
    r = base.rewards.clone().requires_grad_(True)
    mdp = base.replace(rewards=r)
    alpha = 0.7
    msg = cai.backward_messages(mdp, alpha=alpha)
    (g,) = torch.autograd.grad(msg.log_evidence, r)
    fwd = cai.forward_messages(mdp, msg)
    torch.testing.assert_close(g * alpha, fwd.visitation.detach(), atol=1e-12, rtol=1e-10)


def test_gradient_of_log_evidence_time_varying_and_terminal():
    rng = np.random.default_rng(12)
    _, base = random_tiny_mdp(rng, 3, 2, 4, layout="tsa")
    r = base.rewards.clone().requires_grad_(True)
    rT = base.terminal_rewards.clone().requires_grad_(True)
    mdp = base.replace(rewards=r, terminal_rewards=rT, reward_layout="tsa")
    msg = cai.backward_messages(mdp, alpha=1.3)
    g, gT = torch.autograd.grad(msg.log_evidence, (r, rT))
    fwd = cai.forward_messages(mdp, msg)
    torch.testing.assert_close(g * 1.3, fwd.state_action.detach(), atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(gT * 1.3, fwd.state[-1].detach(), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("sparse_kind", ["torch_coo", "torch_csr", "scipy"])
def test_sparse_transitions_agree_with_dense(sparse_kind):
    import scipy.sparse as sp

    rng = np.random.default_rng(5)
    d, dense = random_tiny_mdp(rng, 5, 3, 4, discount=0.9, sparsity=0.6)
    flat = d["P"].reshape(15, 5)
    if sparse_kind == "scipy":
        P = sp.csr_matrix(flat)
    elif sparse_kind == "torch_coo":
        P = t64(flat).to_sparse_coo()
    else:
        P = t64(flat).to_sparse_csr()
    sparse = cai.TabularMDP(P, d["r"], d["p0"], horizon=4, discount=0.9, terminal_rewards=d["rT"])
    assert sparse.is_sparse
    for alpha in (1.0, 0.05):
        a = cai.backward_messages(dense, alpha)
        b = cai.backward_messages(sparse, alpha)
        torch.testing.assert_close(a.Q, b.Q, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(a.log_evidence, b.log_evidence, atol=1e-12, rtol=1e-12)
        torch.testing.assert_close(cai.forward_messages(dense, a).state_action,
                                   cai.forward_messages(sparse, b).state_action, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(cai.soft_value_iteration(dense, alpha).V,
                                   cai.soft_value_iteration(sparse, alpha).V, atol=1e-12, rtol=1e-12)


def test_no_overflow_at_extreme_scales():
    """Rewards of +-1e4 at alpha 1e-3: r/alpha = 1e7, far beyond exp's range.

    The brute force works in log space per trajectory, so it is an exact reference here.
    """
    rng = np.random.default_rng(8)
    d, mdp = random_tiny_mdp(rng, 3, 2, 3, discount=0.9, scale=1e4)
    for alpha in (1e-3, 1.0):
        msg = cai.backward_messages(mdp, alpha=alpha)
        assert torch.isfinite(msg.Q).all() and torch.isfinite(msg.V).all()
        bf = brute_force(d, alpha)
        assert msg.log_evidence.item() == pytest.approx(bf["log_evidence"], rel=1e-12)
        fwd = cai.forward_messages(mdp, msg)
        np.testing.assert_allclose(fwd.state_action.numpy(), bf["state_action"], atol=1e-9)
        np.testing.assert_allclose(msg.policy.sum(-1).numpy(), 1.0, atol=1e-12)
        sv = cai.soft_value_iteration(mdp, alpha=alpha)
        assert torch.isfinite(sv.V).all()
        np.testing.assert_allclose(sv.policy.sum(-1).numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize("keep", ["all", "values"])
def test_low_temperature_rows_are_recomputed_in_bands(monkeypatch, keep):
    """Rewards of order 1 at alpha 2e-3 spread the values over ~2000 alpha: one shifted product
    underflows in most rows, which are recomputed from slabs of V (cai.ops.logspace._banded),
    never term by term; messages and marginals still equal enumeration."""
    import cai.ops.logspace as ls

    used = {"banded": 0, "exact_rows": 0}
    orig_b, orig_e = ls._banded, ls._exact_rows

    def banded(*a, **k):
        out = orig_b(*a, **k)
        used["banded"] += out is not None
        return out

    def exact_rows(*a, **k):
        used["exact_rows"] += 1
        return orig_e(*a, **k)

    monkeypatch.setattr(ls, "_banded", banded)
    monkeypatch.setattr(ls, "_exact_rows", exact_rows)
    rng = np.random.default_rng(12)
    # sparse rows (self-loops kept): some (s, a) reach only low-valued states
    d, mdp = random_tiny_mdp(rng, 3, 2, 4, discount=0.9, scale=2.0, sparsity=0.7)
    for alpha in (2e-3, 5e-3):
        msg = cai.backward_messages(mdp, alpha=alpha, keep=keep)
        bf = brute_force(d, alpha)
        assert msg.log_evidence.item() == pytest.approx(bf["log_evidence"], rel=1e-12)
        fwd = cai.forward_messages(mdp, msg)
        np.testing.assert_allclose(fwd.state_action.numpy(), bf["state_action"], atol=1e-10)
    assert used["banded"] > 0 and used["exact_rows"] == 0


def test_underflowing_rows_take_the_exact_route():
    """A successor set whose values sit 1e6 nats below the best state must not give -inf."""
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = 1.0   # state 0 leads only to the bad state 1
    P[1, 0, 1] = 1.0
    P[2, 0, 2] = 1.0
    mdp = cai.TabularMDP(P, np.zeros((3, 1)), [1 / 3] * 3, horizon=1, terminal_rewards=[0.0, -1e3, 0.0])
    msg = cai.backward_messages(mdp, alpha=1e-3)
    # Q_0(0, .) = r + alpha log exp(V_1(1)/alpha) = -1e3 exactly
    assert msg.Q[0, 0, 0].item() == pytest.approx(-1e3, rel=1e-14)
    # gradients stay finite through the fallback
    rT = mdp.terminal_rewards.clone().requires_grad_(True)
    le = cai.backward_messages(mdp.replace(terminal_rewards=rT), alpha=1e-3).log_evidence
    (g,) = torch.autograd.grad(le, rT)
    assert torch.isfinite(g).all()


def test_forward_messages_validates_its_inputs():
    rng = np.random.default_rng(1)
    _, mdp = random_tiny_mdp(rng)
    sv = cai.soft_value_iteration(mdp, 1.0)
    with pytest.raises(TypeError, match="messages"):
        cai.forward_messages(mdp, sv)
    _, other = random_tiny_mdp(rng)
    with pytest.raises(ValueError, match="different MDP"):
        cai.forward_messages(other, cai.backward_messages(mdp, 1.0))


def test_keep_values_recomputes_the_same_q_and_policy():
    rng = np.random.default_rng(4)
    _, mdp = random_tiny_mdp(rng, 4, 3, 5, discount=0.95)
    full = cai.backward_messages(mdp, 0.4)
    lazy = cai.backward_messages(mdp, 0.4, keep="values")
    first = cai.backward_messages(mdp, 0.4, keep="first")
    # keep="values" runs the fused exp-domain step (cai.ops.values_step.SoftValueStep): the same map
    # summed in another order, so agreement is to rounding, not bit for bit
    torch.testing.assert_close(full.V, lazy.V, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(full.Q, lazy.Q, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(full.policy, lazy.policy, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(full.policy_at(2), first.policy_at(2), rtol=1e-13, atol=1e-13)
    # step 0 of keep="first" is stored from the general backup, as under keep="all"
    torch.testing.assert_close(full.q_at(0), first.q_at(0), rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="t:"):
        full.q_at(5)


def test_discounted_marginals_sum_to_survival():
    """With death probability 1 - gamma, p(alive at t | O) is below 1; without it is exactly 1."""
    rng = np.random.default_rng(2)
    _, mdp = random_tiny_mdp(rng, 3, 2, 4, discount=0.8)
    fwd = cai.forward_messages(mdp, cai.backward_messages(mdp, 1.0))
    alive = fwd.state.sum(-1)
    assert alive[0].item() == pytest.approx(1.0, abs=1e-12)
    assert torch.all(alive[1:] < 1) and torch.all(alive[1:] > 0)
    assert torch.all(alive[1:] <= alive[:-1] + 1e-15)
    _, mdp1 = random_tiny_mdp(rng, 3, 2, 4)
    torch.testing.assert_close(cai.forward_messages(mdp1, cai.backward_messages(mdp1, 1.0)).state.sum(-1),
                               torch.ones(5, dtype=torch.float64), atol=1e-12, rtol=0)


def test_forward_messages_from_a_given_initial_distribution():
    """Conditioning on s_0 ~ q0: the marginals are a q0-mixture of the point-mass posteriors."""
    rng = np.random.default_rng(6)
    d, mdp = random_tiny_mdp(rng, 3, 2, 3)
    msg = cai.backward_messages(mdp, 0.6)
    q0 = np.array([0.5, 0.0, 0.5])
    got = cai.forward_messages(mdp, msg, initial=q0).state_action.numpy()
    want = 0
    for s0 in (0, 2):
        e = np.zeros(3); e[s0] = 1.0
        d0 = dict(d, p0=e)
        want = want + q0[s0] * brute_force(d0, 0.6)["state_action"]
    np.testing.assert_allclose(got, want, atol=1e-10)
    with pytest.raises(ValueError, match="initial: expected a distribution"):
        cai.forward_messages(mdp, msg, initial=[1.0, 1.0, 0.0])


def test_forward_gradients_are_finite_with_impossible_actions():
    """Zero-probability actions (forbidden or zero prior) must give zero, not NaN, gradients."""
    P = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.5, 0.5]]], dtype=torch.float64)
    r = torch.tensor([[0.0, 0.5], [1.0, -float("inf")]], dtype=torch.float64, requires_grad=True)
    m = cai.TabularMDP(P, r, horizon=2)
    s = cai.backward_messages(m, 1.0, action_prior=[[1.0, 0.0], [0.5, 0.5]])
    f = cai.forward_messages(m, s)
    (g,) = torch.autograd.grad(f.state[1, 1] + f.state_action[1, 0, 0], r)
    assert torch.isfinite(g).all()
    assert g[0, 1].item() == 0.0 and g[1, 1].item() == 0.0   # impossible actions: zero influence


@pytest.mark.parametrize("layout", ["sa", "sas"])
def test_alpha_gradients_are_finite_with_forbidden_actions(layout):
    P = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.5, 0.5]]], dtype=torch.float64)
    r = torch.tensor([[0.0, -float("inf")], [1.0, 0.0]], dtype=torch.float64)
    if layout == "sas":
        r = r.unsqueeze(-1).expand(2, 2, 2).clone()
    m = cai.TabularMDP(P, r, horizon=2, discount=0.9, reward_layout=layout)
    al = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    for value in (cai.backward_messages(m, al).log_evidence, cai.soft_value_iteration(m, al).value):
        (g,) = torch.autograd.grad(value, al)
        assert torch.isfinite(g)
    # and it is the right number: central finite differences
    f = lambda x: cai.backward_messages(m, x).log_evidence.item()  # noqa: E731
    (g,) = torch.autograd.grad(cai.backward_messages(m, al).log_evidence, al)
    assert g.item() == pytest.approx((f(0.7 + 1e-6) - f(0.7 - 1e-6)) / 2e-6, rel=1e-6)


def test_float32_marginals_stay_normalised_at_extreme_scales():
    """r ~ 1e4 at alpha 1e-3 in float32: the posterior dynamics' normaliser must come from the
    successor values, not from Q - r (which cancels to nothing in 24 bits)."""
    rng = np.random.default_rng(9)
    d, m64 = random_tiny_mdp(rng, 4, 3, 4, scale=1e4)
    m32 = m64.to(dtype=torch.float32)
    f32 = cai.forward_messages(m32, cai.backward_messages(m32, 1e-3))
    torch.testing.assert_close(f32.state.sum(-1), torch.ones(5), atol=1e-4, rtol=0)
    f64 = cai.forward_messages(m64, cai.backward_messages(m64, 1e-3))
    torch.testing.assert_close(f32.state_action.double(), f64.state_action, atol=1e-3, rtol=0)
