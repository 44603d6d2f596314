"""TabularMDP.from_functions: the same model as the array constructor, and errors that name the row."""
import math

import numpy as np
import pytest
import torch

import cai

STATES = [("low", 0), ("mid", 1), "high"]          # any hashables, mixed on purpose
ACTIONS = ["wait", 2]


def _arrays():
    """The reference model written directly as arrays (state i = STATES[i], action j = ACTIONS[j])."""
    P = np.zeros((3, 2, 3))
    P[0, 0] = [0.9, 0.1, 0.0]
    P[0, 1] = [0.0, 0.5, 0.5]
    P[1, 0] = [0.2, 0.8, 0.0]
    P[1, 1] = [0.0, 0.0, 1.0]
    P[2, 0] = [0.0, 0.3, 0.7]
    P[2, 1] = [0.0, 0.0, 1.0]                   # forbidden below: the builder stores a self-loop
    r = np.array([[0.0, -1.0], [0.5, -0.25], [1.0, -np.inf]])
    return P, r


def _transition(s, a):
    P, _ = _arrays()
    i, j = STATES.index(s), ACTIONS.index(a)
    if i == 0 and j == 1:                       # a list of pairs, one next state split in two
        return [(STATES[1], 0.25), (STATES[2], 0.5), (STATES[1], 0.25)]
    return {STATES[k]: float(P[i, j, k]) for k in range(3) if P[i, j, k] > 0}


def _reward(s, a):
    _, r = _arrays()
    return float(r[STATES.index(s), ACTIONS.index(a)])


@pytest.mark.parametrize("horizon,discount", [(4, None), (None, 0.9)])
def test_agrees_with_the_array_constructor(horizon, discount):
    P, r = _arrays()
    p0 = np.array([0.5, 0.5, 0.0])
    rT = np.array([0.0, 2.0, -1.0])
    ref = cai.TabularMDP(P, r, p0, horizon=horizon, discount=discount, terminal_rewards=rT)
    m = cai.TabularMDP.from_functions(
        STATES, ACTIONS, _transition, _reward, initial={STATES[0]: 0.5, STATES[1]: 0.5},
        horizon=horizon, discount=discount, terminal_reward={STATES[1]: 2.0, "high": -1.0})
    assert torch.equal(m.transitions, ref.transitions)
    assert torch.equal(m.rewards, ref.rewards) and torch.equal(m.initial, ref.initial)
    assert torch.equal(m.terminal_rewards, ref.terminal_rewards)
    assert m.state_names == ("('low', 0)", "('mid', 1)", "high") and m.action_names == ("wait", "2")
    a = cai.soft_value_iteration(m, alpha=0.5)
    b = cai.soft_value_iteration(ref, alpha=0.5)
    assert torch.allclose(a.V, b.V, rtol=0, atol=1e-12) and torch.allclose(a.policy, b.policy, rtol=0, atol=1e-12)
    # the forbidden action gets zero probability
    assert float(a.policy[..., 2, 1].max()) == 0.0


def test_sparse_initial_state_and_terminal_function():
    m = cai.TabularMDP.from_functions(STATES, ACTIONS, _transition, _reward, initial="high", horizon=3,
                                      terminal_reward=lambda s: 1.0 if s == "high" else 0.0, sparse=True)
    d = cai.TabularMDP.from_functions(STATES, ACTIONS, _transition, _reward, initial="high", horizon=3,
                                      terminal_reward=lambda s: 1.0 if s == "high" else 0.0)
    assert m.is_sparse and not d.is_sparse
    assert torch.equal(m.dense_transitions(), d.transitions)
    assert m.initial.tolist() == [0.0, 0.0, 1.0] and m.terminal_rewards.tolist() == [0.0, 0.0, 1.0]


def test_transition_is_not_called_for_forbidden_actions():
    calls = []

    def transition(s, a):
        calls.append((s, a))
        return {s: 1.0}

    cai.TabularMDP.from_functions([0, 1], ["a", "b"], transition,
                                  lambda s, a: -math.inf if a == "b" else 0.0, horizon=2)
    assert calls == [(0, "a"), (1, "a")]


def _build(transition=_transition, reward=_reward, **kw):
    kw.setdefault("horizon", 3)
    return cai.TabularMDP.from_functions(STATES, ACTIONS, transition, reward, **kw)


@pytest.mark.parametrize("transition,reward,exc,match", [
    (lambda s, a: {s: 0.7}, _reward, ValueError, r"transition\(\('low', 0\), 'wait'\).*sum.*got 0\.7"),
    (lambda s, a: {"nowhere": 1.0} if s == "high" and a == 2 else {s: 1.0},
     lambda s, a: 0.0, ValueError, r"transition\('high', 2\).*unknown state 'nowhere'"),
    (lambda s, a: {s: 1.5, STATES[0]: -0.5}, _reward, ValueError, r"transition\(\('low', 0\), 'wait'\).*>= 0.*-0\.5"),
    (lambda s, a: {s: float("nan")}, _reward, ValueError, r"transition\(\('low', 0\), 'wait'\).*nan"),
    (lambda s, a: {s: "1"}, _reward, TypeError, r"transition\(\('low', 0\), 'wait'\).*a number"),
    (lambda s, a: 3, _reward, TypeError, r"transition\(\('low', 0\), 'wait'\).*mapping"),
    (_transition, lambda s, a: math.nan if s == "high" and a == "wait" else 0.0, ValueError,
     r"reward\('high', 'wait'\).*got nan"),
    (_transition, lambda s, a: math.inf if s == ("mid", 1) and a == 2 else 0.0, ValueError,
     r"reward\(\('mid', 1\), 2\).*got inf"),
    (_transition, lambda s, a: "zero", TypeError, r"reward\(\('low', 0\), 'wait'\).*a number"),
    (_transition, lambda s, a: -math.inf if s == "high" else 0.0, ValueError, r"every action of state 'high'"),
])
def test_each_bad_row_names_its_state_and_action(transition, reward, exc, match):
    with pytest.raises(exc, match=match):
        _build(transition, reward)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"states: expected distinct values, got 'a' twice"):
        cai.TabularMDP.from_functions(["a", "a"], [0], lambda s, a: {s: 1.0}, lambda s, a: 0.0, horizon=1)
    with pytest.raises(ValueError, match="states: expected at least one"):
        cai.TabularMDP.from_functions([], [0], lambda s, a: {s: 1.0}, lambda s, a: 0.0, horizon=1)
    with pytest.raises(TypeError, match="states: expected hashable"):
        cai.TabularMDP.from_functions([[1]], [0], lambda s, a: {s: 1.0}, lambda s, a: 0.0, horizon=1)
    with pytest.raises(TypeError, match="actions: expected a sequence"):
        cai.TabularMDP.from_functions([1], "ab", lambda s, a: {s: 1.0}, lambda s, a: 0.0, horizon=1)
    with pytest.raises(TypeError, match="transition: expected a function"):
        cai.TabularMDP.from_functions([1], [0], {1: 1.0}, lambda s, a: 0.0, horizon=1)
    with pytest.raises(ValueError, match="initial: expected None, a state or a mapping.*'nowhere'"):
        _build(initial="nowhere")
    with pytest.raises(ValueError, match="initial: expected states among `states`.*'nowhere'"):
        _build(initial={"nowhere": 1.0})
    with pytest.raises(ValueError, match=r"initial: expected a distribution summing to 1.*0\.5"):
        _build(initial={"high": 0.5})
    with pytest.raises(ValueError, match=r"terminal_reward\('high'\): expected a finite number"):
        _build(terminal_reward=lambda s: math.inf if s == "high" else 0.0)
    with pytest.raises(ValueError, match="discount"):        # the constructor's own checks still apply
        _build(horizon=None)
