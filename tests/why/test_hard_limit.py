"""alpha -> 0: soft VI recovers hard VI and spreads its mass over all optimal behaviours."""
import itertools
import math

import numpy as np
import pytest
import torch

import cai
import cai.worlds
from cai.why import zero_temperature_limit


def test_two_route_fork_splits_in_half_where_hard_vi_picks_one():
    mdp = cai.worlds.two_route()
    s = mdp.metadata["start"][0]
    up, down = mdp.action_names.index("up"), mdp.action_names.index("down")
    hard = cai.value_iteration(mdp)
    assert sorted(hard.policy[0, s].tolist()) == [0.0, 0.0, 0.0, 1.0]      # one route only
    assert int(hard.policy[0, s].argmax()) in (up, down)
    lim = zero_temperature_limit(mdp)
    assert lim.policy[0, s, up].item() == pytest.approx(0.5, abs=1e-12)
    assert lim.policy[0, s, down].item() == pytest.approx(0.5, abs=1e-12)
    # by hand: 8 moves along either corridor; the goal and the exit have a single action, so the
    # remaining steps add no choice: 2 optimal action sequences
    assert lim.entropy[0, s].item() == pytest.approx(math.log(2), abs=1e-12)
    gaps = []
    for alpha in (1.0, 0.3, 0.1, 0.05):
        sol = cai.soft_value_iteration(mdp, alpha)
        pi = sol.policy[0, s]
        assert abs(pi[up].item() - pi[down].item()) < 1e-12               # mirror symmetry
        gaps.append(abs(pi[up].item() - 0.5))
        # V* <= V^alpha <= V* + alpha * T * log|A|
        assert bool((sol.V >= hard.V - 1e-12).all())
        upper = hard.V + alpha * mdp.horizon * math.log(4) + 1e-12
        assert bool((upper >= sol.V).all())
    # the smallest Q gap is 1, so the split leaves 1/2 by O(exp(-1/alpha)): e^-20 at alpha = 0.05
    assert all(g1 > g2 for g1, g2 in zip(gaps[:-1], gaps[1:])) and gaps[-1] < 1.01 * math.exp(-1 / 0.05)
    # first order: V^alpha = V* + alpha H + O(exp(-gap/alpha)); the smallest Q gap here is 1
    sol = cai.soft_value_iteration(mdp, 0.04)
    torch.testing.assert_close((sol.V - hard.V) / 0.04, lim.entropy, atol=1e-8, rtol=0)
    torch.testing.assert_close(sol.policy, lim.policy, atol=1e-8, rtol=0)


def _count_optimal_sequences(P, r, T, s0):
    """Brute force: enumerate every action sequence of a deterministic MDP; count the best."""
    S, A = r.shape
    best, count = -math.inf, 0
    for seq in itertools.product(range(A), repeat=T):
        s, ret = s0, 0.0
        for a in seq:
            ret += r[s, a]
            s = int(P[s, a].argmax())
        if ret > best + 1e-9:
            best, count = ret, 1
        elif abs(ret - best) <= 1e-9:
            count += 1
    return best, count


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deterministic_limit_counts_optimal_sequences(seed):
    rng = np.random.default_rng(seed)
    S, A, T = 4, 3, 4
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, size=(S, A))] = 1.0
    r = rng.integers(0, 2, size=(S, A)).astype(float)           # integer rewards: many ties
    mdp = cai.TabularMDP(P, r, None, horizon=T)
    lim = zero_temperature_limit(mdp)
    for s0 in range(S):
        best, count = _count_optimal_sequences(P, r, T, s0)
        assert lim.hard.V[0, s0].item() == pytest.approx(best, abs=1e-12)
        assert math.exp(lim.entropy[0, s0].item()) == pytest.approx(count, rel=1e-12)
    sol = cai.soft_value_iteration(mdp, 0.03)                  # gaps >= 1: exp(-33) corrections
    torch.testing.assert_close(sol.policy, lim.policy, atol=1e-10, rtol=0)


def test_stochastic_and_stationary_first_order_term():
    # the expansion holds with stochastic dynamics and a discount: compare with a finite difference
    mdp = cai.worlds.two_route(slip=0.1, horizon=None, discount=0.9)
    lim = zero_temperature_limit(mdp)
    s = mdp.metadata["start"][0]
    assert lim.policy[s].max().item() == pytest.approx(0.5, abs=1e-9)        # the tie at the fork
    a1, a2 = 0.02, 0.01
    v1 = cai.soft_value_iteration(mdp, a1, tol=1e-14).V
    v2 = cai.soft_value_iteration(mdp, a2, tol=1e-14).V
    torch.testing.assert_close((v1 - v2) / (a1 - a2), lim.entropy, atol=1e-6, rtol=0)
    torch.testing.assert_close((v2 - lim.hard.V) / a2, lim.entropy, atol=1e-6, rtol=0)


def test_bad_input():
    with pytest.raises(TypeError, match="mdp"):
        zero_temperature_limit("grid")
    with pytest.raises(ValueError, match="atol"):
        zero_temperature_limit(cai.worlds.chain(3), atol=-1.0)
