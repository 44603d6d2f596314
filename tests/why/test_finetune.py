"""Fine-tuning from a broad prior: the protocol's pieces against exact references, and a smoke run."""
import math

import numpy as np
import pytest
import torch

import cai
import cai.worlds
from cai.dp import expected_return
from cai.why import finetune as ft


@pytest.fixture(scope="module")
def tasks():
    return ft.finetune_tasks()


def _numpy_return(mdp, pi):
    """E[sum_t r_t + r_T] by the backward recursion V_t(s) = sum_a pi (r + sum_s' P V_{t+1}), in NumPy."""
    P = mdp.dense_transitions().numpy()
    r = mdp.rewards.numpy()
    pi = pi.numpy()
    V = mdp.terminal_rewards.numpy().copy()
    for t in reversed(range(mdp.horizon)):
        q = np.where(pi[t] > 0, r + P @ V, 0.0)          # forbidden actions (r = -inf) carry no mass
        V = (pi[t] * q).sum(-1)
    return float(mdp.initial.numpy() @ V)


def test_the_tasks_by_hand(tasks):
    old, new = tasks
    # by hand: upper route 6 moves (return 10 - 6 = 4), lower 8 (return 2); the wall at (1,3) leaves
    # the old hard policy walking into it from (1,2) for the rest of the episode: 12 steps of -1
    assert float(cai.value_iteration(old).value) == 4.0
    assert float(cai.value_iteration(new).value) == 2.0
    assert float(expected_return(new, cai.value_iteration(old).policy)) == -12.0
    target, best, uni = ft.target_return(new, 0.9)
    assert best == 2.0 and target == pytest.approx(uni + 0.9 * (2.0 - uni), abs=1e-12)
    allowed = new.allowed.to(torch.float64)
    uniform = (allowed / allowed.sum(-1, keepdim=True)).expand(12, -1, -1)
    assert uni == pytest.approx(_numpy_return(new, uniform), abs=1e-12)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 3.0])
def test_initial_policies_are_the_old_soft_and_hard_policies(tasks, alpha):
    old, _ = tasks
    q_soft = ft.initial_q(old, "soft", alpha)
    # the learner's Boltzmann policy of its initial Q is the old soft-optimal policy
    boltzmann = torch.softmax(q_soft / alpha, -1)
    assert float((boltzmann - cai.soft_value_iteration(old, alpha).policy).abs().max()) < 1e-12
    # the greedy policy of the hard start is value iteration's policy, entry by entry
    assert torch.equal(ft.greedy_policy(ft.initial_q(old, "hard", alpha)), cai.value_iteration(old).policy)
    zero = ft.initial_q(old, "scratch", alpha)
    assert bool((zero[old.allowed.expand_as(zero)] == 0).all()) and bool(torch.isneginf(zero[~old.allowed.expand_as(zero)]).all())


def test_exact_return_equals_a_numpy_policy_evaluation(tasks):
    _, new = tasks
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        Q = torch.randn(12, new.n_states, new.n_actions, generator=g, dtype=torch.float64)
        Q = torch.where(new.allowed.expand_as(Q), Q, -math.inf)
        pi = ft.greedy_policy(Q)
        assert float(expected_return(new, pi)) == pytest.approx(_numpy_return(new, pi), abs=1e-12)
    mdp = cai.worlds.random_mdp(8, 3, 2, seed=1, horizon=5)
    pi = cai.soft_value_iteration(mdp, 0.5).policy
    assert float(expected_return(mdp, pi)) == pytest.approx(_numpy_return(mdp, pi), abs=1e-12)


def test_a_soft_fixed_point_stays_put_under_soft_q_learning(tasks):
    # deterministic moves: the sampled soft target r + V(s') equals Q exactly at soft VI's Q, so
    # starting there (q_init as a table) no update moves it
    old, _ = tasks
    sol = cai.soft_value_iteration(old, 1.0)
    res = cai.soft_q_learning(old, 1.0, n_samples=600, n_envs=1, step_size=0.5, q_init=sol.Q,
                              generator=torch.Generator().manual_seed(0))
    ok = torch.isfinite(sol.Q)
    assert float((res.Q - sol.Q)[ok].abs().max()) < 1e-12 and res.visits.sum() == 600
    with pytest.raises(ValueError, match="q_init"):
        cai.soft_q_learning(old, 1.0, n_samples=10, q_init=sol.Q[0])
    with pytest.raises(ValueError, match="q_init"):
        cai.soft_q_learning(old, 1.0, n_samples=10, q_init=torch.full_like(sol.Q, math.nan))


def test_a_seed_reproduces_and_censoring(tasks):
    old, new = tasks
    a = [ft.finetune_samples(old, new, "soft", budget=600, seed=s) for s in range(3)]
    assert a == [ft.finetune_samples(old, new, "soft", budget=600, seed=s) for s in range(3)]
    # the greedy policy only changes after a visit; one episode of 12 samples cannot reach the target
    assert ft.finetune_samples(old, new, "hard", budget=12, seed=0) is None
    # on the unchanged task the hard start is already optimal: 0 samples
    assert ft.finetune_samples(old, old, "hard", budget=12, seed=0) == 0
    r = ft.finetune_times(old, new, "scratch", budget=24, seeds=range(3), n_boot=20)
    assert r.hits.times.tolist() == [24] * 3 and not r.hits.found.any() and r.hits.median == math.inf
    assert r.initial_return == float(expected_return(new, ft.greedy_policy(ft.initial_q(old, "scratch"))))


def test_smoke_comparison(tasks):
    old, new = tasks
    res = [ft.finetune_times(old, new, s, budget=480, seeds=range(2), n_boot=20, eval_every=2) for s in ft.STARTS]
    for r, s in zip(res, ft.STARTS):
        assert r.start == s and r.hits.times.shape == (2,) and bool((r.hits.times % 24 == 0).all())
        assert r.hits.fraction_interval[0] <= r.hits.fraction_found <= r.hits.fraction_interval[1]
        assert s in r.summary() and "Wilson" in r.summary()
        assert r.initial_return == -12.0                  # every start takes the blocked corridor first


def test_bad_input(tasks):
    old, new = tasks
    with pytest.raises(ValueError, match="start"):
        ft.initial_q(old, "warm")
    with pytest.raises(ValueError, match="alpha"):
        ft.initial_q(old, "soft", 0.0)
    with pytest.raises(ValueError, match="fraction"):
        ft.target_return(new, 0.0)
    with pytest.raises(ValueError, match="new"):
        ft.finetune_samples(old, cai.worlds.two_route(), "soft", budget=10)
    with pytest.raises(ValueError, match="budget"):
        ft.finetune_samples(old, new, "soft", budget=0)
    with pytest.raises(ValueError, match="seeds"):
        ft.finetune_times(old, new, "soft", budget=10, seeds=[])


def test_the_summary_states_the_coverage_it_was_asked_for(tasks):
    # the intervals are the level's (Wilson and bootstrap recomputed here), and the line says that level
    old, new = tasks
    r = ft.finetune_times(old, new, "scratch", budget=24, seeds=range(3), level=0.8, n_boot=20)
    h = r.hits
    assert h.level == 0.8 and h.fraction_interval == cai.why.wilson_interval(0, 3, 0.8)
    assert h.median_interval == cai.why.bootstrap_median_interval(h.times, h.found, 0.8, 20)
    assert "80% Wilson" in r.summary() and "80% bootstrap" in r.summary() and "95%" not in r.summary()
    e = cai.why.first_hit_times(cai.worlds.chain(4), "soft_q", budget=16, seeds=range(2), level=0.9, n_boot=20)
    assert e.level == 0.9 and "90% Wilson" in e.summary() and "95%" not in e.summary()


def test_bad_input_is_refused_by_name(tasks):
    old, new = tasks
    with pytest.raises(TypeError, match="old"):
        ft.initial_q("grid", "soft")
    with pytest.raises(TypeError, match="new"):
        ft.target_return("grid")
    with pytest.raises(TypeError, match="Q"):
        ft.greedy_policy([[0.0, 1.0]])
    with pytest.raises(ValueError, match="Q"):
        ft.greedy_policy(torch.zeros(3, 0, dtype=torch.float64))
    with pytest.raises(ValueError, match="Q"):
        ft.greedy_policy(torch.tensor([0.0, math.nan], dtype=torch.float64))
    with pytest.raises(ValueError, match="seeds"):
        ft.finetune_times(old, new, "soft", budget=10, seeds="ab")
    with pytest.raises(ValueError, match="seeds"):
        ft.finetune_times(old, new, "soft", budget=10, seeds=[0.5])
    with pytest.raises(ValueError, match="level"):
        ft.finetune_times(old, new, "soft", budget=10, seeds=[0], level=1.5)
    with pytest.raises(ValueError, match="eval_every"):
        ft.finetune_samples(old, new, "soft", budget=10, eval_every=0)
    # NumPy integers are integers: the same run as with Python ints
    assert ft.finetune_samples(old, new, "hard", budget=np.int64(48), seed=np.int64(1)) == \
        ft.finetune_samples(old, new, "hard", budget=48, seed=1)


@pytest.mark.parametrize("eval_every", [1, 2])
def test_the_count_is_the_first_evaluation_at_or_above_the_target(eval_every):
    """Replay the protocol by hand (one soft Q-learning call per ``eval_every`` episodes, the exact
    greedy return after each): the count is the first evaluation whose return is >= the target,
    and every evaluation before it is below. On the symmetric two-route pair the hard start gets
    there within a few episodes."""
    old = cai.worlds.two_route()
    new = cai.why.perturb_cell(old, (1, 3), "wall")
    target = ft.target_return(new)[0]
    chunk = new.horizon * eval_every
    for seed in range(3):
        n = ft.finetune_samples(old, new, "hard", budget=600, alpha=0.3, eval_every=eval_every, seed=seed)
        assert n is not None and n > 0 and n % chunk == 0
        Q, gen = ft.initial_q(old, "hard"), torch.Generator().manual_seed(seed)
        returns = []
        for _ in range(n // chunk):
            Q = cai.soft_q_learning(new, 0.3, n_samples=chunk, n_envs=1, step_size=0.5, behaviour="boltzmann",
                                    epsilon=0.1, q_init=Q, generator=gen).Q
            returns.append(float(expected_return(new, ft.greedy_policy(Q))))
        assert returns[-1] >= target and all(r < target for r in returns[:-1]), returns
