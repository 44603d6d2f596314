"""Control on the belief tree, against closed forms and brute force over history policies."""
import itertools
import math

import numpy as np
import pytest
import torch

from cai.pomdp import BeliefTree, belief_soft_value_iteration, belief_value_iteration, controller_messages
from cai.worlds.pomdp import noisy_grid, tiger
from tests.pomdp.common import brute_history_objective, random_pomdp


def test_tiger_hard_values_closed_form():
    """T=1: listen (-1) beats opening (0.5*10 + 0.5*(-100) = -45). T=2: after one 'hear' the belief is
    0.85 and opening the other door is worth 0.85*10 - 0.15*100 = -6.5 < -1: listen twice, -2.
    T=3: listen twice; when both agree (probability .85^2 + .15^2 = .745) the belief is
    .85^2/.745 and opening the other door is worth 10 b - 100 (1 - b) > -1; otherwise listen."""
    assert float(belief_value_iteration(tiger(horizon=1)).value) == pytest.approx(-1.0, abs=1e-12)
    assert float(belief_value_iteration(tiger(horizon=2)).value) == pytest.approx(-2.0, abs=1e-12)
    agree = 0.85 ** 2 + 0.15 ** 2
    b = 0.85 ** 2 / agree
    v3 = -2.0 + agree * (10 * b - 100 * (1 - b)) + (1 - agree) * (-1.0)
    sol = belief_value_iteration(tiger(horizon=3))
    assert float(sol.value) == pytest.approx(v3, abs=1e-12)
    assert sol.policy_at(()).tolist() == [1.0, 0.0, 0.0]
    assert sol.policy_at((0, 0, 0, 0)).tolist() == [0.0, 0.0, 1.0]         # heard left twice: open right
    assert sol.policy_at((0, 0, 0, 1)).tolist() == [1.0, 0.0, 0.0]         # disagreement: listen


def _deterministic_policies(pomdp):
    """Every deterministic history policy of horizon T, as dicts history -> action."""
    A, n_obs, T = pomdp.n_actions, pomdp.n_observations, pomdp.horizon
    hists = [()]
    all_h = []
    for _t in range(T):
        all_h += hists
        hists = [h + (a, o) for h in hists for a in range(A) for o in range(n_obs)]
    for choice in itertools.product(range(A), repeat=len(all_h)):
        yield dict(zip(all_h, choice))


@pytest.mark.parametrize("world", ["tiger", "random"])
def test_hard_value_is_the_best_history_policy(world):
    m = tiger(horizon=2) if world == "tiger" else random_pomdp(np.random.default_rng(4), S=2, A=2, n_obs=2, T=2)
    A = m.n_actions
    best = -math.inf
    for pol in _deterministic_policies(m):
        best = max(best, brute_history_objective(m, lambda h, pol=pol: np.eye(A)[pol[h]], alpha=0.0))
    assert float(belief_value_iteration(m).value) == pytest.approx(best, abs=1e-10)


@pytest.mark.parametrize("world", ["tiger", "random-sas", "random-tsa"])
def test_soft_value_is_the_maxent_objective_of_its_policy_and_beats_perturbations(world):
    rng = np.random.default_rng(5)
    m = {"tiger": lambda: tiger(horizon=2),
         "random-sas": lambda: random_pomdp(rng, S=2, A=2, n_obs=2, T=3, layout="sas"),
         "random-tsa": lambda: random_pomdp(rng, S=3, A=2, n_obs=2, T=2, layout="tsa")}[world]()
    alpha = 2.0
    sol = belief_soft_value_iteration(m, alpha)

    def pol(h):
        return sol.policy_at(h).numpy()

    v = brute_history_objective(m, pol, alpha)
    assert float(sol.value) == pytest.approx(v, abs=1e-10)
    for k in range(5):                                   # every other policy does worse
        noise, cache = np.random.default_rng(k), {}

        def other(h, noise=noise, cache=cache):
            if h not in cache:                           # one perturbed distribution per history
                p = pol(h) * np.exp(0.5 * noise.normal(size=m.n_actions))
                cache[h] = p / p.sum()
            return cache[h]

        assert brute_history_objective(m, other, alpha) < v - 1e-9


def test_uniform_prior_shifts_by_alpha_log_A_per_step():
    m = tiger(horizon=3)
    for alpha in (0.5, 3.0):
        count = belief_soft_value_iteration(m, alpha)
        unif = belief_soft_value_iteration(m, alpha, [1 / 3] * 3)
        assert float(unif.value) == pytest.approx(float(count.value) - alpha * 3 * math.log(3), abs=1e-10)
        for t in range(3):
            torch.testing.assert_close(unif.policy[t], count.policy[t], rtol=0, atol=1e-12)


def test_maxent_tiger_tends_to_the_hard_policy_as_alpha_goes_to_zero():
    m = tiger(horizon=3)
    tree = BeliefTree(m)
    hard = belief_value_iteration(m, tree=tree)
    gaps = []
    for alpha in (10.0, 1.0, 0.1, 0.01):
        soft = belief_soft_value_iteration(m, alpha, tree=tree)
        gap = float(soft.value - hard.value)
        assert -1e-12 <= gap <= alpha * 3 * math.log(3) + 1e-12   # entropy bonus is at most alpha T log A
        gaps.append(gap)
    assert all(g1 >= g2 - 1e-12 for g1, g2 in zip(gaps, gaps[1:])) and gaps[0] > 1.0
    # at a high temperature the MaxEnt agent sometimes opens a door at once; at a low one it listens
    assert float(belief_soft_value_iteration(m, 30.0, tree=tree).policy_at(())[1:].sum()) > 0.1
    assert float(belief_soft_value_iteration(m, 0.01, tree=tree).policy_at(())[0]) > 1 - 1e-12


def test_controller_of_the_tree_policy():
    """The hard T=2 tiger policy listens twice: p(o_1=0, o_2=0) = .5*.85^2 + .5*.15^2 = .3725."""
    m = tiger(horizon=2)
    c = belief_value_iteration(m).controller()
    msg = controller_messages(m, c, [0, 0], optimality=False)
    assert float(msg.log_evidence) == pytest.approx(math.log(0.3725), abs=1e-12)
    soft = belief_soft_value_iteration(m, 5.0).controller()
    total = sum(math.exp(float(controller_messages(m, soft, list(o), optimality=False).log_evidence))
                for o in itertools.product(range(2), repeat=2))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_noisy_grid_uses_the_sensor():
    """Start in either top corner; step down, then the sensor tells left from right."""
    m = noisy_grid(accuracy=0.8)
    sol = belief_value_iteration(m)
    names = m.observation_names
    assert sol.policy_at(()).argmax().item() == 2                                      # down
    assert sol.policy_at((2, names.index("(1,0)"))).argmax().item() == 1              # right
    assert sol.policy_at((2, names.index("(1,2)"))).argmax().item() == 3              # left


def test_belief_bad_input():
    m = tiger(horizon=3)
    with pytest.raises(ValueError, match="max_nodes"):
        BeliefTree(m, max_nodes=10)
    with pytest.raises(ValueError, match="alpha"):
        belief_soft_value_iteration(m, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"action_prior: expected a distribution of shape \(A,\)"):
        belief_soft_value_iteration(m, 1.0, [0.5, 0.5])
    with pytest.raises(ValueError, match="history"):
        belief_value_iteration(m).policy_at((0,))
    with pytest.raises(ValueError, match="tree"):
        belief_value_iteration(m, tree=BeliefTree(tiger(horizon=3)))


def test_controller_refuses_a_huge_tree():
    with pytest.raises(ValueError, match="MAX_CONTROLLER_NODES"):
        belief_value_iteration(noisy_grid()).controller()
