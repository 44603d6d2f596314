"""Variational trajectory inference: ELBO estimators against the closed form, and SVI fits."""
import math

import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

import cai
from cai.ppl.model import TrajectoryModel, pyro_log_evidence
from cai.ppl.svi import (
    AmortizedPolicyGuide,
    ExactPolicyELBO,
    TabularPolicyGuide,
    closed_form_elbo,
    elbo_samples,
    fit_policy_closed_form,
    fit_policy_svi,
    guide_elbo,
    state_marginals,
)
from cai.report.table import policy_tv
from cai.worlds import square_layout
from cai.worlds.builders import chain, gridworld, lottery, random_mdp


def _random_policy(T, S, A, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(T, S, A, generator=g, dtype=torch.float64) + 0.05
    return p / p.sum(-1, keepdim=True)


def _random_prior(S, A, seed):
    return _random_policy(1, S, A, seed)[0]


def _tiny(kind, discount):
    """Tiny MDPs for guide-side enumeration (S (S A c)^T configurations)."""
    if kind == "sa":
        return random_mdp(3, 2, 2, seed=2, horizon=3, discount=discount, reward_scale=1.5)
    mdp = random_mdp(3, 2, 3, seed=3, horizon=3, discount=discount)
    g = torch.Generator().manual_seed(9)
    return mdp.replace(rewards=torch.randn(3, 2, 3, generator=g, dtype=torch.float64), reward_layout="sas",
                       terminal_rewards=torch.randn(3, generator=g, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# the ELBO of a fixed policy, three ways

@pytest.mark.parametrize("kind", ["sa", "sas"])
@pytest.mark.parametrize("discount", [None, 0.8])
@pytest.mark.parametrize("prior", ["counting", "normalised"])
def test_enumerated_guide_elbo_equals_closed_form(kind, discount, prior):
    # Pyro's TraceEnum_ELBO with every guide site enumerated (all (S A)^T trajectories weighted
    # by q), the forward enumeration guide_elbo, and the backward closed form cai.elbo must be
    # the same number. (The guide runs without pyro.markov here: with dimension recycling in the
    # guide, Pyro's guide-side enumeration silently returns a wrong value.)
    mdp = _tiny(kind, discount)
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    rho = None if prior == "counting" else _random_prior(S, A, 4)
    pol = _random_policy(T, S, A, 1)
    ref = cai.elbo(mdp, pol, 0.7, rho).item()
    model = TrajectoryModel(mdp, 0.7, rho)
    guide = TabularPolicyGuide(model, init=pol)
    pyro_enum = -TraceEnum_ELBO(max_plate_nesting=1).loss(model, lambda n: guide(n, enumerate=True), 1)
    assert abs(pyro_enum - ref) <= 1e-10 * max(1.0, abs(ref))
    assert abs(guide_elbo(model, pol).item() - ref) <= 1e-10 * max(1.0, abs(ref))
    assert abs(ExactPolicyELBO().loss(model, guide) + ref) <= 1e-10 * max(1.0, abs(ref))
    with pytest.warns(DeprecationWarning, match="cai.elbo"):
        old = closed_form_elbo(model, torch.log(pol)).item()     # the deprecated alias of cai.elbo
    assert abs(old - ref) <= 1e-10 * max(1.0, abs(ref))


@pytest.mark.parametrize("discount", [None, 0.9])
def test_forward_elbo_equals_closed_form_on_a_grid(discount):
    mdp = gridworld(square_layout(5), slip=0.2, horizon=10, discount=discount)
    pol = _random_policy(10, mdp.n_states, 4, 3) * mdp.allowed      # terminal cells and the exit: one action
    pol = pol / pol.sum(-1, keepdim=True)
    for alpha in (0.3, 1.0):
        ref = cai.elbo(mdp, pol, alpha).item()
        assert abs(guide_elbo(mdp, pol, alpha).item() - ref) <= 1e-10 * max(1.0, abs(ref))
    # stationary (S, A) policies broadcast over time in both
    assert abs(guide_elbo(mdp, pol[0], 1.0).item() - cai.elbo(mdp, pol[0], 1.0).item()) <= 1e-10 * 10


def test_sampled_elbo_within_four_standard_errors():
    mdp = random_mdp(5, 3, 3, seed=6, horizon=6, discount=0.9)
    pol = _random_policy(6, 5, 3, 2)
    model = TrajectoryModel(mdp, 0.5)
    guide = TabularPolicyGuide(model, init=pol)
    torch.manual_seed(0)
    w = elbo_samples(model, guide, 40_000)
    ref = cai.elbo(mdp, pol, 0.5).item()
    se = w.std().item() / math.sqrt(w.numel())
    assert abs(w.mean().item() - ref) <= 4 * se
    # and these are the terms Pyro's Trace_ELBO averages: same draws, same number
    torch.manual_seed(1)
    w1 = elbo_samples(model, guide, 500)
    torch.manual_seed(1)
    loss = Trace_ELBO(max_plate_nesting=1).loss(model, guide, 500)
    assert abs(-loss - w1.sum().item()) <= 1e-9 * abs(loss)


def test_state_marginals_against_brute_force():
    # the one home of on-policy marginals, and the deprecated Pyro-side alias that calls it
    mdp = random_mdp(4, 2, 2, seed=8, horizon=3, discount=0.9)
    pol = _random_policy(3, 4, 2, 5)
    d = cai.policy_marginals(mdp, pol).state
    with pytest.warns(DeprecationWarning, match="policy_marginals"):
        torch.testing.assert_close(state_marginals(mdp, pol, 1.0), d, atol=1e-15, rtol=0)
    P = mdp.transitions
    ref = [mdp.initial]
    for t in range(3):
        ref.append(0.9 * torch.einsum("s,sa,sap->p", ref[-1], pol[t], P))
    assert torch.allclose(d, torch.stack(ref), atol=1e-14)
    assert torch.allclose(d.sum(-1), 0.9 ** torch.arange(4, dtype=torch.float64), atol=1e-14)


# ---------------------------------------------------------------------------------------------
# fitting the policy

@pytest.fixture(scope="module")
def slippery_grid():
    mdp = gridworld(square_layout(5), slip=0.2, horizon=10)
    sv = cai.soft_value_iteration(mdp, 1.0)
    visits = cai.policy_marginals(mdp, sv.policy).state
    return mdp, sv, visits


def test_tabular_svi_reaches_soft_vi_on_slippery_grid(slippery_grid):
    mdp, sv, visits = slippery_grid
    fit = fit_policy_svi(mdp, 1.0, progress=False)
    assert fit.converged and fit.method == "svi/tabular/exact"
    assert policy_tv(fit.policy, sv.policy, visits, reduce="max", threshold=1e-3) <= 0.02
    assert 0 <= sv.max_elbo.item() - fit.elbo <= 1e-3
    # the ELBO trace is the exact ELBO of each iterate: increasing overall, bounded by the max
    assert fit.elbo_trace.max().item() <= sv.max_elbo.item() + 1e-9
    assert fit.elbo_trace[-1] > fit.elbo_trace[0]
    assert fit.policy.shape == (10, mdp.n_states, 4) and fit.times.shape == fit.elbo_trace.shape
    assert torch.allclose(fit.policy.sum(-1), torch.ones(10, mdp.n_states, dtype=torch.float64))


def test_closed_form_ascent_reaches_soft_vi(slippery_grid):
    mdp, sv, visits = slippery_grid
    fit = fit_policy_closed_form(mdp, 1.0, progress=False)
    assert fit.converged and fit.guide is None
    assert policy_tv(fit.policy, sv.policy, visits, reduce="max", threshold=1e-3) <= 0.02
    assert 0 <= sv.max_elbo.item() - fit.elbo <= 1e-3
    again = fit_policy_closed_form(mdp, 1.0, progress=False, steps=50, tol=None)
    again2 = fit_policy_closed_form(mdp, 1.0, progress=False, steps=50, tol=None)
    assert torch.equal(again.elbo_trace, again2.elbo_trace)      # deterministic


def test_amortized_svi_gets_close(slippery_grid):
    # Looser, stated tolerance for the network guide (one-hot state and time, 64 tanh units):
    # max TV 0.05 on visited states and an ELBO within 1e-2 of the maximum.
    mdp, sv, visits = slippery_grid
    fit = fit_policy_svi(mdp, 1.0, guide="amortized", progress=False, seed=0)
    assert isinstance(fit.guide, AmortizedPolicyGuide)
    assert policy_tv(fit.policy, sv.policy, visits, reduce="max", threshold=1e-3) <= 0.05
    assert 0 <= sv.max_elbo.item() - fit.elbo <= 1e-2


def test_deterministic_dynamics_elbo_reaches_log_evidence():
    # Without slip, exact inference and VI coincide: log p(O) = max ELBO, and SVI gets there.
    mdp = gridworld(square_layout(5), slip=0.0, horizon=10)
    log_z = pyro_log_evidence(mdp, 1.0).item()
    assert abs(log_z - cai.soft_value_iteration(mdp, 1.0).max_elbo.item()) <= 1e-9
    fit = fit_policy_svi(mdp, 1.0, progress=False)
    assert 0 <= log_z - fit.elbo <= 1e-3


def test_lottery_gap_through_pyro_alone():
    # Exact inference by Pyro's enumeration, VI by Pyro's SVI with the TraceEnum_ELBO
    # estimator (guide-side enumeration): no core solver involved. alpha = 1, counting prior:
    #   log p(O)  = log(e^0.5 + 0.1 e^10 + 0.9 e^-1)       (test_pyro_model)
    #   max ELBO  = log(e^0.5 + e^(0.1*10 - 0.9*1)) = log(e^0.5 + e^0.1)
    # (soft VI compares the safe 0.5 with the gamble's *expected* reward 0.1). The gap is the
    # optimism of exact inference: it assumes it can choose to win.
    mdp = lottery()
    log_z = pyro_log_evidence(mdp, 1.0).item()
    fit = fit_policy_svi(mdp, 1.0, estimator="enum", progress=False, tol=1e-12, steps=2000)
    pyro_elbo = fit.elbo_trace[-1].item()                        # Pyro's TraceEnum_ELBO value
    max_elbo = math.log(math.exp(0.5) + math.exp(0.1))
    assert abs(log_z - math.log(math.exp(0.5) + 0.1 * math.exp(10) + 0.9 * math.exp(-1))) <= 1e-12
    assert abs(pyro_elbo - max_elbo) <= 1e-6
    assert log_z - pyro_elbo > 6.6                               # 7.698 - 1.013 = 6.685
    # and the fitted policy is soft VI's: q(safe) = e^0.5 / (e^0.5 + e^0.1)
    assert abs(fit.policy[0, 0, 0].item() - math.exp(0.5) / (math.exp(0.5) + math.exp(0.1))) <= 1e-3


def test_sampled_estimator_improves_policy():
    mdp = chain(4, horizon=4, slip=0.1)
    start = cai.elbo(mdp, torch.full((4, 4, 2), 0.5, dtype=torch.float64), 0.5).item()
    best = cai.soft_value_iteration(mdp, 0.5).max_elbo.item()
    fit = fit_policy_svi(mdp, 0.5, estimator="sample", num_particles=32, steps=30, lr=0.1, progress=False)
    assert fit.method == "svi/tabular/sample" and fit.steps == 30 and not fit.converged
    # 30 noisy steps close at least half of the gap between the uniform policy and the optimum
    # (seeds 0-2 close 90-94% of it; a broken score-function estimator closes none)
    assert fit.elbo - start >= 0.5 * (best - start)


def test_seed_reproducibility_and_rng_isolation():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    state = torch.get_rng_state()
    a = fit_policy_svi(mdp, guide="amortized", steps=30, tol=None, progress=False, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = fit_policy_svi(mdp, guide="amortized", steps=30, tol=None, progress=False, seed=3)
    c = fit_policy_svi(mdp, guide="amortized", steps=30, tol=None, progress=False, seed=4)
    assert torch.equal(a.policy, b.policy) and torch.equal(a.elbo_trace, b.elbo_trace)
    assert not torch.equal(a.policy, c.policy)
    torch.set_num_threads(2)                                     # fits run on 1 thread, then restore
    fit_policy_closed_form(mdp, steps=3, progress=False)
    assert torch.get_num_threads() == 2
    s1 = fit_policy_svi(mdp, estimator="sample", num_particles=16, steps=5, progress=False, seed=1)
    assert torch.get_num_threads() == 2
    s2 = fit_policy_svi(mdp, estimator="sample", num_particles=16, steps=5, progress=False, seed=1)
    assert torch.equal(s1.elbo_trace, s2.elbo_trace)


def test_guide_object_trains_in_place_and_callback_stops():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    model = TrajectoryModel(mdp, 1.0)
    guide = TabularPolicyGuide(model)
    calls = []

    def cb(step, value, policy):
        calls.append((step, value, policy.shape))
        return step >= 20

    fit = fit_policy_svi(model, guide=guide, tol=None, callback=cb, callback_every=10, progress=True)
    assert fit.steps == 20 and fit.converged and [c[0] for c in calls] == [10, 20]
    assert calls[0][2] == (3, 4, 2)
    assert torch.allclose(guide.policy(), fit.policy)            # the guide kept its parameters
    more = fit_policy_svi(model, guide=guide, steps=5, tol=None, progress=False)
    assert more.elbo_trace[0] >= fit.elbo_trace[-1] - 1e-12


def test_forbidden_actions_get_no_mass_and_finite_gradients():
    mdp0 = random_mdp(4, 3, 2, seed=1, horizon=3)
    r = mdp0.rewards.clone()
    r[1, 0] = -math.inf
    mdp = mdp0.replace(rewards=r)
    for fit in (fit_policy_svi(mdp, steps=200, progress=False),
                fit_policy_closed_form(mdp, steps=200, progress=False)):
        assert bool((fit.policy[:, 1, 0] == 0).all())
        assert math.isfinite(fit.elbo) and bool(torch.isfinite(fit.elbo_trace).all())
        assert cai.soft_value_iteration(mdp, 1.0).max_elbo.item() - fit.elbo <= 1e-3


def test_user_features_time_independent_guide():
    mdp = random_mdp(4, 2, 2, seed=0, horizon=3)
    model = TrajectoryModel(mdp, 1.0)
    g = AmortizedPolicyGuide(model, features=torch.randn(4, 3, dtype=torch.float64), hidden=8,
                             time_conditioned=False)
    p = g.policy()
    assert p.shape == (3, 4, 2) and torch.equal(p[0], p[2])
    assert torch.allclose(p, torch.full_like(p, 0.5))            # zero output layer: uniform start


# ---------------------------------------------------------------------------------------------
# bad input

def test_fit_rejects_bad_input():
    mdp = random_mdp(3, 2, 2, seed=0, horizon=3)
    with pytest.raises(ValueError, match="estimator"):
        fit_policy_svi(mdp, estimator="magic")
    with pytest.raises(ValueError, match="guide"):
        fit_policy_svi(mdp, guide="mlp")
    with pytest.raises(ValueError, match="steps"):
        fit_policy_svi(mdp, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_policy_closed_form(mdp, lr=-1.0)
    with pytest.raises(ValueError, match="num_particles"):
        fit_policy_svi(mdp, estimator="sample", num_particles=0)
    with pytest.raises(ValueError, match="enum"):
        fit_policy_svi(gridworld(square_layout(5), horizon=10), estimator="enum")
    other = TabularPolicyGuide(TrajectoryModel(random_mdp(3, 2, 2, seed=1, horizon=3)))
    with pytest.raises(ValueError, match="different MDP"):
        fit_policy_svi(mdp, guide=other)
    with pytest.raises(ValueError, match="alpha"):
        fit_policy_svi(mdp, alpha=-1.0)
    with pytest.raises(ValueError, match="init"):
        TabularPolicyGuide(TrajectoryModel(mdp), init=torch.ones(3, 3, 2))
    with pytest.raises(ValueError, match="features"):
        AmortizedPolicyGuide(TrajectoryModel(mdp), features=torch.ones(5, 2))
    with pytest.raises(ValueError, match="policy"):
        guide_elbo(mdp, torch.ones(3, 3, 2), 1.0)
