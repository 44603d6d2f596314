"""The identities of docs/design.md §2.4 that tie exact inference to soft dynamic programming."""
import math

import numpy as np
import pytest
import torch

import cai
from cai.worlds import lottery
from tests.common import brute_elbo, brute_hard_value, random_tiny_mdp


@pytest.mark.parametrize("discount", [None, 0.85])
@pytest.mark.parametrize("layout", ["sa", "tsa", "sas"])
def test_deterministic_dynamics_exact_equals_soft(discount, layout):
    rng = np.random.default_rng(21)
    _, mdp = random_tiny_mdp(rng, 4, 3, 5, discount=discount, deterministic=True, layout=layout)
    for alpha in (2.0, 0.1):
        ex = cai.backward_messages(mdp, alpha)
        sv = cai.soft_value_iteration(mdp, alpha)
        if discount is None:
            torch.testing.assert_close(ex.Q, sv.Q, atol=1e-10, rtol=1e-12)
            torch.testing.assert_close(ex.V, sv.V, atol=1e-10, rtol=1e-12)
            torch.testing.assert_close(ex.policy, sv.policy, atol=1e-10, rtol=1e-12)
            assert ex.log_evidence.item() >= sv.max_elbo.item() - 1e-12
        else:
            # death makes the dynamics stochastic again: exact is optimistic about survival
            assert torch.all(ex.V >= sv.V - 1e-10)


@pytest.mark.parametrize("discount", [None, 0.9])
@pytest.mark.parametrize("use_prior", [False, True])
def test_stochastic_exact_dominates_soft(discount, use_prior):
    rng = np.random.default_rng(22)
    d, mdp = random_tiny_mdp(rng, 4, 3, 5, discount=discount)
    prior = None
    if use_prior:
        prior = rng.random((4, 3)) + 0.1
        prior /= prior.sum(-1, keepdims=True)
    for alpha in (1.0, 0.2):
        ex = cai.backward_messages(mdp, alpha, prior)
        sv = cai.soft_value_iteration(mdp, alpha, prior)
        assert torch.all(ex.V >= sv.V - 1e-12)
        assert torch.all(ex.Q[torch.isfinite(ex.Q)] >= sv.Q[torch.isfinite(sv.Q)] - 1e-12)
        gap = ex.log_evidence - sv.max_elbo
        assert gap.item() > 1e-6  # strict: these dynamics are genuinely random


def test_lottery_gap_derived_by_hand():
    """One decision, alpha = 1, p_win = 0.1, win = 10, lose = -1, safe = 0.5.

    Soft VI (expectation over the outcome):
        Q(gamble) = 0.1 * 10 + 0.9 * (-1) = 0.1,  Q(safe) = 0.5
        V = log(e^0.5 + e^0.1),  max ELBO = V (p0 is a point mass, alpha = 1)
    Exact inference (log-expectation: the agent 'chooses' its luck):
        Q(gamble) = log(0.1 e^10 + 0.9 e^-1),     Q(safe) = 0.5
        log p(O) = log(e^0.5 + 0.1 e^10 + 0.9 e^-1)
    """
    mdp = lottery(p_win=0.1, win=10.0, lose=-1.0, safe=0.5)
    ex = cai.backward_messages(mdp, alpha=1.0)
    sv = cai.soft_value_iteration(mdp, alpha=1.0)
    q_gamble_exact = math.log(0.1 * math.exp(10) + 0.9 * math.exp(-1))
    assert sv.Q[0, 0, 1].item() == pytest.approx(0.1, abs=1e-14)
    assert sv.Q[0, 0, 0].item() == pytest.approx(0.5, abs=1e-14)
    assert ex.Q[0, 0, 1].item() == pytest.approx(q_gamble_exact, abs=1e-13)
    assert sv.max_elbo.item() == pytest.approx(math.log(math.exp(0.5) + math.exp(0.1)), abs=1e-13)
    assert ex.log_evidence.item() == pytest.approx(math.log(math.exp(0.5) + math.exp(q_gamble_exact)), abs=1e-13)
    # the two disagree on what to do: soft VI prefers the sure thing, exact inference gambles
    assert sv.policy[0, 0, 0] > 0.5 > ex.policy[0, 0, 0]
    assert ex.policy[0, 0, 1].item() == pytest.approx(
        math.exp(q_gamble_exact) / (math.exp(0.5) + math.exp(q_gamble_exact)), abs=1e-13)
    # the posterior dynamics claim the gamble is won far more often than p_win = 0.1
    K = cai.posterior_dynamics(mdp, ex)
    assert K[0, 0, 1, 2].item() == pytest.approx(0.1 * math.exp(10) / math.exp(q_gamble_exact), abs=1e-13)


@pytest.mark.parametrize("discount", [None, 0.9])
def test_soft_minus_hard_is_bounded(discount):
    """0 <= V_soft - V_hard <= alpha * log|A| * (steps to go) with the counting prior."""
    rng = np.random.default_rng(23)
    _, mdp = random_tiny_mdp(rng, 5, 3, 6, discount=discount)
    hard = cai.value_iteration(mdp)
    T = mdp.horizon
    steps = torch.arange(T, -1, -1, dtype=torch.float64).unsqueeze(-1)  # T - t
    for alpha in (1.0, 0.1, 0.01):
        soft = cai.soft_value_iteration(mdp, alpha)
        diff = soft.V - hard.V
        assert torch.all(diff >= -1e-12)
        assert torch.all(diff <= alpha * math.log(3) * steps + 1e-12)
    # and the limit alpha -> 0 recovers the hard values
    torch.testing.assert_close(cai.soft_value_iteration(mdp, 1e-6).V, hard.V, atol=1e-4, rtol=0)


def test_hard_value_iteration_matches_brute_force_over_policies():
    rng = np.random.default_rng(24)
    d, mdp = random_tiny_mdp(rng, 3, 2, 3)
    hard = cai.value_iteration(mdp)
    assert hard.value.item() == pytest.approx(brute_hard_value(d), abs=1e-12)
    d2, mdp2 = random_tiny_mdp(rng, 2, 2, 3, discount=0.7)
    assert cai.value_iteration(mdp2).value.item() == pytest.approx(brute_hard_value(d2), abs=1e-12)


@pytest.mark.parametrize("discount", [None, 0.8])
@pytest.mark.parametrize("layout", ["sa", "sas"])
def test_elbo_closed_form_matches_enumeration(discount, layout):
    rng = np.random.default_rng(25)
    d, mdp = random_tiny_mdp(rng, 3, 2, 3, discount=discount, layout=layout)
    prior = rng.random((3, 2)) + 0.2
    prior /= prior.sum(-1, keepdims=True)
    pol = rng.random((3, 3, 2)) + 0.1
    pol /= pol.sum(-1, keepdims=True)
    for pr in (None, prior):
        for alpha in (1.0, 0.4):
            want, _ = brute_elbo(d, pol, alpha, pr)
            got = cai.elbo(mdp, pol, alpha, pr)
            assert got.item() == pytest.approx(want, abs=1e-11)
            # the log-policy form is the same quantity
            got = cai.elbo(mdp, alpha=alpha, action_prior=pr, log_policy=torch.log(torch.as_tensor(pol)))
            assert got.item() == pytest.approx(want, abs=1e-11)


def test_elbo_takes_exactly_one_of_policy_and_log_policy():
    rng = np.random.default_rng(25)
    _, mdp = random_tiny_mdp(rng, 3, 2, 3)
    pol = torch.full((3, 3, 2), 0.5, dtype=torch.float64)
    with pytest.raises(ValueError, match="policy/log_policy"):
        cai.elbo(mdp, alpha=1.0)
    with pytest.raises(ValueError, match="policy/log_policy"):
        cai.elbo(mdp, pol, 1.0, log_policy=torch.log(pol))
    with pytest.raises(ValueError, match="log_policy"):
        cai.elbo(mdp, alpha=1.0, log_policy=torch.zeros(3, 3, 2, dtype=torch.float64))   # exp rows sum to 2


@pytest.mark.parametrize("discount", [None, 0.9])
def test_soft_vi_policy_attains_the_max_elbo(discount):
    rng = np.random.default_rng(26)
    d, mdp = random_tiny_mdp(rng, 4, 3, 4, discount=discount)
    for alpha in (1.0, 0.3):
        sv = cai.soft_value_iteration(mdp, alpha)
        e = cai.elbo(mdp, sv.policy, alpha)
        assert e.item() == pytest.approx((mdp.initial * sv.V[0]).sum().item() / alpha, abs=1e-11)
        assert e.item() == pytest.approx(sv.max_elbo.item(), abs=1e-11)
        # and any other policy does worse, and everything stays below the evidence
        other = torch.softmax(torch.randn(4, 4, 3, dtype=torch.float64), -1)
        assert cai.elbo(mdp, other, alpha).item() < e.item()
        assert e.item() <= cai.backward_messages(mdp, alpha).log_evidence.item() + 1e-12


def test_soft_policy_evaluation_of_the_soft_policy_returns_its_values():
    rng = np.random.default_rng(27)
    _, mdp = random_tiny_mdp(rng, 4, 3, 4, discount=0.9)
    sv = cai.soft_value_iteration(mdp, 0.5)
    ev = cai.soft_policy_evaluation(mdp, sv.policy, 0.5)
    torch.testing.assert_close(ev.V, sv.V, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(ev.Q, sv.Q, atol=1e-12, rtol=1e-12)


def test_elbo_gradient_is_expected_visitation_under_q():
    """d ELBO / d r(s,a) at a fixed policy is (1/alpha) E_q[visits of (s,a)] (by enumeration)."""
    rng = np.random.default_rng(28)
    d, base = random_tiny_mdp(rng, 3, 2, 3, discount=0.9)
    pol = rng.random((3, 3, 2)) + 0.1
    pol /= pol.sum(-1, keepdims=True)
    r = base.rewards.clone().requires_grad_(True)
    e = cai.elbo(base.replace(rewards=r), pol, 0.5)
    (g,) = torch.autograd.grad(e, r)
    _, visit = brute_elbo(d, pol, 0.5)
    np.testing.assert_allclose(g.numpy() * 0.5, visit, atol=1e-12)


def test_elbo_is_minus_inf_for_a_policy_that_takes_a_forbidden_action():
    rng = np.random.default_rng(29)
    _, mdp = random_tiny_mdp(rng, 3, 2, 2, forbid=True)
    uniform = torch.full((2, 3, 2), 0.5, dtype=torch.float64)
    assert cai.elbo(mdp, uniform, 1.0).item() == -math.inf
    sv = cai.soft_value_iteration(mdp, 1.0)
    assert math.isfinite(cai.elbo(mdp, sv.policy, 1.0).item())


def test_elbo_gradient_is_finite_for_policies_with_zeros():
    rng = np.random.default_rng(30)
    _, mdp = random_tiny_mdp(rng, 3, 2, 2)
    logits = torch.tensor([0.0, -math.inf], dtype=torch.float64).expand(2, 3, 2).clone().requires_grad_(True)
    cai.elbo(mdp, torch.softmax(logits, -1), 1.0).backward()
    assert torch.isfinite(logits.grad).all()


def test_policy_on_forbidden_actions_is_minus_inf_not_nan():
    # a uniform policy on a grid puts mass on the goal's and exit's forbidden actions: its value is
    # -inf exactly where such a step is reachable (0 * -inf must not give NaN), checked against a
    # direct NumPy recursion that treats unreachable successors as absent
    from cai.worlds import gridworld

    mdp = gridworld("S.G\n...", slip=0.2, horizon=4)
    T, S, A = 4, mdp.n_states, mdp.n_actions
    pi = np.full((T, S, A), 1.0 / A)
    sol = cai.soft_policy_evaluation(mdp, pi, 0.5)
    P, r = mdp.dense_transitions().numpy(), mdp.rewards.numpy()
    V = mdp.terminal_rewards.numpy().copy()
    expected = [V]
    for _ in range(T):
        ev = np.array([[sum(P[s, a, s2] * V[s2] for s2 in range(S) if P[s, a, s2] > 0) for a in range(A)]
                       for s in range(S)])
        Q = r + ev
        V = np.array([sum(1.0 / A * (Q[s, a] - 0.5 * np.log(1.0 / A)) for a in range(A)) for s in range(S)])
        expected.insert(0, V)
    expected = np.stack(expected)
    assert not torch.isnan(sol.V).any() and not torch.isnan(sol.Q).any()
    assert np.array_equal(np.isneginf(sol.V.numpy()), np.isneginf(expected)) and np.isneginf(expected).any()
    fin = np.isfinite(expected)
    np.testing.assert_allclose(sol.V.numpy()[fin], expected[fin], rtol=0, atol=1e-12)
    assert not torch.isnan(cai.elbo(mdp, pi, 0.5)) and not torch.isnan(sol.value)
