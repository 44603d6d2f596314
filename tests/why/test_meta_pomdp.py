"""The goal-reaching meta-POMDP: expected episodes, the sqrt-p optimum, and MaxEnt RL reaching it."""
import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

import cai
import cai.worlds
from cai.mdp.tabular import TabularMDP, uniform_action_prior
from cai.why import (
    adaptive_episodes,
    expected_episodes,
    goal_reach,
    maxent_goal_weights,
    maxent_meta_policy,
    meta_reward,
    optimal_reach,
    simulate_episodes,
)

P4 = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=torch.float64)
P5 = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=torch.float64)


def _series(p, q, n_terms=4000):
    """sum_g p(g) sum_{n>=1} n P(first success at episode n), truncated; the tail is below 1e-12 here."""
    n = np.arange(1, n_terms + 1)
    return sum(pg * float(np.sum(n * (1 - qg) ** (n - 1) * qg)) for pg, qg in zip(p, q))


def test_expected_episodes_against_the_truncated_series():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = rng.dirichlet(np.ones(4))
        q = rng.dirichlet(np.ones(4)) * 0.8 + 0.05          # q(g) >= 0.05: the series tail is negligible
        assert expected_episodes(p, q).item() == pytest.approx(_series(p, q), rel=1e-11)
    # batched, and +inf exactly when a goal of positive prior is never reached
    out = expected_episodes(P4, torch.stack([P4, torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)]))
    assert out.shape == (2,) and out[0].item() == pytest.approx(4.0, abs=1e-14) and out[1].item() == math.inf
    assert expected_episodes([1.0, 0.0], [1.0, 0.0]).item() == 1.0   # a goal that never occurs costs nothing


def test_optimum_against_a_numerical_minimiser_over_the_simplex():
    rng = np.random.default_rng(1)
    for K in (2, 3, 6):
        p = rng.dirichlet(np.ones(K))
        res = scipy.optimize.minimize(lambda q, p=p: float(np.sum(p / q)), np.full(K, 1.0 / K), method="SLSQP",
                                      bounds=[(1e-9, 1.0)] * K,
                                      constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1.0}],
                                      options={"ftol": 1e-15, "maxiter": 1000})
        assert res.success
        qs = optimal_reach(p)
        np.testing.assert_allclose(qs.numpy(), res.x, atol=1e-5)
        assert expected_episodes(p, qs).item() == pytest.approx(res.fun, rel=1e-9)
        assert expected_episodes(p, qs).item() == pytest.approx(np.sqrt(p).sum() ** 2, rel=1e-13)
        # no point of the simplex does better
        others = torch.tensor(rng.dirichlet(np.ones(K), size=500))
        assert bool((expected_episodes(p, others) >= expected_episodes(p, qs) - 1e-12).all())


@pytest.mark.parametrize("alpha,scale", [(1.0, 0.5), (2.0, 1.0), (0.3, 0.15)])
def test_maxent_on_the_bandit_is_the_optimum(alpha, scale):
    mdp = cai.worlds.bandit(4)
    goals = mdp.metadata["goals"]
    sol = maxent_meta_policy(mdp, goals, P4, alpha, scale=scale)
    torch.testing.assert_close(sol.reach, P4.sqrt() / P4.sqrt().sum(), atol=1e-12, rtol=0)
    torch.testing.assert_close(sol.reach, sol.optimal_reach, atol=1e-12, rtol=0)
    assert sol.episodes.item() == pytest.approx((P4.sqrt().sum() ** 2).item(), abs=1e-10)
    # the reward really is (scale) log p: soft VI's first-step policy is p^(scale/alpha) normalised
    np.testing.assert_allclose(sol.mdp.terminal_rewards[goals].numpy(), scale * np.log(P4.numpy()) - alpha * np.log(0.25),
                               atol=1e-12)


def test_probability_matching_and_the_hard_policy_are_worse():
    mdp = cai.worlds.bandit(4)
    goals = mdp.metadata["goals"]
    best = maxent_meta_policy(mdp, goals, P4)
    naive = maxent_meta_policy(mdp, goals, P4, 1.0, scale=1.0)       # reward log p at alpha 1: q = p
    torch.testing.assert_close(naive.reach, P4, atol=1e-12, rtol=0)
    assert naive.episodes.item() == pytest.approx(4.0, abs=1e-12)   # sum p/p = K
    assert naive.episodes.item() > best.episodes.item() + 0.5       # 4 against 3.292
    hard = cai.value_iteration(best.mdp).policy
    q_hard = goal_reach(mdp, hard, goals)
    torch.testing.assert_close(q_hard, torch.tensor([1.0, 0, 0, 0], dtype=torch.float64), atol=0, rtol=0)
    assert expected_episodes(P4, q_hard).item() == math.inf
    # uniform prior: Cauchy-Schwarz is tight, probability matching is optimal too
    u = torch.full((4,), 0.25, dtype=torch.float64)
    assert maxent_meta_policy(mdp, goals, u, scale=1.0).episodes.item() == pytest.approx(4.0, abs=1e-12)


def test_the_temperature_family_has_its_minimum_at_alpha_2():
    mdp = cai.worlds.bandit(4)
    goals = mdp.metadata["goals"]
    alphas = np.array([0.5, 1.0, 1.5, 1.9, 2.0, 2.1, 3.0, 8.0])
    eps = [maxent_meta_policy(mdp, goals, P4, a, scale=1.0).episodes.item() for a in alphas]
    p = P4.numpy()
    closed = [np.sum(p ** (1 - 1 / a)) * np.sum(p ** (1 / a)) for a in alphas]  # sum p / (p^(1/a) / Z)
    np.testing.assert_allclose(eps, closed, rtol=1e-12)
    assert int(np.argmin(eps)) == 4 and eps[4] == pytest.approx(np.sqrt(p).sum() ** 2, rel=1e-12)


def _enumerate_reach(mdp, policy, goals):
    """P(s_T = g) by summing over every action sequence (deterministic dynamics, one start)."""
    P = mdp.dense_transitions().numpy()
    pi = policy.numpy()
    T, A = mdp.horizon, mdp.n_actions
    out = np.zeros(len(goals))
    for seq in itertools.product(range(A), repeat=T):
        s, w = int(np.argmax(mdp.initial.numpy())), 1.0
        for t, a in enumerate(seq):
            w *= pi[t, s, a]
            s = int(np.argmax(P[s, a]))
        if s in goals:
            out[goals.index(s)] += w
    return out


def test_lattice_path_weights_are_binomial_and_the_correction_reaches_the_optimum():
    T = 4
    mdp = cai.worlds.goal_lattice(T)
    goals = mdp.metadata["goals"]
    binom = np.array([math.comb(T, i) for i in range(T + 1)], dtype=np.float64)
    np.testing.assert_allclose(maxent_goal_weights(mdp, goals).numpy(), binom / 2 ** T, atol=1e-14)
    sol = maxent_meta_policy(mdp, goals, P5)
    np.testing.assert_allclose(_enumerate_reach(mdp, sol.policy, goals), sol.reach.numpy(), atol=1e-14)
    torch.testing.assert_close(sol.reach, P5.sqrt() / P5.sqrt().sum(), atol=1e-12, rtol=0)
    assert sol.episodes.item() == pytest.approx((P5.sqrt().sum() ** 2).item(), abs=1e-10)
    # without the correction: q ∝ binomial(T, i) sqrt(p), visibly worse
    raw = maxent_meta_policy(mdp, goals, P5, correct_paths=False)
    want = binom * np.sqrt(P5.numpy())
    np.testing.assert_allclose(raw.reach.numpy(), want / want.sum(), atol=1e-12)
    assert raw.episodes.item() > 1.5 * sol.episodes.item()


def _fork():
    """Root: action 0 -> leaf A; action 1 -> node B with three allowed actions -> leaves C, D, E. Horizon 2."""
    S, A = 6, 3                                  # root, A, B, C, D, E
    P = np.zeros((S, A, S))
    r = np.zeros((S, A))
    P[0, 0, 1] = P[0, 1, 2] = P[0, 2, 1] = 1.0
    r[0, 2] = -np.inf
    P[2, 0, 3] = P[2, 1, 4] = P[2, 2, 5] = 1.0
    for s in (1, 3, 4, 5):
        P[s, :, s] = 1.0
        r[s, 1:] = -np.inf
    return TabularMDP(P, r, np.eye(S)[0], horizon=2)


def test_path_weights_depend_on_the_action_prior_by_hand():
    mdp = _fork()
    goals = [1, 3, 4, 5]
    # counting measure: one allowed action sequence per leaf; uniform prior: 1/2 then 1/3
    np.testing.assert_allclose(maxent_goal_weights(mdp, goals).numpy(), [0.25] * 4, atol=1e-14)
    np.testing.assert_allclose(maxent_goal_weights(mdp, goals, uniform_action_prior(mdp)).numpy(),
                               [0.5, 1 / 6, 1 / 6, 1 / 6], atol=1e-14)
    for prior in (None, uniform_action_prior(mdp)):
        sol = maxent_meta_policy(mdp, goals, P4, action_prior=prior)
        torch.testing.assert_close(sol.reach, sol.optimal_reach, atol=1e-12, rtol=0)
        np.testing.assert_allclose(_enumerate_reach(mdp, sol.policy, goals), sol.reach.numpy(), atol=1e-14)


@pytest.mark.parametrize("world", ["bandit", "lattice"])
def test_monte_carlo_repeated_episodes_agree_with_the_closed_form(world):
    mdp = cai.worlds.bandit(4) if world == "bandit" else cai.worlds.goal_lattice(3)
    goals = mdp.metadata["goals"]
    p = P4
    gen = torch.Generator().manual_seed(3)
    for scale in (0.5, 1.0):
        sol = maxent_meta_policy(mdp, goals, p, scale=scale)
        n = 3000
        c = simulate_episodes(mdp, sol.policy, goals, p, n, generator=gen)
        assert bool(torch.isfinite(c).all())
        se = c.std().item() / math.sqrt(n)
        assert abs(c.mean().item() - sol.episodes.item()) < 4 * se
        assert 0.02 < se < 0.2                                          # the check has teeth
    # the hard policy never finds the unlikely goals: censored runs
    hard = cai.value_iteration(sol.mdp).policy
    c = simulate_episodes(mdp, hard, goals, p, 200, generator=gen, max_episodes=30)
    assert bool(torch.isinf(c).any()) and bool((c[torch.isfinite(c)] == 1).all())


def test_adaptive_agent_against_every_search_order():
    rng = np.random.default_rng(2)
    for K in (2, 3, 5):
        p = rng.dirichlet(np.ones(K))
        best = min(sum((k + 1) * p[g] for k, g in enumerate(order)) for order in itertools.permutations(range(K)))
        assert adaptive_episodes(p).item() == pytest.approx(best, abs=1e-14)
        assert adaptive_episodes(p).item() <= np.sqrt(p).sum() ** 2 + 1e-12   # memory can only help


def test_bad_input():
    mdp = cai.worlds.bandit(3)
    goals = mdp.metadata["goals"]
    p = [0.5, 0.3, 0.2]
    with pytest.raises(ValueError, match="goal_prior"):
        expected_episodes([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="goal_prior"):
        optimal_reach([[0.5, 0.5]])
    with pytest.raises(ValueError, match="reach"):
        expected_episodes(p, [0.5, 0.5])
    with pytest.raises(ValueError, match="reach"):
        expected_episodes(p, [0.9, 0.9, 0.1])
    with pytest.raises(ValueError, match="goal_prior"):
        meta_reward(mdp, goals, [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="goal_prior"):
        meta_reward(mdp, goals, [0.5, 0.5])
    with pytest.raises(ValueError, match="goals"):
        meta_reward(mdp, [1, 2], [0.5, 0.5])               # episodes can end in arm 2, not a goal
    with pytest.raises(ValueError, match="goals"):
        meta_reward(mdp, [1, 1, 2], p)
    with pytest.raises(ValueError, match="goals"):
        meta_reward(mdp, [0, 1, 9], p)
    with pytest.raises(ValueError, match="alpha"):
        meta_reward(mdp, goals, p, 0.0)
    with pytest.raises(ValueError, match="scale"):
        meta_reward(mdp, goals, p, scale=-1.0)
    with pytest.raises(ValueError, match="deterministic"):
        noisy = cai.worlds.random_mdp(4, 2, 2, seed=0, horizon=2)
        maxent_goal_weights(noisy, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="discount"):
        maxent_goal_weights(mdp.replace(discount=0.9), goals)
    with pytest.raises(ValueError, match="start"):
        maxent_goal_weights(mdp.replace(initial=[0.5, 0.5, 0, 0]), goals)
    with pytest.raises(ValueError, match="horizon"):
        maxent_goal_weights(mdp.replace(horizon=None, discount=0.9), goals)
    with pytest.raises(TypeError, match="mdp"):
        goal_reach("bandit", [[1.0]], goals)
    with pytest.raises(ValueError, match="n"):
        simulate_episodes(mdp, torch.full((4, 3), 1 / 3, dtype=torch.float64), goals, p, 0)
    with pytest.raises(ValueError, match=r"unreachable goals \[0\]"):
        lattice = cai.worlds.goal_lattice(2)                   # the start cell: no episode ends there
        maxent_goal_weights(lattice, lattice.metadata["goals"] + [0])
    with pytest.raises(TypeError, match="generator"):
        simulate_episodes(mdp, torch.full((4, 3), 1 / 3, dtype=torch.float64), goals, p, 2, generator=0)
    with pytest.raises(ValueError, match="goals"):
        goal_reach(mdp, torch.full((4, 3), 1 / 3, dtype=torch.float64), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="n_arms"):
        cai.worlds.bandit(1)
    with pytest.raises(ValueError, match="depth"):
        cai.worlds.goal_lattice(0)


def test_the_maxent_policy_is_optimal_over_all_policies_on_the_lattice():
    """No memoryless policy does better: minimise E[N] over softmax logits per (t, s) with L-BFGS."""
    mdp = cai.worlds.goal_lattice(3)
    goals = mdp.metadata["goals"]
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    shape = (3, mdp.n_states, 2)

    def f(x):
        z = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        pi = torch.softmax(z.reshape(shape), -1)
        out = (p / goal_reach(mdp, pi, goals)).sum()
        out.backward()
        return out.item(), z.grad.numpy().copy()

    best = min((scipy.optimize.minimize(f, np.random.default_rng(s).normal(size=np.prod(shape)), jac=True, method="L-BFGS-B",
                                        options={"ftol": 1e-15, "gtol": 1e-10}) for s in range(3)), key=lambda r: r.fun)
    sol = maxent_meta_policy(mdp, goals, p)
    assert best.fun == pytest.approx(sol.episodes.item(), rel=1e-8)
    assert best.fun >= sol.episodes.item() - 1e-12


@pytest.mark.parametrize("layout", ["tsa", "sas"])
def test_other_reward_layouts_give_the_same_policy(layout):
    mdp = cai.worlds.goal_lattice(3)
    goals = mdp.metadata["goals"]
    r = mdp.rewards
    other = mdp.replace(rewards=r.expand(3, *r.shape).clone(), reward_layout="tsa") if layout == "tsa" else \
        mdp.replace(rewards=r.unsqueeze(-1).expand(*r.shape, mdp.n_states).clone(), reward_layout="sas")
    a, b = maxent_meta_policy(mdp, goals, P4), maxent_meta_policy(other, goals, P4)
    torch.testing.assert_close(b.reach, a.reach, atol=1e-14, rtol=0)
    assert b.mdp.reward_layout == layout


def test_goals_as_an_integer_array_or_tensor_mean_the_same_states():
    """``metadata["goals"]`` turned into a NumPy array or a tensor is the same goal list."""
    mdp = cai.worlds.goal_lattice(3)
    goals = mdp.metadata["goals"]
    want = maxent_meta_policy(mdp, goals, P4)
    for as_array in (np.array(goals), torch.tensor(goals)):
        got = maxent_meta_policy(mdp, as_array, P4)
        assert torch.equal(got.reach, want.reach) and torch.equal(got.policy, want.policy)
        assert torch.equal(maxent_goal_weights(mdp, as_array), maxent_goal_weights(mdp, goals))
