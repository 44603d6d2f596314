"""Inference with observations, against brute-force enumeration and Pyro's enumeration (float64, 1e-8)."""
import math

import numpy as np
import pytest
import torch

from cai.pomdp import (
    FiniteStateController,
    controller_messages,
    filter_beliefs,
    pyro_pomdp_log_evidence,
    pyro_pomdp_marginals,
)
from cai.worlds.pomdp import tiger
from tests.pomdp.common import as_np, brute_controller, brute_filter, random_controller, random_pomdp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_filter_matches_enumeration_of_state_paths(seed):
    rng = np.random.default_rng(seed)
    m = random_pomdp(rng, S=3, A=2, n_obs=3, T=4)
    acts = rng.integers(0, 2, size=4).tolist()
    obs = rng.integers(0, 3, size=4).tolist()
    f = filter_beliefs(m, acts, obs)
    b_ref, ll_ref = brute_filter(m, acts, obs)
    np.testing.assert_allclose(as_np(f.beliefs), b_ref, rtol=0, atol=1e-12)
    assert abs(float(f.log_likelihood) - ll_ref) < 1e-10
    assert abs(float(f.step_log_likelihood.sum()) - float(f.log_likelihood)) < 1e-14


def test_tiger_filter_closed_form():
    """After k 'hear-left' from the uniform prior, b(left) = .85^k / (.85^k + .15^k)."""
    f = filter_beliefs(tiger(horizon=3), [0, 0, 0], [0, 0, 0])
    for k in range(4):
        assert abs(float(f.beliefs[k, 0]) - 0.85 ** k / (0.85 ** k + 0.15 ** k)) < 1e-14
    # hearing left then right cancels; opening a door resets the belief to 1/2
    f = filter_beliefs(tiger(), [0, 0, 1], [0, 1, 0])
    assert abs(float(f.beliefs[2, 0]) - 0.5) < 1e-14 and abs(float(f.beliefs[3, 0]) - 0.5) < 1e-14
    assert abs(float(f.step_log_likelihood[0]) - math.log(0.5)) < 1e-14


def test_filter_bad_input():
    m = tiger()
    with pytest.raises(ValueError, match="observations: expected 2 entries"):
        filter_beliefs(m, [0, 0], [0])
    with pytest.raises(ValueError, match=r"actions: expected integers in \[0, 3\)"):
        filter_beliefs(m, [5], [0])
    with pytest.raises(TypeError, match="observations: expected a sequence of integers, got 0.5"):
        filter_beliefs(m, [0], [0.5])
    with pytest.raises(TypeError, match="actions: expected a sequence of integers"):
        filter_beliefs(m, 3, [0])
    assert filter_beliefs(m, np.array([0, 0]), torch.tensor([1, 1])).beliefs.shape == (3, 2)
    perfect = tiger(listen_accuracy=1.0)
    with pytest.raises(ValueError, match="o_2 = 1 has probability 0"):
        filter_beliefs(perfect, [0, 0], [0, 1])


@pytest.mark.parametrize("layout", ["sa", "tsa", "sas"])
@pytest.mark.parametrize("optimality", [True, False])
def test_controller_messages_match_enumeration(layout, optimality):
    rng = np.random.default_rng(3)
    m = random_pomdp(rng, S=2, A=2, n_obs=2, T=3, layout=layout)
    c = random_controller(rng, 2, 2, 2)
    obs = [1, 0, 1]
    alpha = 0.7
    msg = controller_messages(m, c, obs, alpha, optimality=optimality)
    le, ps, pa = brute_controller(m, c, obs, alpha, optimality)
    assert abs(float(msg.log_evidence) - le) < 1e-10
    np.testing.assert_allclose(as_np(msg.state_marginals), ps, atol=1e-12)
    np.testing.assert_allclose(as_np(msg.action_marginals), pa, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("optimality", [True, False])
def test_controller_messages_match_pyro_enumeration(seed, optimality):
    rng = np.random.default_rng(seed)
    m = random_pomdp(rng, S=3, A=2, n_obs=2, T=4, layout="sa" if seed == 0 else "sas")
    c = random_controller(rng, 3, 2, 2)
    obs = rng.integers(0, 2, size=4).tolist()
    msg = controller_messages(m, c, obs, 0.5, optimality=optimality)
    assert abs(float(pyro_pomdp_log_evidence(m, c, obs, 0.5, optimality=optimality)) - float(msg.log_evidence)) < 1e-8
    marg = pyro_pomdp_marginals(m, c, obs, 0.5, optimality=optimality)
    np.testing.assert_allclose(as_np(marg["states"]), as_np(msg.state_marginals), atol=1e-8)
    np.testing.assert_allclose(as_np(marg["memory"]), as_np(msg.memory_marginals), atol=1e-8)
    np.testing.assert_allclose(as_np(marg["actions"]), as_np(msg.action_marginals), atol=1e-8)


def test_open_loop_controller_filter_is_the_action_filter():
    """A one-node controller that always listens: its filter is the belief filter of 'listen, listen, ...'."""
    m = tiger(horizon=3)
    c = FiniteStateController.memoryless([1.0, 0.0, 0.0], 2)
    obs = [0, 1, 0]
    msg = controller_messages(m, c, obs, optimality=False)
    f = filter_beliefs(m, [0, 0, 0], obs)
    np.testing.assert_allclose(as_np(msg.filtered.sum(-1)), as_np(f.beliefs), atol=1e-14)
    assert abs(float(msg.log_evidence) - float(f.log_likelihood)) < 1e-14


def test_tiger_posterior_is_optimistic():
    """Conditioning on optimality, a uniformly random controller's posterior opens the treasure door
    more often than its prior (1/3): inference lets actions 'see' the hidden tiger through O."""
    m = tiger(horizon=1)
    c = FiniteStateController.memoryless([1 / 3, 1 / 3, 1 / 3], 2)
    msg = controller_messages(m, c, [0], alpha=10.0)
    # closed form: p(a | O) ∝ sum_s b0(s) exp(r(s,a)/alpha); both doors are symmetric
    w = np.array([math.exp(-0.1), 0.5 * (math.exp(-10) + math.exp(1)), 0.5 * (math.exp(1) + math.exp(-10))])
    # the observation after an open door is uninformative (1/2), after listening it is hear-left w.p. 1/2 too
    np.testing.assert_allclose(as_np(msg.action_marginals[0]), w / w.sum(), atol=1e-12)


def test_controller_messages_bad_input():
    m = tiger()
    c = FiniteStateController.memoryless([1.0, 0.0, 0.0], 2)
    with pytest.raises(ValueError, match="observations: expected 3 entries"):
        controller_messages(m, c, [0, 0])
    with pytest.raises(ValueError, match="alpha"):
        controller_messages(m, c, [0, 0, 0], alpha=0.0)
    with pytest.raises(TypeError, match="controller"):
        controller_messages(m, "policy", [0, 0, 0])
    perfect = tiger(listen_accuracy=1.0)
    with pytest.raises(ValueError, match="probability 0"):
        controller_messages(perfect, c, [0, 1, 0])
    assert torch.isfinite(controller_messages(m, c, [0, 0, 0], alpha=1e-3).log_evidence)


def test_observation_history_policy_evidence_messages_and_pyro_agree():
    """The MaxEnt tiger policy as a controller with one memory node per history (43 nodes at T=2)."""
    from cai.pomdp import belief_soft_value_iteration

    m = tiger(horizon=2)
    c = belief_soft_value_iteration(m, 5.0).controller()
    assert c.n_memory == 1 + 6 + 36
    for obs in ([0, 0], [1, 0]):
        msg = controller_messages(m, c, obs, 2.0)
        assert abs(float(pyro_pomdp_log_evidence(m, c, obs, 2.0)) - float(msg.log_evidence)) < 1e-8
        marg = pyro_pomdp_marginals(m, c, obs, 2.0)
        np.testing.assert_allclose(as_np(marg["actions"]), as_np(msg.action_marginals), atol=1e-8)
        np.testing.assert_allclose(as_np(marg["states"]), as_np(msg.state_marginals), atol=1e-8)
