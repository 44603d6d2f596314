"""MaxEnt IRL's inner loop with the fixed parts built once (issue 14, item 3): entry by entry
against the general route (soft value iteration + policy marginals), and L-BFGS."""
import math

import numpy as np
import pytest
import torch

import cai
from cai.algorithms.tabular import irl as irl_mod
from cai.algorithms.tabular.irl import MaxEntIRL, validate_demonstrations
from cai.worlds.builders import gridworld, random_mdp


def _problem(kind):
    if kind == "grid":          # sparse, forbidden actions at the goal and exit, terminal rewards 0
        mdp = gridworld("S...\n.#..\n...G", horizon=7, slip=0.1, sparse=True)
        phi = torch.randn(mdp.n_states, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    else:                       # dense, a discount, state-action features, terminal rewards
        mdp = random_mdp(6, 3, 3, seed=2, horizon=5, discount=0.9)
        mdp = mdp.replace(terminal_rewards=torch.linspace(-1, 1, 6, dtype=torch.float64))
        phi = torch.randn(6, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    true_w = torch.randn(phi.shape[-1], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r = phi @ true_w if phi.dim() == 3 else (phi @ true_w).unsqueeze(1).expand(-1, mdp.n_actions)
    true = mdp.replace(rewards=torch.where(mdp.allowed, r, torch.full_like(r, -math.inf)))
    demos = cai.sample_trajectories(true, cai.soft_value_iteration(true, 0.8).policy, 30,
                                    generator=torch.Generator().manual_seed(4))
    return mdp, phi, demos


@pytest.mark.parametrize("kind", ["grid", "random"])
@pytest.mark.parametrize("prior", [False, True])
@pytest.mark.parametrize("initial", ["mdp", "empirical"])
def test_sweep_equals_the_general_route_entry_by_entry(kind, prior, initial):
    mdp, phi, demos = _problem(kind)
    rho = None
    if prior:
        rho = torch.rand(mdp.n_states, mdp.n_actions, generator=torch.Generator().manual_seed(5), dtype=torch.float64) + 0.1
        rho = rho / rho.sum(-1, keepdim=True)
    irl = MaxEntIRL(mdp, phi, alpha=0.8, action_prior=rho, initial=initial)
    assert irl_mod._CausalSweep.applies(irl)
    d = validate_demonstrations(demos, mdp)
    q0 = irl._initial(d)
    sweep = irl_mod._CausalSweep(irl, q0, d)
    for seed in range(3):
        w = 2 * torch.randn(phi.shape[-1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        vis, ll, v0 = sweep(w)
        r = irl.reward_from_weights(w)
        mdp_r, sol = irl.solve(r)
        ref = irl.expected_visitation(mdp_r, sol, q0).numpy()
        np.testing.assert_allclose(vis, ref, atol=1e-12, rtol=0)
        assert ll == pytest.approx(float(irl._log_likelihood(d, r, sol)), abs=1e-12)
        assert v0 == pytest.approx(float((q0 * sol.V0).sum()), abs=1e-12)
        np.testing.assert_allclose(np.exp(sweep.log_pi), sol.policy.numpy(), atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_fit_with_and_without_the_sweep_agree(kind, monkeypatch):
    mdp, phi, demos = _problem(kind)
    fast = MaxEntIRL(mdp, phi, alpha=0.8, n_iter=40).fit(demos)
    monkeypatch.setattr(irl_mod._CausalSweep, "applies", classmethod(lambda cls, irl: False))
    slow = MaxEntIRL(mdp, phi, alpha=0.8, n_iter=40).fit(demos)
    torch.testing.assert_close(fast.weights_, slow.weights_, atol=1e-10, rtol=0)
    assert [h.iteration for h in fast.history_] == [h.iteration for h in slow.history_]
    np.testing.assert_allclose([h.log_likelihood for h in fast.history_], [h.log_likelihood for h in slow.history_],
                               atol=1e-10)
    np.testing.assert_allclose([h.gap for h in fast.history_], [h.gap for h in slow.history_], atol=1e-10)
    torch.testing.assert_close(fast.visitation_, slow.visitation_, atol=1e-12, rtol=0)
    torch.testing.assert_close(fast.solution_.V, slow.solution_.V, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_lbfgs_reaches_the_tolerance_and_the_optimum_adam_approaches(kind):
    """The objective is concave in the weights: L-BFGS stops at a gradient <= tol, where the
    weights agree with a long Adam run's (both converge to the same optimum), and its reported
    gap is the true gradient of the returned weights (recomputed through the general route)."""
    mdp, phi, demos = _problem(kind)
    lb = MaxEntIRL(mdp, phi, alpha=0.8, optimizer="lbfgs", tol=1e-8, n_iter=500, initial="empirical").fit(demos)
    g = lb.gradient(demos, lb.weights_)
    assert float(g.abs().max()) <= 1e-8
    assert lb.n_iter_ < 100
    adam = MaxEntIRL(mdp, phi, alpha=0.8, lr=0.05, tol=1e-7, n_iter=20_000, initial="empirical").fit(demos)
    assert adam.history_[-1].gap <= 1e-7
    torch.testing.assert_close(lb.weights_, adam.weights_, atol=1e-5, rtol=0)
    assert float(lb.objective(demos, weights=lb.weights_)) >= float(adam.objective(demos, weights=adam.weights_)) - 1e-12


def test_lbfgs_bad_input_and_general_route():
    mdp, phi, demos = _problem("random")
    with pytest.raises(ValueError, match="lbfgs"):
        MaxEntIRL(mdp, phi, optimizer="lbfgs", reward_model=torch.nn.Linear(4, 1).double())
    with pytest.raises(ValueError, match="optimizer"):
        MaxEntIRL(mdp, phi, optimizer="bfgs")
    # the exact variant has no sweep: L-BFGS runs on the general route
    ex = MaxEntIRL(mdp, phi, alpha=0.8, variant="exact", optimizer="lbfgs", tol=1e-7, initial="empirical").fit(demos)
    assert not irl_mod._CausalSweep.applies(ex)
    assert float(ex.gradient(demos, ex.weights_).abs().max()) <= 1e-7
