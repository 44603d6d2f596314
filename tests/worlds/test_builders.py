"""Every world: MDP invariants and known solutions; gymnasium import against gymnasium itself."""
import math

import numpy as np
import pytest
import torch

import cai
from cai.dp.visitation import policy_marginals
from cai.mdp.tabular import absorbing_states
from cai.worlds import CLIFF_LAYOUT, chain, cliff, gridworld, lottery, random_mdp, two_route


def _check_invariants(mdp):
    P = mdp.dense_transitions()
    S, A = mdp.n_states, mdp.n_actions
    assert P.shape == (S, A, S)
    assert bool((P >= 0).all())
    torch.testing.assert_close(P.sum(-1), torch.ones(S, A, dtype=P.dtype), atol=1e-12, rtol=0)
    assert abs(float(mdp.initial.sum()) - 1) < 1e-12 and bool((mdp.initial >= 0).all())
    if mdp.state_names is not None:
        assert len(mdp.state_names) == S and len(set(mdp.state_names)) == S
    if mdp.action_names is not None:
        assert len(mdp.action_names) == A
    meta = mdp.metadata
    if meta.get("kind") == "grid":
        H, W = meta["shape"]
        coords = np.asarray(meta["coords"])
        assert coords.shape == (S, 2)
        on = coords[:, 0] >= 0
        assert ((coords[on] >= 0) & (coords[on] < [H, W])).all()
        assert len({tuple(c) for c in coords[on]}) == on.sum()          # one state per cell
        for key in ("start", "goals", "lava"):
            assert all(0 <= s < S for s in meta[key])
        assert set(meta["start"]) == set(torch.nonzero(mdp.initial).flatten().tolist())
    # solver identities of docs/design.md §2.4 on every world
    if mdp.horizon is not None:
        ex = cai.backward_messages(mdp, alpha=1.0)
        sv = cai.soft_value_iteration(mdp, alpha=1.0)
        torch.testing.assert_close(ex.policy.sum(-1), torch.ones_like(ex.policy.sum(-1)))
        assert bool((ex.V >= sv.V - 1e-9).all())
        assert float(ex.log_evidence) >= float(sv.max_elbo) - 1e-9


def _worlds():
    return {
        "gridworld": gridworld(CLIFF_LAYOUT, slip=0.1),
        "gridworld-absorb": gridworld(CLIFF_LAYOUT, terminal="absorb"),
        "gridworld-restart": gridworld(CLIFF_LAYOUT, terminal="restart", slip=0.2),
        "gridworld-sparse": gridworld(CLIFF_LAYOUT, slip=0.1, sparse=True),
        "two-route": two_route(slip=0.1),
        "chain": chain(6, slip=0.1),
        "random": random_mdp(15, 3, 4, seed=3),
        "lottery": lottery(),
    }


@pytest.mark.parametrize("name", list(_worlds()))
def test_world_invariants(name):
    _check_invariants(_worlds()[name])


def test_random_mdp_branching_and_seed():
    m = random_mdp(12, 3, 4, seed=7)
    nnz = (m.dense_transitions() > 0).sum(-1)
    assert bool((nnz == 4).all())                                    # exactly `branching` successors
    torch.testing.assert_close(random_mdp(12, 3, 4, seed=7).transitions, m.transitions)
    assert not torch.equal(random_mdp(12, 3, 4, seed=8).transitions, m.transitions)


def _greedy_path(mdp, sol):
    """States of the deterministic greedy trajectory (deterministic dynamics only)."""
    s = int(torch.argmax(mdp.initial))
    path = [s]
    P = mdp.dense_transitions()
    for t in range(mdp.horizon):
        a = int(torch.argmax(sol.policy[t, s]))
        s = int(torch.argmax(P[s, a]))
        path.append(s)
    return path


def test_cliff_hard_route_hugs_the_cliff_soft_route_keeps_away():
    m = cliff()
    rows = torch.tensor(m.metadata["coords"])[:, 0]
    lava, goals = m.metadata["lava"], m.metadata["goals"]
    hard = cai.value_iteration(m)
    path = _greedy_path(m, hard)
    cells = [tuple(m.metadata["coords"][s]) for s in path if rows[s] >= 0]
    # shortest route: up once, right along row 2 (the cliff edge) to column 8, down to G
    assert cells[:11] == [(3, 0)] + [(2, c) for c in range(9)] + [(3, 8)]
    # the soft policy at a high temperature, run in the (deterministic) dynamics
    soft = cai.soft_value_iteration(m, alpha=5.0)
    occ = policy_marginals(m, soft.policy).state[:-1].sum(0)         # expected visits per state
    on_edge = float(occ[rows == 2].sum())
    above = float(occ[(rows == 0) | (rows == 1)].sum())
    assert float(occ[goals].sum()) > 0.99                             # still reaches the goal
    assert float(occ[lava].sum()) < 1e-3                              # and never falls
    # hard VI spends all 9 of its open-row steps on the edge; the soft policy less than half
    assert on_edge < 0.5 * (on_edge + above)
    hard_occ = policy_marginals(m, hard.policy).state[:-1].sum(0)
    assert float(hard_occ[rows == 2].sum()) == pytest.approx(9.0)
    assert float(hard_occ[(rows == 0) | (rows == 1)].sum()) == pytest.approx(0.0)


def test_slippery_cliff_exact_inference_is_optimistic():
    # exact inference "controls its luck": its posterior never falls, while its policy, run in the
    # real dynamics, falls far more often than the soft VI policy (which accounts for slipping)
    m = cliff(slip=0.1)
    lava = m.metadata["lava"]
    ex = cai.backward_messages(m, alpha=1.0)
    post = cai.forward_messages(m, ex).state[:-1].sum(0)
    soft = cai.soft_value_iteration(m, alpha=1.0)
    fall_exact = float(policy_marginals(m, ex.policy).state[:-1].sum(0)[lava].sum())
    fall_soft = float(policy_marginals(m, soft.policy).state[:-1].sum(0)[lava].sum())
    assert float(post[lava].sum()) < 1e-6
    assert fall_exact > 0.2 and fall_soft < 0.1 and fall_exact > 3 * fall_soft


def test_single_action_exit_stops_the_soft_cliff_policy_jumping():
    # With four actions in the terminal cells and the exit, the counting prior paid alpha * log 4 per
    # remaining step after a fall, so at the builder's defaults (goal 10, lava -10) the alpha = 2
    # soft policy jumped off the cliff to collect it. With one action there, it no longer does.
    m = gridworld(CLIFF_LAYOUT)
    lava = m.metadata["lava"]
    terminal = m.metadata["goals"] + lava + [m.n_states - 1]
    r = m.rewards.clone()
    r[terminal] = r[terminal, :1]                        # the old world: every action allowed, same reward
    old = m.replace(rewards=r)
    for world, lo, hi in ((m, 0.0, 0.01), (old, 0.9, 1.0)):
        soft = cai.soft_value_iteration(world, alpha=2.0)
        occ = policy_marginals(world, soft.policy).state[:-1].sum(0)
        assert lo <= float(occ[lava].sum()) <= hi


def test_two_route_soft_policy_splits_between_routes():
    m = two_route()
    start = m.metadata["start"][0]
    up, down = m.action_names.index("up"), m.action_names.index("down")
    for sol in (cai.soft_value_iteration(m, alpha=1.0), cai.backward_messages(m, alpha=1.0)):
        pi = sol.policy[0, start]
        # mirror symmetry of the layout: exactly equal (up to rounding)
        assert float(pi[up]) == pytest.approx(float(pi[down]), rel=1e-10)
        # left/right bump into walls and waste a step (cost 1): each keeps less than either route
        # (measured at alpha = 1: up = down = 0.369, left = right = 0.131)
        assert float(pi[up] + pi[down]) > 0.7 and float(pi[up]) > 2 * float(pi[[1, 3]].max())
    hard = cai.value_iteration(m).policy[0, start]
    assert float(hard.max()) == 1.0 and float(hard[up] + hard[down]) == 1.0   # commits to one route
    # the soft policy's trajectories use both corridors equally: expected visits of the upper
    # (row 1) and lower (row 5) corridors agree
    soft = cai.soft_value_iteration(m, alpha=1.0)
    occ = policy_marginals(m, soft.policy).state.sum(0)
    rows = torch.tensor(m.metadata["coords"])[:, 0]
    assert float(occ[rows == 1].sum()) == pytest.approx(float(occ[rows == 5].sum()), rel=1e-9)
    assert float(occ[rows == 1].sum()) > 1.0


def test_lottery_numbers():
    m = lottery()                       # p_win 0.1, win 10, lose -1, safe 0.5, horizon 1
    sv = cai.soft_value_iteration(m, alpha=1.0)
    ex = cai.backward_messages(m, alpha=1.0)
    hard = cai.value_iteration(m)
    # soft VI: Q(safe) = 0.5, Q(gamble) = E[r] = 0.1 * 10 + 0.9 * (-1) = 0.1
    torch.testing.assert_close(sv.Q[0, 0], torch.tensor([0.5, 0.1], dtype=torch.float64))
    # exact: Q(gamble) = log(0.1 e^10 + 0.9 e^-1) (the log-expectation of docs/design.md §2.1)
    q_gamble = math.log(0.1 * math.exp(10) + 0.9 * math.exp(-1))
    torch.testing.assert_close(ex.Q[0, 0], torch.tensor([0.5, q_gamble], dtype=torch.float64))
    assert q_gamble == pytest.approx(7.697, abs=1e-3)
    # policies: softmax of Q; exact gambles, soft VI and hard VI play safe
    p_exact = 1 / (1 + math.exp(0.5 - q_gamble))
    assert float(ex.policy[0, 0, 1]) == pytest.approx(p_exact, rel=1e-12) and p_exact > 0.99
    assert float(sv.policy[0, 0, 1]) == pytest.approx(1 / (1 + math.exp(0.4)), rel=1e-12)
    assert hard.policy[0, 0].tolist() == [1.0, 0.0]
    # log evidence: log(e^0.5 + e^q_gamble) with the counting prior
    assert float(ex.log_evidence) == pytest.approx(math.log(math.exp(0.5) + math.exp(q_gamble)), rel=1e-12)


def test_chain_hard_value_closed_form():
    # from state 1, four moves right (reward 0) reach state 5, then 6 steps pay 1 each: V = 6
    m = chain(6, horizon=10)
    assert float(cai.value_iteration(m).value) == pytest.approx(6.0)


# ---------------------------------------------------------------------------------------------
# gymnasium

try:                                   # the optional extra [gym]: skip only these tests without it
    import gymnasium  # noqa: F401
    HAVE_GYM = True
except ImportError:
    HAVE_GYM = False
from cai.worlds.gym import from_gymnasium  # noqa: E402  (imports gymnasium lazily)

needs_gym = pytest.mark.skipif(not HAVE_GYM, reason="needs gymnasium (pip install 'control-as-inference[gym]')")

#: overall false-alarm rate of each environment's distribution test (Bonferroni over its tests)
FALSE_ALARM = 1e-3


def _policy(S, A, seed=0):
    """A fixed, far-from-uniform stochastic policy (S, A) (a uniform one would hide slipping:
    FrozenLake's slip turns uniform actions into uniform moves, exactly as without slip)."""
    return np.random.default_rng(seed + 100).dirichlet(np.full(A, 0.5), size=S)


def _rollouts(env, n, T, seed):
    """States (n, T+1) and total rewards (n,) of episodes under :func:`_policy`, run *in
    gymnasium*; an episode that terminates keeps its last state (the 'absorb' convention)."""
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    A = u.action_space.n
    pi = _policy(u.observation_space.n, A)
    cum = np.cumsum(pi, 1)
    states = np.empty((n, T + 1), dtype=np.int64)
    ret = np.zeros(n)
    for i in range(n):
        s, _ = u.reset(seed=int(rng.integers(2**31)) if i == 0 else None)
        states[i, 0] = s
        done = False
        for t in range(T):
            if not done:
                a = min(int(np.searchsorted(cum[s], rng.random(), side="right")), A - 1)
                s, r, done, _, _ = u.step(a)
                ret[i] += r
            states[i, t + 1] = s
    return states, ret


def _exact_marginals(mdp, T):
    """p(s_t) under :func:`_policy`, by numpy (independent of cai's solvers): (T+1, S)."""
    P = mdp.dense_transitions().numpy()
    pi = _policy(mdp.n_states, mdp.n_actions)
    d = mdp.initial.numpy()
    out = [d]
    for _ in range(T):
        d = np.einsum("s,sa,sat->t", d, pi, P)
        out.append(d)
    return np.stack(out)


def _chi2_pvalue(counts, probs):
    """Pearson chi-square goodness of fit, pooling cells with expected count < 5 into one."""
    from scipy import stats

    n = counts.sum()
    exp = n * probs
    if counts[probs == 0].sum() > 0:            # a state the imported MDP calls impossible was visited
        return 0.0
    small = exp < 5
    obs = np.append(counts[~small], counts[small].sum())
    ex = np.append(exp[~small], exp[small].sum())
    keep = ex > 0
    if keep.sum() < 2:
        return 1.0
    return float(stats.chisquare(obs[keep], ex[keep]).pvalue)


def _distribution_test(env, mdp, n, T, seed):
    """Smallest Bonferroni-corrected p-value over the state marginals at t = 1..T and the mean
    return (z-test against the exact expected return)."""
    states, ret = _rollouts(env, n, T, seed)
    d = _exact_marginals(mdp, T)
    S = mdp.n_states
    pvals = [_chi2_pvalue(np.bincount(states[:, t], minlength=S), d[t]) for t in range(1, T + 1)]
    # exact expected return of the policy: sum_t sum_{s,a,s'} d_t(s) pi(a|s) P r(s,a,s')
    P = mdp.dense_transitions().numpy()
    r = mdp.rewards.numpy()
    r = np.where(np.isneginf(r), 0.0, r)        # an absorbing state's extra actions: the episode has ended, pays 0
    r_sa = (P * r).sum(-1) if mdp.reward_layout == "sas" else r
    pi = _policy(mdp.n_states, mdp.n_actions)
    mean = sum(float(d[t] @ (pi * r_sa).sum(-1)) for t in range(T))
    # standard error, floored at one largest reward in n episodes (a rare reward, e.g. reaching
    # FrozenLake8x8's goal in 15 random steps, may never be sampled: zero sample variance)
    se = max(ret.std(ddof=1) / math.sqrt(n), float(np.abs(r_sa).max()) / n)
    from scipy import stats
    pvals.append(float(2 * stats.norm.sf(abs(ret.mean() - mean) / se)))
    return min(1.0, min(pvals) * len(pvals))


@needs_gym
@pytest.mark.parametrize("name,kwargs,T", [
    ("FrozenLake-v1", {}, 12),
    ("FrozenLake8x8-v1", {}, 15),
    ("CliffWalking-v1", {}, 15),
    ("Taxi-v3", {}, 8),
])
def test_gymnasium_rollouts_agree_in_distribution(name, kwargs, T):
    from cai.worlds.gym import _make

    env = _make(name, kwargs)
    mdp = from_gymnasium(env)
    _check_invariants(mdp.replace(horizon=5))
    p = _distribution_test(env, mdp, n=3000, T=T, seed=0)
    assert p > FALSE_ALARM, f"{name}: gymnasium rollouts disagree with the imported MDP (p = {p:.2g})"


@needs_gym
def test_gymnasium_distribution_test_can_fail():
    # the same test rejects a wrong import: non-slippery dynamics against slippery rollouts
    from cai.worlds.gym import _make

    env = _make("FrozenLake-v1", {})
    wrong = from_gymnasium("FrozenLake-v1", is_slippery=False)
    assert _distribution_test(env, wrong, n=3000, T=12, seed=0) < FALSE_ALARM
    # and a subtler one: the right dynamics with the reward of reaching G doubled
    right = from_gymnasium(env)
    r = right.rewards.clone()
    r[r == 1] = 2.0
    assert _distribution_test(env, right.replace(rewards=r, reward_layout="sas"), n=3000, T=12, seed=0) < FALSE_ALARM


@needs_gym
def test_gymnasium_terminal_states_absorb():
    m = from_gymnasium("frozenlake")
    term = m.metadata["terminal_states"]
    desc = "SFFFFHFHFFFHHFFG"                     # the 4x4 map, row-major
    assert term == [i for i, c in enumerate(desc) if c in "HG"]
    P = m.dense_transitions()
    for s in term:
        assert bool((P[s, :, s] == 1).all())
        # one action (the first) with reward 0; the others forbidden: nothing to choose, V = 0
        assert bool((m.rewards[s, 0] == 0).all()) and bool(torch.isneginf(m.rewards[s, 1:]).all())
    assert absorbing_states(m).nonzero().flatten().tolist() == term
    # arriving at G pays 1: r(s, a, G) = 1 for every (s, a) that can reach G
    G = desc.index("G")
    reach = P[:, :, G] > 0
    reach[G] = False
    assert bool((m.rewards[:, :, G][reach] == 1).all())
    # the value of the optimal policy from the start within 100 steps is the success probability
    v = cai.value_iteration(m).value
    assert 0.7 < float(v) <= 1.0


@needs_gym
def test_gymnasium_reward_layouts_and_options():
    cw = from_gymnasium("cliffwalking")
    assert cw.reward_layout == "sa"               # the reward does not depend on the outcome
    assert cw.metadata["kind"] == "grid" and cw.metadata["shape"] == [4, 12]
    assert cw.metadata["terminal_states"] == [47]
    assert cw.action_names == ("up", "right", "down", "left")
    # 'sa' and 'sas' forms give the same soft VI and exact messages when r(s,a,s') = r(s,a)
    fl_sas = from_gymnasium("frozenlake", horizon=8)
    fl_sa = from_gymnasium("frozenlake", horizon=8, reward="sa")
    torch.testing.assert_close(cai.soft_value_iteration(fl_sas).V, cai.soft_value_iteration(fl_sa).V)
    taxi = from_gymnasium("taxi", horizon=3, sparse=True)
    assert taxi.is_sparse and taxi.n_states == 500 and taxi.n_actions == 6
    dense = from_gymnasium("taxi", horizon=3)
    torch.testing.assert_close(cai.backward_messages(taxi).V, cai.backward_messages(dense).V)
    ignore = from_gymnasium("frozenlake", terminal="ignore", horizon=5)
    assert ignore.metadata["terminal"] == "ignore"
    with pytest.warns(UserWarning, match="different rewards"):
        from_gymnasium("CliffWalking-v1", is_slippery=True)


@needs_gym
def test_gymnasium_bad_input():
    with pytest.raises(ValueError, match="terminal"):
        from_gymnasium("frozenlake", terminal="exit")
    with pytest.raises(ValueError, match="reward"):
        from_gymnasium("frozenlake", reward="s")
    with pytest.raises(TypeError, match="transition table"):
        from_gymnasium(object())
    with pytest.raises(ValueError, match="sparse"):
        from_gymnasium("frozenlake", sparse=True)


def test_options_fork_structure_and_registry():
    import torch

    from cai.worlds import make_world, options_fork

    m = options_fork(3, corridor_bonus=0.25)
    assert m.n_actions == 3 and list(m.state_names) == ["fork", "corridor", "hub", "end"]
    allowed = m.allowed
    assert allowed[0].tolist() == [True, True, False] and allowed[1].tolist() == [True, False, False]
    assert bool(allowed[2].all()) and bool(allowed[3].all())
    P = m.dense_transitions()
    assert float(P[0, 0, 1]) == 1.0 and float(P[0, 1, 2]) == 1.0 and bool((P[1:, :, 3] == 1).all())
    assert float(m.rewards[0, 0]) == 0.25
    s = make_world("options-fork", horizon=None, discount=0.9)
    assert s.horizon is None and torch.isfinite(cai.soft_value_iteration(s, 1.0).V).all()
    for bad in (dict(n_options=1), dict(corridor_bonus=float("inf")), dict(slip=0.1)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            options_fork(**bad)


def test_gym_ids_resolve_to_the_installed_versions():
    from cai.worlds.gym import resolve_env_id

    old = {"CliffWalking-v0": None, "FrozenLake-v1": None, "Taxi-v3": None}       # gymnasium 0.29
    new = {"CliffWalking-v1": None, "FrozenLake-v1": None, "Taxi-v3": None, "Taxi-v4": None}
    assert resolve_env_id("CliffWalking-v1", old) == "CliffWalking-v0"
    assert resolve_env_id("CliffWalking-v1", new) == "CliffWalking-v1"
    assert resolve_env_id("Taxi-v3", new) == "Taxi-v3"
    assert resolve_env_id("Taxi-v9", new) == "Taxi-v4"
    with pytest.raises(ValueError, match="env: expected a registered gymnasium environment id"):
        resolve_env_id("NoSuchWorld-v0", new)


def test_gym_unknown_name_is_a_value_error():
    pytest.importorskip("gymnasium")
    with pytest.raises(ValueError, match="env: expected a registered gymnasium environment id or one of"):
        from_gymnasium("nosuchworld")


def test_bandit_and_goal_lattice_structure():
    import math

    from cai.mdp.tabular import absorbing_states
    from cai.worlds import bandit, goal_lattice

    b = bandit(3)
    assert (b.n_states, b.n_actions, b.horizon) == (4, 3, 1) and b.metadata["goals"] == [1, 2, 3]
    P = b.dense_transitions()
    assert [int(P[0, a].argmax()) for a in range(3)] == [1, 2, 3]
    assert absorbing_states(b).tolist() == [False, True, True, True]
    # the docstrings' "one allowed action" at an outcome: every arm at the start, action 0 only after
    assert b.allowed.sum(-1).tolist() == [3, 1, 1, 1] and bool(b.allowed[1:, 0].all())
    _check_invariants(b)
    L = goal_lattice(3)
    cells = L.metadata["cells"]
    assert L.n_states == 10 and L.horizon == 3 and [cells[g] for g in L.metadata["goals"]] == [[i, 3 - i] for i in range(4)]
    # the end states of all 2^3 action sequences: binomial(3, i) of them end in (i, 3 - i)
    P = L.dense_transitions()
    ends = []
    for seq in range(8):
        s = 0
        for t in range(3):
            s = int(P[s, (seq >> t) & 1].argmax())
        ends.append(cells[s][0])
    assert [ends.count(i) for i in range(4)] == [math.comb(3, i) for i in range(4)]
    assert absorbing_states(L)[L.metadata["goals"]].all()
    goal = torch.zeros(L.n_states, dtype=torch.bool)
    goal[L.metadata["goals"]] = True
    assert L.allowed.sum(-1).tolist() == [1 if g else 2 for g in goal.tolist()]
    _check_invariants(L)
