"""POMDP and FiniteStateController: validation, immutability, the registered worlds."""
import pickle

import numpy as np
import pytest
import torch

from cai import TabularMDP
from cai.pomdp import POMDP, FiniteStateController
from cai.worlds import make_world, world_names
from cai.worlds.pomdp import noisy_grid, tiger
from tests.pomdp.common import random_pomdp


def _mdp(T=2, discount=None):
    P = np.full((2, 2, 2), 0.5)
    return TabularMDP(P, np.zeros((2, 2)), horizon=T, discount=discount)


def test_observations_shape_s_o_is_broadcast_over_actions():
    m = POMDP(_mdp(), [[0.9, 0.1], [0.2, 0.8]])
    assert m.observations.shape == (2, 2, 2)
    assert torch.equal(m.observations[:, 0], m.observations[:, 1])
    assert (m.n_states, m.n_actions, m.n_observations, m.horizon) == (2, 2, 2, 2)


@pytest.mark.parametrize("obs, match", [
    (np.ones((3, 2)) / 2, "observations: expected shape"),
    (np.ones((2, 2, 2)), "observations: expected each row"),
    (np.array([[1.5, -0.5], [0.5, 0.5]]), "observations: expected non-negative"),
])
def test_bad_observations(obs, match):
    with pytest.raises(ValueError, match=match):
        POMDP(_mdp(), obs)


def test_bad_mdp_and_belief():
    with pytest.raises(TypeError, match="mdp: expected a cai.TabularMDP"):
        POMDP("x", np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="finite horizon"):
        POMDP(TabularMDP(np.full((2, 2, 2), 0.5), np.zeros((2, 2)), discount=0.9), np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="no discount"):
        POMDP(_mdp(discount=0.9), np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="initial_belief"):
        POMDP(_mdp(), np.ones((2, 2)) / 2, [0.7, 0.7])
    with pytest.raises(ValueError, match="observation_names: expected 2 names"):
        POMDP(_mdp(), np.ones((2, 2)) / 2, observation_names=["x"])


def test_immutable_pickles_and_detects_in_place_change():
    m = POMDP(_mdp(), [[0.9, 0.1], [0.2, 0.8]], [0.3, 0.7])
    assert torch.allclose(m.initial_belief, torch.tensor([0.3, 0.7], dtype=torch.float64))
    with pytest.raises(AttributeError, match="immutable"):
        m.observations = None
    m2 = pickle.loads(pickle.dumps(m))
    assert torch.equal(m2.observations, m.observations) and m2.horizon == 2
    assert m.replace(horizon=5).horizon == 5
    m.observations[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match="observations was modified in place"):
        m.check_unchanged()


def test_controller_validation():
    with pytest.raises(ValueError, match="memory_update: expected shape"):
        FiniteStateController(np.ones((2, 3)) / 3, np.ones((2, 3, 2, 3)) / 3)
    with pytest.raises(ValueError, match="action_probs: expected each row"):
        FiniteStateController(np.ones((1, 3)), np.ones((1, 3, 2, 1)))
    c = FiniteStateController.memoryless([0.2, 0.8], 3)
    assert c.n_memory == 1 and c.memory_update.shape == (1, 2, 3, 1)
    with pytest.raises(ValueError, match="controller: expected A=2 actions and O=2"):
        from cai.pomdp import controller_messages
        controller_messages(random_pomdp(np.random.default_rng(0)), c, [0, 0, 0])


def test_tiger_is_the_published_problem():
    m = tiger()
    P, r, Z = m.mdp.dense_transitions(), m.mdp.rewards, m.observations
    assert torch.equal(P[:, 0], torch.eye(2, dtype=torch.float64))             # listening keeps the tiger
    assert torch.all(P[:, 1:] == 0.5)                                           # opening resets it
    assert r.tolist() == [[-1, -100, 10], [-1, 10, -100]]
    assert torch.allclose(Z[:, 0], torch.tensor([[0.85, 0.15], [0.15, 0.85]], dtype=torch.float64), atol=1e-15)
    assert torch.all(Z[:, 1:] == 0.5)
    assert m.initial_belief.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="listen_accuracy"):
        tiger(listen_accuracy=0.3)


def test_noisy_grid_sensor_and_goal_actions():
    m = noisy_grid(accuracy=0.8)
    S = m.n_states
    Z = m.observations[:, 0]
    assert torch.allclose(Z.diagonal(), torch.full((S,), 0.8, dtype=torch.float64))
    assert torch.allclose(Z.sum(-1), torch.ones(S, dtype=torch.float64))
    assert not bool(torch.isneginf(m.mdp.rewards).any())                       # every action allowed
    g = m.mdp.state_names.index("(1,1)")
    assert torch.all(m.mdp.rewards[g] == 10.0)
    with pytest.raises(ValueError, match="accuracy"):
        noisy_grid(accuracy=0.01)


def test_registry_builds_the_pomdps():
    assert set(world_names("pomdp")) == {"tiger", "noisy-grid"}
    assert isinstance(make_world("tiger", horizon=4), POMDP) and make_world("tiger", horizon=4).horizon == 4
    assert isinstance(make_world("noisy-grid"), POMDP)
    with pytest.raises(ValueError, match="slip"):
        make_world("tiger", slip=0.1)
