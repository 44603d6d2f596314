"""TabularMDP: accepted inputs, immutability, save/load, and every bad input's clear error."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import cai
from cai.worlds import gridworld


def _P(S=3, A=2, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S))
    return P / P.sum(-1, keepdims=True)


def test_accepts_numpy_torch_and_lists_identically():
    P = _P()
    r = np.arange(6.0).reshape(3, 2)
    a = cai.TabularMDP(P, r, [0.2, 0.3, 0.5], horizon=3)
    b = cai.TabularMDP(torch.tensor(P), torch.tensor(r), torch.tensor([0.2, 0.3, 0.5]), horizon=3)
    c = cai.TabularMDP(P.tolist(), r.tolist(), [0.2, 0.3, 0.5], horizon=3)
    for m in (b, c):
        assert torch.equal(m.transitions, a.transitions) and torch.equal(m.rewards, a.rewards)
    assert a.dtype == torch.float64 and a.n_states == 3 and a.n_actions == 2
    assert a.batch_shape == () and a.reward_layout == "sa" and a.gamma == 1.0


def test_reward_layouts():
    P = _P()
    s = cai.TabularMDP(P, [1.0, 2.0, 3.0], None, horizon=2)
    assert s.reward_layout == "sa" and torch.equal(s.rewards[:, 1], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    tsa = cai.TabularMDP(P, np.zeros((2, 3, 2)), None, horizon=2)
    assert tsa.reward_layout == "tsa"
    sas = cai.TabularMDP(P, np.zeros((3, 2, 3)), None, horizon=2)
    assert sas.reward_layout == "sas"
    with pytest.raises(ValueError, match="reward_layout='tsa' or 'sas'"):
        cai.TabularMDP(_P(3, 3), np.zeros((3, 3, 3)), None, horizon=3)
    batch = cai.TabularMDP(P, np.zeros((5, 3, 2)), None, horizon=2, reward_layout="sa")
    assert batch.batch_shape == (5,)
    assert cai.TabularMDP(P, np.zeros((3, 3, 2)), None, horizon=3, reward_layout="tsa").reward_layout == "tsa"


def test_sparse_inputs_agree():
    P = _P(4, 2)
    flat = P.reshape(8, 4)
    dense = cai.TabularMDP(P, np.zeros((4, 2)), None, horizon=2)
    for Ps in (sp.csr_matrix(flat), sp.coo_matrix(flat), torch.tensor(flat).to_sparse(), torch.tensor(flat).to_sparse_csr()):
        m = cai.TabularMDP(Ps, np.zeros((4, 2)), None, horizon=2)
        assert m.is_sparse and m.n_actions == 2
        assert torch.allclose(m.dense_transitions(), dense.transitions, atol=0, rtol=0)


def test_frozen():
    m = cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2)
    with pytest.raises(AttributeError, match="immutable"):
        m.horizon = 3
    m2 = m.replace(horizon=5)
    assert m.horizon == 2 and m2.horizon == 5


@pytest.mark.parametrize("sparse", [False, True])
def test_save_load_round_trip_is_exact(tmp_path, sparse):
    g = gridworld("S..\n.#G\nL..", slip=0.1, horizon=7, discount=0.95, sparse=sparse)
    g = g.replace(terminal_rewards=torch.linspace(-1, 1, g.n_states, dtype=torch.float64))
    path = tmp_path / "g.npz"
    g.save(path)
    h = cai.TabularMDP.load(path)
    assert h.is_sparse == sparse
    assert torch.equal(h.dense_transitions(), g.dense_transitions())
    for f in ("rewards", "terminal_rewards", "initial"):
        assert torch.equal(getattr(h, f), getattr(g, f))
    assert (h.horizon, h.discount, h.reward_layout) == (g.horizon, g.discount, g.reward_layout)
    assert h.state_names == g.state_names and h.action_names == g.action_names
    assert dict(h.metadata) == dict(g.metadata)
    stat = cai.TabularMDP(_P(), -np.ones((3, 2)), None, discount=0.5)
    stat.save(tmp_path / "s.npz")
    assert cai.TabularMDP.load(tmp_path / "s.npz").horizon is None


def test_dtype_and_device():
    m = cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2, dtype=torch.float32)
    assert m.transitions.dtype == torch.float32
    m64 = m.to(dtype=torch.float64)
    assert m64.rewards.dtype == torch.float64 and m64.device == torch.device("cpu")
    with pytest.raises(TypeError, match="dtype"):
        cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2, dtype=torch.int64)


# -------------------------------------------------------------------------------------------
# every bad input gets a ValueError naming the argument, the expected and the actual value

def _bad(match, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        cai.TabularMDP(*args, **kwargs)


def test_transition_errors():
    P = _P()
    bad = P.copy(); bad[1, 0] *= 1.1
    _bad(r"transitions: expected each row P\[s, a, :\] to sum to 1 \(tolerance 1e-06\), got 1.1 at s=1, a=0",
         bad, np.zeros((3, 2)), None, horizon=2)
    neg = P.copy(); neg[0, 0, 0] = -0.1; neg[0, 0, 1] += 0.1
    _bad("transitions: expected non-negative probabilities", neg, np.zeros((3, 2)), None, horizon=2)
    nan = P.copy(); nan[0, 0, 0] = np.nan
    _bad("transitions: expected non-negative probabilities, got a negative or NaN", nan, np.zeros((3, 2)), None, horizon=2)
    _bad(r"transitions: expected a dense array of shape \(S, A, S\)", P[:, :, :2], np.zeros((3, 2)), None, horizon=2)
    _bad(r"transitions: expected a sparse matrix of shape \(S\*A, S\)", sp.csr_matrix(np.ones((7, 3)) / 3),
         np.zeros((3, 2)), None, horizon=2)
    with pytest.raises(TypeError, match="transitions"):
        cai.TabularMDP("abc", np.zeros((3, 2)), None, horizon=2)


def test_reward_errors():
    P = _P()
    _bad(r"rewards: expected trailing shape \(3, 2\) for layout 'sa'", P, np.zeros((3, 3)), None, horizon=2)
    _bad("rewards: expected no NaN", P, np.full((3, 2), np.nan), None, horizon=2)
    _bad(r"rewards: expected finite rewards or -inf \(forbidden action\), got \+inf", P,
         np.full((3, 2), np.inf), None, horizon=2)
    r = np.zeros((3, 2)); r[1, :] = -np.inf
    _bad("rewards: every action of state 1 is forbidden", P, r, None, horizon=2)
    _bad(r"rewards: expected \(S,\), \(S, A\), \(T, S, A\) or \(S, A, S\)", P, np.zeros((4, 3, 2)), None, horizon=2)
    _bad("reward_layout: expected one of", P, np.zeros((3, 2)), None, horizon=2, reward_layout="xy")
    _bad("time-varying rewards .* need a horizon", P, np.zeros((2, 3, 2)), None, discount=0.5, reward_layout="tsa")
    _bad(r"layout 'sas'\) need dense", sp.csr_matrix(P.reshape(6, 3)), np.zeros((3, 2, 3)), None, horizon=2,
         reward_layout="sas")
    _bad("terminal_rewards: expected finite", P, np.zeros((3, 2)), None, horizon=2, terminal_rewards=[0, -np.inf, 0])
    _bad(r"terminal_rewards: expected trailing shape \(S,\) = \(3,\), got \(2,\)", P, np.zeros((3, 2)), None,
         horizon=2, terminal_rewards=[0, 0])


def test_initial_horizon_discount_name_errors():
    P = _P()
    r = np.zeros((3, 2))
    _bad(r"initial: expected a distribution of shape \(3,\), got shape \(2,\)", P, r, [0.5, 0.5], horizon=2)
    _bad("initial: expected a distribution summing to 1", P, r, [0.5, 0.5, 0.5], horizon=2)
    _bad("initial: expected a distribution \\(finite, non-negative\\)", P, r, [1.5, -0.5, 0.0], horizon=2)
    _bad("initial: expected a distribution \\(finite, non-negative\\)", P, r, [float("nan"), 1.0, 0.0], horizon=2)
    _bad("horizon: expected an integer >= 1 or None, got 0", P, r, None, horizon=0)
    _bad("horizon: expected an integer >= 1 or None, got 2.5", P, r, None, horizon=2.5)
    for g in (0.0, 1.5, -0.1):
        _bad(f"discount: expected a number in \\(0, 1\\], got {g}", P, r, None, horizon=2, discount=g)
    _bad(r"discount: the stationary \(horizon=None\) problem needs a discount in \(0, 1\)", P, r, None)
    _bad(r"discount: the stationary .* got 1.0", P, r, None, discount=1.0)
    _bad("state_names: expected 3 names, got 2", P, r, None, horizon=2, state_names=["a", "b"])
    _bad("action_names: expected 2 names, got 3", P, r, None, horizon=2, action_names=["a", "b", "c"])


@pytest.mark.parametrize("fn", [cai.backward_messages, cai.soft_value_iteration])
def test_solver_argument_errors(fn):
    m = cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2)
    for alpha in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="alpha: expected"):
            fn(m, alpha)
    with pytest.raises(ValueError, match="alpha: expected every temperature finite and > 0"):
        fn(m, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"action_prior: expected shape \(S, A\) = \(3, 2\)"):
        fn(m, 1.0, np.ones((2, 2)) / 2)
    with pytest.raises(ValueError, match="action_prior: expected rows summing to 1"):
        fn(m, 1.0, np.ones((3, 2)))
    with pytest.raises(ValueError, match="keep"):
        fn(m, 1.0, keep="some")
    with pytest.raises(TypeError, match="mdp: expected a cai.TabularMDP"):
        fn("not an mdp", 1.0)
    r = np.zeros((3, 2)); r[0, 0] = -np.inf
    mf = cai.TabularMDP(_P(), r, None, horizon=2)
    with pytest.raises(ValueError, match="action_prior: state 0 gives zero prior probability to every allowed action"):
        fn(mf, 1.0, [[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]] if False else [[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])


def test_policy_errors():
    m = cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2)
    with pytest.raises(ValueError, match=r"policy: expected trailing shape \(2, 3, 2\)"):
        cai.elbo(m, np.ones((4, 3, 2)) / 2, 1.0)
    with pytest.raises(ValueError, match="policy: expected each row over actions to sum to 1"):
        cai.elbo(m, np.ones((2, 3, 2)), 1.0)
    with pytest.raises(ValueError, match="policy: expected non-negative"):
        cai.soft_policy_evaluation(m, -np.ones((2, 3, 2)), 1.0)


def test_terminal_reward_batch_must_broadcast_and_names_must_be_sequences():
    with pytest.raises(ValueError, match="terminal_rewards: expected a batch shape that broadcasts"):
        cai.TabularMDP(_P(), np.zeros((3, 3, 2)), None, horizon=2, reward_layout="sa", terminal_rewards=np.zeros((4, 3)))
    with pytest.raises(TypeError, match="state_names: expected a sequence of 3 names, got the string"):
        cai.TabularMDP(_P(), np.zeros((3, 2)), None, horizon=2, state_names="abc")


def test_allowed_mask_uses_reachability_for_sas_rewards():
    P = np.zeros((2, 2, 2)); P[:, :, 0] = 1.0
    r = np.zeros((2, 2, 2)); r[0, 0, 0] = -np.inf; r[0, 0, 1] = 5.0     # s'=1 is unreachable
    m = cai.TabularMDP(P, r, None, horizon=2, reward_layout="sas")
    assert m.allowed.tolist() == [[False, True], [True, True]]
    with pytest.raises(ValueError, match="action_prior: state 0 gives zero prior probability to every allowed action"):
        cai.backward_messages(m, 1.0, action_prior=[[1.0, 0.0], [0.5, 0.5]])


def test_min_positive_probability():
    rng = np.random.default_rng(0)
    P = rng.random((5, 2, 5)) * (rng.random((5, 2, 5)) < 0.5)
    P[:, :, 0] += 1e-9
    P /= P.sum(-1, keepdims=True)
    want = P[P > 0].min()
    dense = cai.TabularMDP(P, np.zeros((5, 2)), None, horizon=2)
    assert dense.min_positive_probability == want
    sparse = dense.replace(transitions=torch.as_tensor(P.reshape(10, 5)).to_sparse_csr())
    assert sparse.min_positive_probability == want
    assert dense.min_positive_probability == want                     # memoised, unchanged


def test_absorbing_states_and_uniform_prior_by_hand():
    from cai.mdp.tabular import absorbing_states, uniform_action_prior

    # 0: chooses between 1 and 2; 1: loops with reward 0 on its one allowed action (absorbing);
    # 2: loops on both actions but pays 1 (not absorbing); 3: both actions loop, reward 0 (absorbing)
    P = np.zeros((4, 2, 4))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = P[3, :, 3] = 1.0
    r = np.array([[0.0, 0.0], [0.0, -np.inf], [1.0, 1.0], [0.0, 0.0]])
    m = cai.TabularMDP(P, r, [1.0, 0, 0, 0], horizon=3)
    assert absorbing_states(m).tolist() == [False, True, False, True]
    rho = uniform_action_prior(m)
    torch.testing.assert_close(rho, torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [0.5, 0.5]], dtype=torch.float64))
    # a reward paid at one step only is not absorbing; a state that moves is not either
    rt = np.zeros((3, 4, 2))
    rt[2, 3] = 5.0
    rt[:, 1, 1] = -np.inf
    assert absorbing_states(m.replace(rewards=rt)).tolist() == [False, True, True, False]
    # r(s, a, s'): only the rewards of reachable outcomes count
    rs = np.zeros((4, 2, 4))
    rs[3, :, 0] = 7.0                                         # unreachable from 3: still absorbing
    rs[2, :, 2] = 1.0
    assert absorbing_states(m.replace(rewards=rs)).tolist() == [False, True, False, True]
    with pytest.raises(TypeError, match="mdp: expected a cai.TabularMDP"):
        absorbing_states("grid")
    with pytest.raises(TypeError, match="mdp: expected a cai.TabularMDP"):
        uniform_action_prior(None)


# --- issue 11: in-place changes, dtypes and devices, file names ------------------------------

@pytest.mark.parametrize("sparse", [False, True])
def test_in_place_change_is_detected_before_the_next_solve(sparse):
    P = _P()
    mdp = cai.TabularMDP(sp.csr_matrix(P.reshape(6, 3)) if sparse else P, np.zeros((3, 2)), horizon=2)
    cai.soft_value_iteration(mdp)                       # fine before
    if sparse:
        mdp.transitions.values()[0] = 0.0
    else:
        mdp.transitions[0, 0, :] = 0.0                  # a row that no longer sums to 1
    for fn, call in [("soft_value_iteration", lambda: cai.soft_value_iteration(mdp)),
                     ("backward_messages", lambda: cai.backward_messages(mdp)),
                     ("policy_visitation", lambda: cai.policy_visitation(mdp, np.full((3, 2), 0.5))),
                     ("sample_trajectories", lambda: cai.sample_trajectories(mdp, np.full((3, 2), 0.5), 2))]:
        with pytest.raises(ValueError, match=f"{fn}: mdp: transitions was modified in place"):
            call()


def test_change_to_the_shared_input_array_is_detected():
    r = torch.zeros(3, 2, dtype=torch.float64)
    mdp = cai.TabularMDP(_P(), r, horizon=2)          # float64 tensors are stored without a copy
    r[0, 0] = float("nan")
    with pytest.raises(ValueError, match="rewards was modified in place"):
        cai.soft_value_iteration(mdp)
    rebuilt = mdp.replace(rewards=torch.zeros(3, 2))   # the way out the message names
    assert torch.isfinite(cai.soft_value_iteration(rebuilt).V).all()


def test_unsupported_dtype_and_device_are_named():
    mdp = cai.TabularMDP(_P(), np.zeros((3, 2)), horizon=2)
    with pytest.raises(ValueError, match="dtype: expected one of torch.float16, torch.float32, torch.float64"):
        mdp.to(dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="device: expected a device that holds values, got 'meta'"):
        mdp.to("meta")
    with pytest.raises(ValueError, match="device: expected a torch device"):
        mdp.to("no-such-device")
    with pytest.raises(TypeError, match="dtype: expected a floating torch dtype"):
        cai.TabularMDP(_P(), np.zeros((3, 2)), horizon=2, dtype=torch.int64)


def test_save_without_suffix_loads_without_suffix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mdp = cai.TabularMDP(_P(), np.arange(6.0).reshape(3, 2), horizon=2)
    assert mdp.save("x") == "x.npz" and (tmp_path / "x.npz").exists()
    back = cai.TabularMDP.load("x")
    assert torch.equal(back.transitions, mdp.transitions) and torch.equal(back.rewards, mdp.rewards)
    with pytest.raises(ValueError, match="TabularMDP.load: path: .*does not exist"):
        cai.TabularMDP.load("y")
