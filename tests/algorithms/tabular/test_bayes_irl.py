"""Bayesian IRL: the posterior against the MaxEnt IRL estimate, nominal coverage, unidentified directions."""
import math

import pytest
import torch

import cai
from cai.algorithms.tabular.bayes_irl import BayesianIRL
from cai.algorithms.tabular.irl import MaxEntIRL
from cai.worlds.builders import random_mdp

W_TRUE = torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)


def _problem(n, seed=0, phi=None, w=W_TRUE):
    mdp = random_mdp(5, 3, 2, seed=1, horizon=4)
    if phi is None:
        phi = torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sol = cai.soft_value_iteration(mdp.replace(rewards=phi @ w), 1.0)
    demos = cai.sample_trajectories(mdp, sol.policy, n, generator=torch.Generator().manual_seed(100 + seed))
    return mdp, phi, demos


def test_laplace_posterior_concentrates_on_the_maxent_estimate():
    # many demonstrations: the prior barely matters, so the posterior mode is MaxEnt IRL's
    # estimate and the sd shrinks like 1/sqrt(n). The exact variant's objective *is* its
    # log-likelihood (initial="empirical"), so the two agree to a small fraction of an sd (the
    # prior's pull, sd^2 / 10^2 per unit of w, is ~1e-4 sd); the causal variant's objective differs
    # from the causal likelihood by a zero-mean term under stochastic dynamics: within a few sd.
    mdp, phi, demos = _problem(400)
    post = BayesianIRL(mdp, phi, prior_scale=10.0, method="laplace", variant="exact").fit(demos)
    mle = MaxEntIRL(mdp, phi, variant="exact", initial="empirical", n_iter=3000, lr=0.05, tol=1e-8).fit(demos).weights_
    assert float(((post.mean_ - mle) / post.std_).abs().max()) < 0.05
    causal = BayesianIRL(mdp, phi, prior_scale=10.0, method="laplace").fit(demos)
    mle_c = MaxEntIRL(mdp, phi, initial="empirical", n_iter=3000, lr=0.05, tol=1e-8).fit(demos).weights_
    assert float(((causal.mean_ - mle_c) / causal.std_).abs().max()) < 2.0      # measured 0.37
    small = BayesianIRL(mdp, phi, prior_scale=10.0, method="laplace", variant="exact").fit(
        cai.Trajectories(demos.states[:25], demos.actions[:25]))
    ratio = post.std_ / small.std_                                  # sqrt(25/400) = 0.25 expected
    assert bool((ratio > 0.15).all()) and bool((ratio < 0.4).all()), ratio
    # the MAP solves grad log joint = 0 (checked against autograd of cai's exact likelihood)
    w = post.map_.clone().requires_grad_(True)
    g, = torch.autograd.grad(post.log_joint(demos, w), w)
    assert float(g.abs().max()) < 1e-6


def test_nuts_smoke():
    mdp, phi, demos = _problem(50)
    nuts = BayesianIRL(mdp, phi, method="nuts", num_samples=10, warmup_steps=10, seed=1).fit(demos)
    assert nuts.samples_.shape == (10, 3) and bool(torch.isfinite(nuts.samples_).all())
    again = BayesianIRL(mdp, phi, method="nuts", num_samples=10, warmup_steps=10, seed=1).fit(demos)
    torch.testing.assert_close(nuts.samples_, again.samples_, atol=0, rtol=0)        # the seed fixes the chain


@pytest.mark.slow
def test_nuts_agrees_with_laplace():
    # an independent route to the same posterior: NUTS samples (150 after 100 warm-up steps);
    # with 300 demonstrations the posterior is close to Gaussian, so the mean agrees with the
    # Laplace mean within a fraction of an sd (Monte Carlo error ~ sd/sqrt(ESS)) and the sds within 30%
    mdp, phi, demos = _problem(300)
    lap = BayesianIRL(mdp, phi, prior_scale=3.0, method="laplace").fit(demos)
    nuts = BayesianIRL(mdp, phi, prior_scale=3.0, method="nuts", num_samples=150, warmup_steps=100, seed=0).fit(demos)
    assert float(((nuts.mean_ - lap.mean_) / lap.std_).abs().max()) < 0.5
    assert bool(((nuts.std_ / lap.std_ - 1).abs() < 0.3).all()), (nuts.std_, lap.std_)
    lo, hi = nuts.credible_interval(0.9)
    assert bool((lo < nuts.mean_).all() and (nuts.mean_ < hi).all())


def test_svi_agrees_with_laplace():
    mdp, phi, demos = _problem(300)
    lap = BayesianIRL(mdp, phi, prior_scale=3.0, method="laplace").fit(demos)
    # 300 SVI steps (the fast alternative): the guide's mean is still moving by a fraction of an
    # sd per hundred steps (measured 0.5-1.3 sd from the Laplace mean, sds within 15%); a wrong
    # likelihood scale or sign would put it many sds away
    svi = BayesianIRL(mdp, phi, prior_scale=3.0, method="svi", svi_steps=300, lr=0.05, seed=0).fit(demos)
    assert float(((svi.mean_ - lap.mean_) / lap.std_).abs().max()) < 2.5
    assert bool(((svi.std_ / lap.std_ - 1).abs() < 0.5).all()), (svi.std_, lap.std_)
    assert svi.history_[-1] < svi.history_[0]


def test_credible_intervals_cover_at_the_nominal_rate():
    # 40 synthetic datasets (60 demonstrations each) from the same true weights; 90% Laplace
    # intervals per weight: 120 intervals, of which Binomial(120, 0.9) are expected to cover
    # (mean 108, sd 3.3); accept [96, 118], a band of about +-3.5 sd
    covered = 0
    for k in range(40):
        mdp, phi, demos = _problem(60, seed=k)
        lo, hi = BayesianIRL(mdp, phi, prior_scale=3.0, method="laplace").fit(demos).credible_interval(0.9)
        covered += int(((lo <= W_TRUE) & (hi >= W_TRUE)).sum())
    assert 96 <= covered <= 118, covered


def test_unidentified_directions_keep_the_prior_width():
    # a constant feature adds the same reward to every action: the causal likelihood ignores it.
    # Two identical features: only their sum is identified, their difference keeps the prior width.
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 3, 1, generator=g, dtype=torch.float64)
    phi = torch.cat([base, torch.ones(5, 3, 1, dtype=torch.float64), base], -1)      # (1, const, copy of 1)
    mdp, phi, demos = _problem(200, phi=phi, w=torch.tensor([0.4, 0.0, 0.4], dtype=torch.float64))
    scale = 2.0
    lap = BayesianIRL(mdp, phi, prior_scale=scale, method="laplace").fit(demos)
    assert float(lap.std_[1]) == pytest.approx(scale, rel=1e-6)
    e = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64) / math.sqrt(2)
    assert float(e @ lap.cov_ @ e) ** 0.5 == pytest.approx(scale, rel=1e-6)
    s = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    assert float(s @ lap.cov_ @ s) ** 0.5 < 0.2 * scale                 # the sum is well determined


@pytest.mark.slow
def test_unidentified_directions_keep_the_prior_width_nuts():
    # the same with NUTS (slow: the posterior is 40x wider along the unidentified directions, so
    # trajectories are long; ~5 minutes on a loaded 2-core machine)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 3, 1, generator=g, dtype=torch.float64)
    phi = torch.cat([base, torch.ones(5, 3, 1, dtype=torch.float64), base], -1)
    mdp, phi, demos = _problem(200, phi=phi, w=torch.tensor([0.4, 0.0, 0.4], dtype=torch.float64))
    scale = 2.0
    e = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64) / math.sqrt(2)
    nuts = BayesianIRL(mdp, phi, prior_scale=scale, method="nuts", num_samples=150, warmup_steps=100).fit(demos)
    # sample sd of ~150 correlated draws: within 35% of the prior's
    assert float(nuts.std_[1]) == pytest.approx(scale, rel=0.35)
    assert float((nuts.samples_ @ e).std()) == pytest.approx(scale, rel=0.35)


def test_log_likelihood_many_is_the_loop_of_single_likelihoods():
    sets = [_problem(10 + 5 * k, seed=k)[2] for k in range(3)]
    mdp, phi, _ = _problem(5)
    b = BayesianIRL(mdp, phi, variant="exact")
    w = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ref = torch.stack([b.log_likelihood(d, wk) for d, wk in zip(sets, w)])
    torch.testing.assert_close(b.log_likelihood_many(sets, w), ref, atol=1e-10, rtol=0)


def test_bad_input():
    mdp, phi, demos = _problem(5)
    with pytest.raises(ValueError, match="method"):
        BayesianIRL(mdp, phi, method="hmc")
    with pytest.raises(ValueError, match="prior_scale"):
        BayesianIRL(mdp, phi, prior_scale=0.0)
    with pytest.raises(ValueError, match="prior_loc"):
        BayesianIRL(mdp, phi, prior_loc=torch.zeros(5))
    with pytest.raises(ValueError, match="num_samples"):
        BayesianIRL(mdp, phi, num_samples=0)
    with pytest.raises(ValueError, match="alpha"):
        BayesianIRL(mdp, phi, alpha=-1.0)
    with pytest.raises(ValueError, match="actions"):
        BayesianIRL(mdp, phi, method="laplace").fit((torch.zeros(1, 5, dtype=torch.long), torch.full((1, 4), 7)))
    with pytest.raises(AttributeError, match="call fit"):
        BayesianIRL(mdp, phi).credible_interval()
    with pytest.raises(ValueError, match="level"):
        BayesianIRL(mdp, phi, method="laplace").fit(demos).credible_interval(1.5)
