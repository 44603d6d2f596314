"""Systematic bad input (hypothesis): every public entry point of the core refuses each kind of
bad value of each argument (wrong shape, NaN, +-inf, out of range, wrong dtype, wrong type) with
a ``ValueError`` or ``TypeError`` whose message names the argument; finite valid input never
yields NaN; every CLI subcommand answers bad options with exit status 2 and one line on stderr.

Budgets are small (``max_examples`` <= 25, no deadline) so that the file runs in well under a
minute; each example is a tiny MDP.
"""
import contextlib
import io
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cai  # noqa: E402
from cai import viz  # noqa: E402
from cai.algorithms.tabular.composition import compose  # noqa: E402
from cai.algorithms.tabular.lmdp import LMDP  # noqa: E402
from cai.cli import main  # noqa: E402
from cai.gaussian.messages import lg_backward_messages, lg_forward_messages, lg_soft_value_iteration  # noqa: E402
from cai.mdp.linear_gaussian import LinearGaussianSystem  # noqa: E402

FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
FEW = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

S, A, T = 3, 2, 2
_rng = np.random.default_rng(0)
P0 = _rng.random((S, A, S))
P0 /= P0.sum(-1, keepdims=True)
R0 = _rng.standard_normal((S, A))
MDP = cai.TabularMDP(P0, R0, horizon=T)
STATIONARY = cai.TabularMDP(P0, -np.abs(R0) - 1.0, discount=0.9)   # rewards < 0: finite evidence
POLICY = np.full((T, S, A), 1.0 / A)
EXACT = cai.backward_messages(MDP, 0.7)
SOFT = cai.soft_value_iteration(MDP, 0.7)


def _raises(name, call):
    """``call()`` raises a ValueError or TypeError whose message names the argument: ``name:``,
    or a part of it such as ``solutions[0]:`` or ``demonstrations[1].states:``."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert re.search(rf"(^|[\s(]){re.escape(name)}(\[\d+\])?(\.\w+)?:", str(info.value)), \
        f"{name!r} not named in {info.value!r}"


# ---------------------------------------------------------------------------------------------
# strategies of bad values

WRONG_TYPES = st.sampled_from(["abc", {"a": 1}, object(), [[1.0, "x"]], b"\x00", [1.0, [2.0, 3.0]]])


def _wrong_shapes(valid):
    """Arrays of shapes that are not in ``valid`` (a predicate on shapes)."""
    shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple).filter(lambda s: not valid(s))
    return shapes.map(lambda s: np.ones(s))


def _non_finite(base, values=(math.nan, math.inf, -math.inf)):
    """``base`` with one entry replaced by one of ``values``."""
    base = np.asarray(base, dtype=np.float64)

    def put(args):
        i, v = args
        x = base.copy().reshape(-1)
        x[i % x.size] = v
        return x.reshape(base.shape)
    return st.tuples(st.integers(0, 10 ** 6), st.sampled_from(values)).map(put)


def _wrong_dtypes(base):
    base = np.asarray(base)
    return st.sampled_from([base.astype(np.complex128), base.astype(bool), torch.as_tensor(base).bool()])


def _bad_distribution(base, valid_shape):
    """Probability rows (last axis) that are negative somewhere or do not sum to 1."""
    base = np.asarray(base, dtype=np.float64)

    def negative(i):
        x = base.copy().reshape(-1, base.shape[-1])
        r = i % x.shape[0]
        x[r] = 0.0
        x[r, 0], x[r, -1] = 1.5, -0.5
        return x.reshape(base.shape)

    return st.one_of(
        st.integers(0, 100).map(negative),
        st.floats(0.0, 3.0).filter(lambda c: abs(c - 1) > 1e-3).map(lambda c: base * c),
        _non_finite(base),
        _wrong_dtypes(base),
        _wrong_shapes(valid_shape),
        WRONG_TYPES,
    )


def _bad_array(base, valid_shape, non_finite=(math.nan, math.inf, -math.inf)):
    return st.one_of(_non_finite(base, non_finite), _wrong_dtypes(base), _wrong_shapes(valid_shape), WRONG_TYPES)


BAD_POSITIVE_REAL = st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf, -math.inf]),
                              st.sampled_from(["1", None, True, 1j, [1.0, "a"]]))
BAD_COUNT = st.one_of(st.integers(max_value=0), st.floats(0.5, 10).filter(lambda x: x != int(x)),
                      st.sampled_from([True, "3", math.nan, 2.0 + 0j]))


# ---------------------------------------------------------------------------------------------
# TabularMDP


@FAST
@given(st.one_of(_bad_distribution(P0, lambda s: s == (S, A, S)), st.just(np.zeros((0, A, 0)))))
def test_tabular_transitions(bad):
    _raises("transitions", lambda: cai.TabularMDP(bad, R0, horizon=T))


@FAST
@given(_bad_array(R0, lambda s: s in {(S,), (S, A), (T, S, A), (S, A, S)}, (math.nan, math.inf)))
def test_tabular_rewards(bad):
    _raises("rewards", lambda: cai.TabularMDP(P0, bad, horizon=T))


@FAST
@given(_bad_distribution(np.full(S, 1.0 / S), lambda s: s == (S,)))
def test_tabular_initial(bad):
    _raises("initial", lambda: cai.TabularMDP(P0, R0, bad, horizon=T))


@FAST
@given(_bad_array(np.zeros(S), lambda s: len(s) >= 1 and s[-1] == S))
def test_tabular_terminal_rewards(bad):
    _raises("terminal_rewards", lambda: cai.TabularMDP(P0, R0, horizon=T, terminal_rewards=bad))


@FAST
@given(st.one_of(BAD_COUNT, st.just(-1)))
def test_tabular_horizon(bad):
    _raises("horizon", lambda: cai.TabularMDP(P0, R0, horizon=bad))


@FAST
@given(st.one_of(st.floats(max_value=0.0), st.floats(1.0, 10.0, exclude_min=True),
                 st.sampled_from([math.nan, math.inf, "0.9", True, [0.9]])))
def test_tabular_discount(bad):
    _raises("discount", lambda: cai.TabularMDP(P0, R0, horizon=T, discount=bad))


@FAST
@given(st.sampled_from([torch.int64, torch.bool, torch.complex64, torch.bfloat16, "float64", np.float64, None]))
def test_tabular_dtype(bad):
    _raises("dtype", lambda: cai.TabularMDP(P0, R0, horizon=T, dtype=bad))


# ---------------------------------------------------------------------------------------------
# solvers and forward passes

SOLVERS = {
    "backward_messages": lambda mdp, **kw: cai.backward_messages(mdp, **kw),
    "soft_value_iteration": lambda mdp, **kw: cai.soft_value_iteration(mdp, **kw),
    "soft_policy_evaluation": lambda mdp, **kw: cai.soft_policy_evaluation(mdp, POLICY, **kw),
    "elbo": lambda mdp, **kw: cai.elbo(mdp, POLICY, **kw),
}


@pytest.mark.parametrize("fn", list(SOLVERS))
@FEW
@given(alpha=BAD_POSITIVE_REAL)
def test_solver_alpha(fn, alpha):
    _raises("alpha", lambda: SOLVERS[fn](MDP, alpha=alpha))


@pytest.mark.parametrize("fn", list(SOLVERS))
@FEW
@given(prior=_bad_distribution(np.full((S, A), 1.0 / A), lambda s: s in {(S, A), (A,)}))
def test_solver_action_prior(fn, prior):
    _raises("action_prior", lambda: SOLVERS[fn](MDP, action_prior=prior))


@pytest.mark.parametrize("fn", ["backward_messages", "soft_value_iteration", "value_iteration"])
@FEW
@given(mdp=st.sampled_from(["mdp", None, P0, {}, 3]))
def test_solver_mdp_type(fn, mdp):
    call = getattr(cai, fn)
    _raises("mdp", lambda: call(mdp))


@FEW
@given(tol=st.one_of(st.floats(max_value=-1e-9), st.sampled_from([math.nan, math.inf, "1e-6", True])),
       max_iter=st.just(10))
def test_stationary_tol(tol, max_iter):
    _raises("tol", lambda: cai.soft_value_iteration(STATIONARY, tol=tol))
    _raises("tol", lambda: cai.policy_visitation(STATIONARY, POLICY[0], tol=tol))
    sol = cai.backward_messages(STATIONARY)
    _raises("tol", lambda: cai.forward_messages(STATIONARY, sol, tol=tol))


@FEW
@given(max_iter=BAD_COUNT)
def test_stationary_max_iter(max_iter):
    _raises("max_iter", lambda: cai.soft_value_iteration(STATIONARY, max_iter=max_iter))
    _raises("max_iter", lambda: cai.policy_visitation(STATIONARY, POLICY[0], max_iter=max_iter))


POLICY_FNS = {
    "soft_policy_evaluation": lambda p: cai.soft_policy_evaluation(MDP, p),
    "elbo": lambda p: cai.elbo(MDP, p),
    "policy_marginals": lambda p: cai.policy_marginals(MDP, p),
    "policy_visitation": lambda p: cai.policy_visitation(MDP, p),
    "sample_trajectories": lambda p: cai.sample_trajectories(MDP, p, 3),
}


@pytest.mark.parametrize("fn", list(POLICY_FNS))
@FEW
@given(policy=_bad_distribution(POLICY, lambda s: len(s) >= 2 and s[-2:] == (S, A)))
def test_policy_argument(fn, policy):
    _raises("policy", lambda: POLICY_FNS[fn](policy))


INITIAL_FNS = {
    "forward_messages": lambda mu: cai.forward_messages(MDP, EXACT, initial=mu),
    "policy_marginals": lambda mu: cai.policy_marginals(MDP, POLICY, mu),
    "policy_visitation": lambda mu: cai.policy_visitation(MDP, POLICY, mu),
    "policy_visitation_stationary": lambda mu: cai.policy_visitation(STATIONARY, POLICY[0], mu),
}


@pytest.mark.parametrize("fn", list(INITIAL_FNS))
@FEW
@given(mu=_bad_distribution(np.full(S, 1.0 / S), lambda s: s == (S,)))
def test_initial_argument(fn, mu):
    """NaN passes both ``mu < 0`` and a sum test written as ``|sum - 1| > tol``: refused here."""
    _raises("initial", lambda: INITIAL_FNS[fn](mu))


@FEW
@given(messages=st.sampled_from(["sol", None, SOFT, EXACT.V, cai.backward_messages(cai.TabularMDP(P0, R0, horizon=T))]))
def test_messages_argument(messages):
    _raises("messages", lambda: cai.forward_messages(MDP, messages))
    _raises("messages", lambda: cai.sample_posterior(MDP, messages, 2))


@FEW
@given(n=BAD_COUNT)
def test_sample_count(n):
    _raises("n", lambda: cai.sample_trajectories(MDP, POLICY, n))
    _raises("n", lambda: cai.sample_posterior(MDP, EXACT, n))


# ---------------------------------------------------------------------------------------------
# linear-Gaussian

LG = {"A": np.eye(2), "B": np.ones((2, 1)), "H": np.eye(3), "c": np.zeros(2), "W": 0.1 * np.eye(2),
      "h": np.zeros(3), "H_T": np.eye(2), "h_T": np.zeros(2), "mu0": np.zeros(2), "Sigma0": 0.1 * np.eye(2)}
LG_SYSTEM = LinearGaussianSystem(horizon=2, **LG)


@pytest.mark.parametrize("field", list(LG))
@FEW
@given(data=st.data())
def test_linear_gaussian_fields(field, data):
    base = LG[field]
    # shapes with extra leading dimensions broadcast as a batch: only the trailing shape is checked
    if field in ("A",):
        valid = lambda s: len(s) >= 2 and s[-1] == s[-2] and s[-1] >= 1  # noqa: E731 (A sets n)
    elif field == "B":
        valid = lambda s: len(s) >= 2 and s[-2] == 2 and s[-1] >= 1  # noqa: E731 (B sets m)
    else:
        valid = lambda s: len(s) >= base.ndim and s[len(s) - base.ndim:] == base.shape  # noqa: E731
    bad = data.draw(_bad_array(base, valid))
    if field in ("A", "B") and isinstance(bad, np.ndarray) and bad.dtype == np.float64 and np.isfinite(bad).all():
        # a wrong shape for A or B changes n or m: the error then names a field that no longer fits
        kw = dict(LG, **{field: bad})
        with pytest.raises(ValueError):
            LinearGaussianSystem(horizon=2, **kw)
        return
    _raises(field, lambda: LinearGaussianSystem(horizon=2, **dict(LG, **{field: bad})))


@FEW
@given(horizon=BAD_COUNT, dtype=st.sampled_from([torch.int32, torch.bfloat16, "float32", None]))
def test_linear_gaussian_horizon_and_dtype(horizon, dtype):
    _raises("horizon", lambda: LinearGaussianSystem(horizon=horizon, **LG))
    _raises("dtype", lambda: LinearGaussianSystem(horizon=2, dtype=dtype, **LG))


@pytest.mark.parametrize("fn", [lg_backward_messages, lg_soft_value_iteration])
@FEW
@given(alpha=BAD_POSITIVE_REAL)
def test_linear_gaussian_alpha_and_system(fn, alpha):
    _raises("alpha", lambda: fn(LG_SYSTEM, alpha))
    _raises("system", lambda: fn(MDP, 1.0))
    _raises("messages", lambda: lg_forward_messages(LG_SYSTEM, EXACT))


# ---------------------------------------------------------------------------------------------
# LMDP, composition, IRL

PASSIVE = np.full((S, S), 1.0 / S)


@FEW
@given(passive=_bad_distribution(PASSIVE, lambda s: s == (S, S)),
       cost=_bad_array(np.ones(S), lambda s: s == (S,)),
       terminal=st.sampled_from([[S], [-1], [0.5], np.zeros(S + 1, bool), "x", np.ones(S, bool)]))
def test_lmdp_arguments(passive, cost, terminal):
    _raises("passive", lambda: LMDP(passive, np.ones(S)))
    _raises("state_cost", lambda: LMDP(PASSIVE, cost))
    _raises("terminal", lambda: LMDP(PASSIVE, np.ones(S), terminal))


@FEW
@given(final_cost=_bad_array(np.zeros(S), lambda s: s == (S,)), horizon=BAD_COUNT)
def test_lmdp_final_cost_and_horizon(final_cost, horizon):
    lm = LMDP(PASSIVE, np.ones(S), [0])
    _raises("final_cost", lambda: lm.to_mdp(horizon=2, final_cost=final_cost))
    _raises("final_cost", lambda: lm.solve_finite_horizon(2, final_cost=final_cost))
    _raises("horizon", lambda: lm.solve_finite_horizon(horizon))


TASKS = [cai.soft_value_iteration(MDP.replace(rewards=R0 * k), 0.7) for k in (1.0, -1.0)]


@FEW
@given(weights=st.one_of(_bad_distribution(np.array([0.5, 0.5]), lambda s: s == (2,)),
                         st.floats(0, 1).map(lambda w: np.array([w, 1 - w, 0.0]))))
def test_compose_weights(weights):
    _raises("weights", lambda: compose(TASKS, weights))


@FEW
@given(solutions=st.sampled_from([[], "ab", TASKS[0], [TASKS[0], EXACT], [TASKS[0], "x"], None]))
def test_compose_solutions(solutions):
    _raises("solutions", lambda: compose(solutions, [1.0]))


TRAJ = cai.sample_trajectories(MDP, POLICY, 4, generator=torch.Generator().manual_seed(0))


@FEW
@given(demos=st.one_of(
    st.sampled_from(["demos", None, [], 3.0]),
    st.integers(S, 50).map(lambda k: cai.Trajectories(TRAJ.states.clamp(max=0) + k, TRAJ.actions)),
    st.integers(A, 50).map(lambda k: [(TRAJ.states[0], TRAJ.actions[0] * 0 + k)]),
    st.integers(1, 5).filter(lambda L: L != T).map(lambda L: [(np.zeros(L + 1, int), np.zeros(L, int))]),
    st.just([(np.array([0.5, 1.0, 2.0]), np.array([0, 1]))]),
    st.just([(np.array([0, -1, 1]), np.array([0, 1]))]),
))
def test_irl_fit_demonstrations(demos):
    irl = cai.MaxEntIRL(MDP, n_iter=1)
    _raises("demonstrations", lambda: irl.fit(demos))


# ---------------------------------------------------------------------------------------------
# plotting steps

GRID = cai.worlds.gridworld("S.\n.G", horizon=3)
GRID_SOL = cai.soft_value_iteration(GRID)
GRID_POST = cai.forward_messages(GRID, cai.backward_messages(GRID))
BAD_STEP = st.one_of(st.integers(max_value=-1), st.integers(min_value=4, max_value=10 ** 6),
                     st.floats(0.1, 2.9).filter(lambda x: x != int(x)), st.sampled_from([True, "1", None, np.float64(1.0)]))


@FEW
@given(t=BAD_STEP)
def test_plot_steps(t):
    try:
        _raises("t", lambda: viz.value_heatmap(GRID, GRID_SOL, t=t))
        _raises("t", lambda: viz.soft_q_heatmap(GRID, GRID_SOL, t=t if t != 3 else 3))
        _raises("t", lambda: viz.policy_arrows(GRID, GRID_SOL.policy, t=t))
        _raises("t", lambda: viz.compare_solutions(GRID, GRID_SOL, GRID_SOL, t=t))
        _raises("times", lambda: viz.state_marginals(GRID, GRID_POST, times=[0, t]))
    finally:
        plt.close("all")


# ---------------------------------------------------------------------------------------------
# finite valid input never yields NaN


@st.composite
def small_mdps(draw):
    n_s, n_a = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    raw = np.array(draw(st.lists(st.floats(0, 1), min_size=n_s * n_a * n_s, max_size=n_s * n_a * n_s)))
    P = raw.reshape(n_s, n_a, n_s)
    P[..., 0] += (P.sum(-1) == 0)                         # every row gets some mass
    P = P / P.sum(-1, keepdims=True)
    r = np.array(draw(st.lists(st.floats(-200, 200), min_size=n_s * n_a, max_size=n_s * n_a))).reshape(n_s, n_a)
    stationary = draw(st.booleans())
    if stationary:
        mdp = cai.TabularMDP(P, r, discount=draw(st.floats(0.1, 0.95)))
    else:
        mdp = cai.TabularMDP(P, r, horizon=draw(st.integers(1, 5)),
                             terminal_rewards=np.array(draw(st.lists(st.floats(-200, 200), min_size=n_s, max_size=n_s))))
    return mdp, 10.0 ** draw(st.floats(-3, 3))


def _no_nan(*xs):
    for x in xs:
        assert not bool(torch.isnan(torch.as_tensor(x)).any())


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(small_mdps())
def test_finite_valid_input_never_yields_nan(case):
    mdp, alpha = case
    soft = cai.soft_value_iteration(mdp, alpha)
    _no_nan(soft.V, soft.Q, soft.policy, soft.value)
    assert bool(torch.isfinite(soft.V).all())
    hard = cai.value_iteration(mdp)
    _no_nan(hard.V, hard.Q, hard.policy)
    _no_nan(cai.policy_visitation(mdp, soft.policy), cai.elbo(mdp, soft.policy, alpha))
    try:
        exact = cai.backward_messages(mdp, alpha)
    except cai.DivergenceError:                   # a stationary problem may have infinite evidence
        return
    _no_nan(exact.V, exact.Q, exact.policy, exact.log_evidence)
    fm = cai.forward_messages(mdp, exact)
    _no_nan(fm.log_state, fm.log_state_action)


@st.composite
def small_lg_systems(draw):
    n, m = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31)))
    scale = 10.0 ** draw(st.floats(-2, 2))

    def psd(k):
        X = torch.randn(k, k, generator=g, dtype=torch.float64)
        return scale * X @ X.T

    H = psd(n + m) + torch.eye(n + m, dtype=torch.float64)          # concave reward: finite evidence
    system = LinearGaussianSystem(
        A=torch.randn(n, n, generator=g, dtype=torch.float64), B=torch.randn(n, m, generator=g, dtype=torch.float64),
        H=H, horizon=draw(st.integers(1, 4)), W=psd(n), Sigma0=psd(n), H_T=psd(n),
        h=scale * torch.randn(n + m, generator=g, dtype=torch.float64), mu0=torch.randn(n, generator=g, dtype=torch.float64),
    )
    return system, 10.0 ** draw(st.floats(-2, 2))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(small_lg_systems())
def test_finite_valid_linear_gaussian_never_yields_nan(case):
    system, alpha = case
    for fn in (lg_backward_messages, lg_soft_value_iteration):
        msg = fn(system, alpha)
        _no_nan(*msg[:10])
        assert math.isfinite(float(msg.log_partition))
        _no_nan(*lg_forward_messages(system, msg))


# ---------------------------------------------------------------------------------------------
# the command line: exit status 2 and exactly one line on stderr

def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


BAD_NUMBER_TEXT = st.sampled_from(["nan", "inf", "-inf", "", "abc", "1/2", "0x", "1e", "--"])
BAD_INT_TEXT = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["2.5", "abc", "", "1e3x", "nan"]))
OPTIONS = {
    "--alpha": st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr), BAD_NUMBER_TEXT),
    "--horizon": BAD_INT_TEXT,
    "--discount": st.one_of(st.floats(1.0, 1e6, exclude_min=True).map(repr), st.floats(max_value=0.0).map(repr),
                            BAD_NUMBER_TEXT),
    "--slip": st.one_of(st.floats(1.0, 1e6).map(repr), st.floats(max_value=-1e-9).map(repr), BAD_NUMBER_TEXT),
    "--method": st.text("abcxyz-", min_size=1, max_size=6).filter(lambda m: m not in cai.cli.METHODS),
}
SUBCOMMAND_OPTIONS = {
    "solve": ["--alpha", "--horizon", "--discount", "--slip", "--method", "--svi-steps", "--out"],
    "compare": ["--alpha", "--horizon", "--discount", "--slip", "--svi-steps"],
    "demo": ["--alpha", "--horizon", "--slip", "--dpi", "--out"],
    "graph": ["--steps", "--alpha", "--slip", "--dpi", "--world", "--out"],
}
OPTIONS.update({"--svi-steps": BAD_INT_TEXT, "--steps": BAD_INT_TEXT, "--dpi": BAD_INT_TEXT,
                "--world": st.text("qwz", min_size=1, max_size=5),
                "--out": st.sampled_from(["/proc/cai/x.npz", "/proc/cai/x.png", "/proc/cai/dir"])})
OUT_FOR_SOLVE = st.sampled_from(["/proc/cai/x.npz", "x.csv", "x", "/proc/cai/x.json"])


@pytest.mark.parametrize("sub", list(SUBCOMMAND_OPTIONS))
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_cli_bad_option_is_one_line_exit_2(sub, data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                    # nothing may be written in the repository
    opt = data.draw(st.sampled_from(SUBCOMMAND_OPTIONS[sub]))
    value = data.draw(OUT_FOR_SOLVE if (sub, opt) == ("solve", "--out") else OPTIONS[opt])
    argv = [sub] + (["chain"] if sub in ("solve", "compare") else []) + [f"{opt}={value}"]
    if sub == "demo":
        argv += ["--horizon=2", "--no-gif"] if opt != "--horizon" else ["--no-gif"]
    code, err = _cli(argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "error" in lines[0], (argv, code, err)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(world=st.text("abcdefghijklmnopqrstuvwxyz-./", min_size=1, max_size=12))
def test_cli_bad_world_is_one_line_exit_2(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from cai.worlds.registry import WORLDS, canonical_name

    if canonical_name(world) in WORLDS:
        return
    for sub in ("solve", "compare"):
        code, err = _cli([sub, world])
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (sub, world, err)
