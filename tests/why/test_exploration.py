"""Exploration on a deceptive chain: first-hit sample counts and the censoring-aware intervals."""
import math

import numpy as np
import pytest
import scipy.stats
import torch

import cai
import cai.worlds
from cai.why import exploration as ex


def _three_state():
    # start in state 1; acting in state 2 is the goal; no small reward, so before the first hit
    # every target of Q-learning is 0 and the hard Q stays 0
    return cai.worlds.chain(3, small_reward=0.0, horizon=2)


def _episodes(times):
    t = np.asarray(times)
    assert np.all(t % 2 == 0)          # a hit is always the second sample of an episode
    return t // 2


def test_epsilon_greedy_first_hit_is_geometric_on_a_three_state_chain():
    # by hand: Q = 0 until the hit, ties split evenly, so each episode goes right first with
    # probability 1/2 (whatever epsilon) and hits at its sample 2: N = 2K, K ~ Geometric(1/2)
    mdp = _three_state()
    k = _episodes([ex.first_hit_samples(mdp, "epsilon_greedy", budget=10_000, epsilon=0.3, seed=s) for s in range(400)])
    assert abs(k.mean() - 2.0) < 4 * math.sqrt(2.0 / 400)               # mean 1/p, variance (1-p)/p^2
    assert abs((k == 1).mean() - 0.5) < 4 * math.sqrt(0.25 / 400)


def test_soft_q_first_hit_matches_the_hand_computed_distribution():
    # by hand (any alpha, step eta): Q_1 = 0 until the hit, so V_1(0) = alpha log 2; after j
    # episodes that went left, Q_0(1, left) = alpha log 2 (1 - (1 - eta)^j) and Q_0(1, right) = 0,
    # so the next episode goes right with p_j = 1 / (1 + 2^(1 - (1 - eta)^j)). With eta = 1:
    # p_0 = 1/2, then 1/3: K = 1 + B G, B ~ Bernoulli(1/2), G ~ Geometric(1/3), E K = 2.5 and
    # Var K = E[B G^2] - (E[B G])^2 = 15/2 - 9/4 = 5.25 (uniform exploration would give E K = 2)
    mdp = _three_state()
    eta, n = 1.0, 1000
    p = [1.0 / (1.0 + 2.0 ** (1 - (1 - eta) ** j)) for j in range(300)]
    pmf = np.array([np.prod([1 - q for q in p[:j]]) * p[j] for j in range(300)])   # P(K = j + 1)
    mean = float((pmf * np.arange(1, 301)).sum())
    var = float((pmf * np.arange(1, 301) ** 2).sum()) - mean ** 2
    assert mean == pytest.approx(2.5, abs=1e-12) and var == pytest.approx(5.25, abs=1e-9)
    k = _episodes([ex.first_hit_samples(mdp, "soft_q", budget=10_000, alpha=0.7, step_size=eta, seed=s)
                   for s in range(n)])
    assert abs(k.mean() - mean) < 4 * math.sqrt(var / n)                  # 0.29; uniform is 0.5 away
    for j in (0, 1, 2):
        assert abs((k == j + 1).mean() - pmf[j]) < 4 * math.sqrt(pmf[j] * (1 - pmf[j]) / n)


def test_first_hit_is_deterministic_under_a_seed_and_censored_at_the_budget():
    mdp = cai.worlds.chain(7, horizon=12)
    for m in ex.METHODS:
        a = [ex.first_hit_samples(mdp, m, budget=300, seed=s) for s in range(6)]
        assert a == [ex.first_hit_samples(mdp, m, budget=300, seed=s) for s in range(6)]
        assert len(set(a)) > 1
    # the far end of a 7-state chain is 5 moves from the start: no hit within 5 samples
    assert ex.first_hit_samples(mdp, "soft_q", budget=5, seed=0) is None
    r = ex.first_hit_times(mdp, "epsilon_greedy", budget=5, seeds=range(4), n_boot=50)
    assert r.fraction_found == 0 and r.times.tolist() == [5] * 4 and r.median == math.inf
    assert r.median_interval == (math.inf, math.inf) and r.fraction_interval[0] == 0


def test_stop_at_and_greedy_behaviour_in_the_learners():
    mdp = _three_state()
    with pytest.raises(ValueError, match="stop_at"):
        cai.q_learning(mdp, n_samples=10, stop_at=np.ones((3, 2)))
    with pytest.raises(ValueError, match="method"):
        ex.first_hit_samples(mdp, "ucb", budget=10)
    with pytest.raises(ValueError, match="goal"):
        ex.first_hit_samples(mdp, "soft_q", budget=10, goal=[3])
    with pytest.raises(ValueError, match="seeds: expected an integer"):   # before any run (was int()'s raw error)
        ex.first_hit_times(mdp, "soft_q", budget=10, seeds=["a"])
    with pytest.raises(ValueError, match="level"):
        ex.first_hit_times(mdp, "soft_q", budget=10, seeds=[0], level=95)
    assert ex.first_hit_samples(mdp, "soft_q", budget=30, seed=np.int64(2)) == \
        ex.first_hit_samples(mdp, "soft_q", budget=30, seed=2)
    # greedy with epsilon = 0 after Q is set: only the maximiser is ever tried (the start is state 1)
    g = torch.Generator().manual_seed(0)
    res = cai.q_learning(cai.worlds.chain(3, small_reward=1.0, large_reward=0.0, horizon=2), n_samples=400,
                         n_envs=4, behaviour="greedy", epsilon=0.0, step_size=1.0, generator=g)
    first = res.visits[0, 1]
    # the first step ties (both 0) until 'left' has paid; afterwards only 'left' is taken
    assert first[0] > 150 and first[1] < 20


def test_wilson_interval_against_scipy_and_its_closed_form_at_zero():
    for k, n in [(0, 10), (3, 10), (17, 50), (50, 50), (1, 1)]:
        lo, hi = ex.wilson_interval(k, n)
        ref = scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)
    z = scipy.stats.norm.ppf(0.975)
    assert ex.wilson_interval(0, 20)[1] == pytest.approx(z * z / (20 + z * z), abs=1e-12)
    # exact coverage at p = 0.3, n = 60 (binomial sum): close to 95%
    p, n = 0.3, 60
    cover = sum(scipy.stats.binom.pmf(k, n, p) for k in range(n + 1)
                if ex.wilson_interval(k, n)[0] <= p <= ex.wilson_interval(k, n)[1])
    assert 0.92 < cover < 0.97
    with pytest.raises(ValueError, match="k"):
        ex.wilson_interval(5, 4)


def test_kaplan_meier_by_hand_and_without_censoring():
    # by hand: t=1: 5 at risk, 1 hit -> 4/5; t=2: 4 at risk (one censored there), 1 hit -> 0.6;
    # t=3 censored only; t=4: 1 at risk, 1 hit -> 0
    ev, s = ex.kaplan_meier([1, 2, 2, 3, 4], np.array([True, True, False, False, True]))
    assert ev.tolist() == [1, 2, 4]
    np.testing.assert_allclose(s, [0.8, 0.6, 0.0], atol=1e-15)
    assert ex.censored_median([1, 2, 2, 3, 4], np.array([True, True, False, False, True])) == 4
    x = np.random.default_rng(0).geometric(0.2, size=300)
    ev, s = ex.kaplan_meier(x, np.ones(300, bool))
    np.testing.assert_allclose(s, [(x > e).mean() for e in ev], atol=1e-12)
    assert ex.censored_median(x, np.ones(300, bool)) == np.quantile(x, 0.5, method="inverted_cdf")
    with pytest.raises(ValueError, match="found"):
        ex.kaplan_meier([1, 2], [1, 0])


def test_bootstrap_median_interval_covers_a_known_median():
    # Geometric(0.1) on {1, 2, ...}: P(X <= k) = 1 - 0.9^k, median = ceil(log 2 / -log 0.9) = 7;
    # censored at 30 (P(X > 30) = 0.04), which leaves the median identifiable
    p, budget, true_median = 0.1, 30, math.ceil(math.log(2) / -math.log(0.9))
    assert true_median == 7
    rng = np.random.default_rng(1)
    covered = 0
    for rep in range(40):
        x = rng.geometric(p, size=150)
        found = x <= budget
        lo, hi = ex.bootstrap_median_interval(np.minimum(x, budget), found, n_boot=300, seed=rep)
        assert lo <= hi
        covered += lo <= true_median <= hi
    # nominal 95% (discreteness makes it conservative); P(Binomial(40, 0.95) <= 32) < 0.01
    assert covered >= 33
