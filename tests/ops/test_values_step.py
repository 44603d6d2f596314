"""The fused values-only backup (:class:`cai.ops.values_step.SoftValueStep`) against independent references.

The step rewrites the soft backup in ``exp(V / alpha)`` (an action-marginalised operator for
exact inference, a weighted sum over actions for soft value iteration). It is checked against

* a direct NumPy/SciPy transcription of the backup formulas (``scipy.special.logsumexp`` over
  ``s'`` and over ``a``), step by step, on dense and sparse transitions, with a discount, an
  action prior, forbidden actions, time-varying rewards, a batch of terminal values, and values
  large enough to need the shift;
* brute-force enumeration of every path, for whole solves that keep only the values.

Each test also asserts that the fused route really ran (returned values rather than declining),
and the cases where it must decline (precision, autograd) are checked to decline and still give
the general route's numbers. A batch of temperatures or reward tables (one column of weights per
member) is checked column by column against the same formulas and against a loop of single solves.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

import cai
from cai.ops.backup import EXPECTATION, LOG_EXPECTATION, q_backup, soft_max
from cai.ops.values_step import SoftValueStep
from tests.common import brute_force, random_tiny_mdp

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def reference_step(P, r, v, alpha, gamma, mode, log_prior=None):
    """``V_t`` from ``V_{t+1}`` straight from the formulas (NumPy float64, log space): the values
    of :func:`reference_full`."""
    return reference_full(P, r, v, alpha, gamma, mode, log_prior)[0]


def _sparse(mdp):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        PM = mdp.transition_matrix.to_sparse_csr()
    return mdp.replace(transitions=PM)


def _mdp(rng, S=6, A=3, T=4, discount=None, forbid=False, layout="sa", sparse=False, scale=1.0):
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < 0.6)
    P[np.arange(S), :, np.arange(S)] += 0.2
    P /= P.sum(-1, keepdims=True)
    shape = (T, S, A) if layout == "tsa" else (S, A)
    r = scale * rng.standard_normal(shape)
    if forbid:
        r[..., 0, 0] = -np.inf
        r[..., 2, 1] = -np.inf
    mdp = cai.TabularMDP(P, r, None, horizon=T, discount=discount, terminal_rewards=scale * rng.standard_normal(S),
                         reward_layout=layout)
    return (_sparse(mdp) if sparse else mdp), P, r


CASES = [
    dict(),
    dict(discount=0.9),
    dict(forbid=True),
    dict(layout="tsa", discount=0.7),
    dict(sparse=True),
    dict(sparse=True, discount=0.8, forbid=True),
    dict(sparse=True, layout="tsa"),
]


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("prior", [False, True])
def test_step_matches_the_formulas(mode, case, prior):
    rng = np.random.default_rng(100 + case)
    kw = CASES[case]
    mdp, P, r = _mdp(rng, **kw)
    gamma = kw.get("discount") or 1.0
    S, A = P.shape[:2]
    log_prior = None
    if prior:
        rho = rng.random((S, A)) + 0.1
        rho[1, 0] = 0.0
        rho /= rho.sum(-1, keepdims=True)
        with np.errstate(divide="ignore"):
            log_prior = np.log(rho)
    lp_t = None if log_prior is None else torch.as_tensor(log_prior)
    for alpha in (0.3, 2.0):
        a = torch.tensor(alpha, dtype=torch.float64)
        step = SoftValueStep.for_solver(mdp, a, mode, lp_t)
        if mode == LOG_EXPECTATION and kw.get("layout") == "tsa":
            assert step is None        # M would change every step: the general backup runs
            return
        assert step is not None
        # values spread over a few nats; far above 0 (soft VI must shift: exp(800) overflows);
        # and spread over hundreds of alpha (the sums may underflow: the step may decline)
        for level, spread in ((0.0, 3.0), (800.0 * alpha, 3.0), (0.0, 700.0 * alpha)):
            v = torch.as_tensor(level + rng.standard_normal(S) * spread)
            for t in (0, 2):
                r_t = r[t] if r.ndim == 3 else r
                want = reference_step(P, r_t, v.numpy(), alpha, gamma, mode, log_prior)
                got = step(v, t)
                if got is None:
                    # soft VI may decline where a sum underflows (a wide spread); exact inference
                    # recomputes those states from slabs of values instead
                    assert mode == EXPECTATION and spread > 100
                    continue
                np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12 * max(1, np.abs(want).max()))
                # and the general route agrees
                Vg, _ = soft_max(q_backup(mdp, t, v, a, mode), a, lp_t)
                np.testing.assert_allclose(got.numpy(), Vg.numpy(), rtol=1e-12, atol=1e-12 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
def test_step_with_a_batch_of_values(mode):
    """A batch of ``V_{t+1}`` (from a batch of terminal rewards) is a matrix of columns."""
    rng = np.random.default_rng(7)
    for sparse in (False, True):
        mdp, P, r = _mdp(rng, discount=0.95, sparse=sparse)
        a = torch.tensor(0.7, dtype=torch.float64)
        step = SoftValueStep.for_solver(mdp, a, mode, None)
        v = torch.as_tensor(rng.standard_normal((2, 3, P.shape[0])))
        got = step(v, 0)
        assert got is not None and got.shape == v.shape
        for i in range(2):
            for j in range(3):
                want = reference_step(P, r, v[i, j].numpy(), 0.7, 0.95, mode)
                np.testing.assert_allclose(got[i, j].numpy(), want, rtol=1e-12, atol=1e-12)


def test_live_part_matches_the_general_backup():
    """The exact step's ``V_live`` (no death term), used by the divergence bound, equals the general one."""
    rng = np.random.default_rng(3)
    for sparse in (False, True):
        mdp, P, r = _mdp(rng, discount=0.9, sparse=sparse)
        mdp = mdp.replace(horizon=None)
        a = torch.tensor(0.5, dtype=torch.float64)
        step = SoftValueStep.for_solver(mdp, a, LOG_EXPECTATION, None)
        v = torch.as_tensor(rng.standard_normal(P.shape[0]) * 2)
        V, V_live = step(v, None, with_live=True)
        Q, Q_live = q_backup(mdp, None, v, a, LOG_EXPECTATION, with_live=True)
        torch.testing.assert_close(V, soft_max(Q, a, None)[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(V_live, soft_max(Q_live, a, None)[0], rtol=1e-12, atol=1e-12)


def _count_fused(monkeypatch):
    """Patch SoftValueStep.__call__ to count the steps it answered and declined."""
    counts = {"ran": 0, "declined": 0, "sequence": []}
    orig = SoftValueStep.__call__

    def spy(self, *args, **kw):
        out = orig(self, *args, **kw)
        counts["declined" if out is None else "ran"] += 1
        counts["sequence"].append(out is not None)
        return out

    monkeypatch.setattr(SoftValueStep, "__call__", spy)
    return counts


@pytest.mark.parametrize("kw", [dict(), dict(discount=0.9), dict(layout="tsa"), dict(forbid=True), dict(layout="s")])
def test_values_only_solves_match_brute_force(monkeypatch, kw):
    counts = _count_fused(monkeypatch)
    rng = np.random.default_rng(11)
    d, mdp = random_tiny_mdp(rng, 3, 2, 4, **kw)
    for alpha in (0.5, 1.5):
        want = brute_force(d, alpha)["log_evidence"]
        sol = cai.backward_messages(mdp, alpha, keep="values")
        assert sol.log_evidence.item() == pytest.approx(want, abs=1e-10)
        # soft VI's fused values agree with its general route (and so with exact on deterministic P)
        full = cai.soft_value_iteration(mdp, alpha)
        lazy = cai.soft_value_iteration(mdp, alpha, keep="values")
        torch.testing.assert_close(lazy.V, full.V, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(lazy.policy, full.policy, rtol=1e-12, atol=1e-12)
    solvers = 1 if kw.get("layout") == "tsa" else 2           # exact inference declines tsa rewards
    assert counts["ran"] == 2 * solvers * 4 and counts["declined"] == 0     # alphas x solvers x steps


def test_stationary_iteration_runs_fused_and_matches_the_linear_solve(monkeypatch):
    counts = _count_fused(monkeypatch)
    rng = np.random.default_rng(5)
    _, mdp = random_tiny_mdp(rng, 4, 3, None, discount=0.85)
    mdp = mdp.replace(rewards=-mdp.rewards.abs())             # with a normalised prior: finite evidence
    prior = torch.full((4, 3), 1 / 3, dtype=torch.float64)
    it = cai.backward_messages(mdp, 0.8, prior, tol=1e-13)
    lin = cai.backward_messages(mdp, 0.8, prior, method="linear")
    torch.testing.assert_close(it.V, lin.V, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(it.policy, lin.policy, rtol=1e-10, atol=1e-10)
    assert counts["ran"] >= it.iterations - 1 and counts["declined"] == 0


def test_extreme_scales_decline_and_fall_back(monkeypatch):
    """Rewards of 1e4 at alpha 1e-3 spread the values over ~1e7 alpha: every fused sum would
    underflow, the step declines, and the solve equals the general route's."""
    counts = _count_fused(monkeypatch)
    rng = np.random.default_rng(2)
    d, mdp = random_tiny_mdp(rng, 3, 2, 4, scale=1e4)
    for solver in (cai.backward_messages, cai.soft_value_iteration):
        full = solver(mdp, 1e-3)
        lazy = solver(mdp, 1e-3, keep="values")
        torch.testing.assert_close(lazy.V, full.V, rtol=1e-13, atol=0)
    assert counts["declined"] > 0
    assert cai.backward_messages(mdp, 1e-3, keep="values").log_evidence.item() == \
        pytest.approx(brute_force(d, 1e-3)["log_evidence"], rel=1e-10)


def test_states_without_mass():
    """``V_{t+1} = -inf`` in every state a row can reach leaves ``M z = 0`` there: exact inference
    gives ``-inf`` as the general route does (through the banded product); non-finite values are
    declined in both modes."""
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[1, 0, 1] = P[2, 0, 2] = 1.0
    mdp = cai.TabularMDP(P, np.zeros((3, 1)), None, horizon=2)
    a = torch.tensor(1.0, dtype=torch.float64)
    v = torch.tensor([0.0, -math.inf, 0.0], dtype=torch.float64)
    V, _ = soft_max(q_backup(mdp, 0, v, a, LOG_EXPECTATION), a, None)
    assert torch.isneginf(V[:2]).all() and V[2].item() == 0.0
    torch.testing.assert_close(SoftValueStep.for_solver(mdp, a, LOG_EXPECTATION, None)(v, 0), V, rtol=0, atol=0)
    for mode in (LOG_EXPECTATION, EXPECTATION):
        for bad in (math.inf, math.nan):
            assert SoftValueStep.for_solver(mdp, a, mode, None)(torch.tensor([0.0, bad, 0.0], dtype=torch.float64), 0) is None


def test_where_the_step_does_not_apply():
    rng = np.random.default_rng(0)
    _, mdp = random_tiny_mdp(rng)
    a = torch.tensor(1.0, dtype=torch.float64)
    # (batched temperatures or reward tables run fused, one column per member: see the batch tests)
    # r(s, a, s') rewards, and autograd through the rewards
    _, sas = random_tiny_mdp(rng, layout="sas")
    assert SoftValueStep.for_solver(sas, a, EXPECTATION, None) is None
    r = mdp.rewards.clone().requires_grad_(True)
    assert SoftValueStep.for_solver(mdp.replace(rewards=r), a, LOG_EXPECTATION, None) is None
    # values that carry a gradient are declined at the step
    step = SoftValueStep.for_solver(mdp, a, LOG_EXPECTATION, None)
    assert step(torch.zeros(3, dtype=torch.float64, requires_grad=True), 0) is None
    # and a values-only solve still differentiates (the general route runs)
    sol = cai.backward_messages(mdp.replace(rewards=r), 1.0, keep="values")
    sol.log_evidence.backward()
    assert r.grad is not None and torch.isfinite(r.grad).all()


def test_float32():
    """float32 overflows at exp(89): values near 100 alpha need the shift there (not in float64)."""
    rng = np.random.default_rng(9)
    mdp, P, r = _mdp(rng, discount=0.9)
    m32 = mdp.to(dtype=torch.float32)
    for mode in (LOG_EXPECTATION, EXPECTATION):
        for level in (0.0, 50.0):
            a = torch.tensor(0.5, dtype=torch.float32)
            v = torch.as_tensor(level + rng.standard_normal(P.shape[0]), dtype=torch.float32)
            got = SoftValueStep.for_solver(m32, a, mode, None)(v, 0)
            assert got is not None and got.dtype == torch.float32
            want = reference_step(P, r, v.double().numpy(), 0.5, 0.9, mode)
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-6, atol=2e-6 * max(1, np.abs(want).max()))


def _general_only(monkeypatch):
    monkeypatch.setattr(SoftValueStep, "for_solver", classmethod(lambda cls, *a, **k: None))


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
def test_stationary_fused_equals_the_general_route(monkeypatch, solver):
    rng = np.random.default_rng(21)
    for sparse in (False, True):
        mdp, _, _ = _mdp(rng, S=7, A=3, discount=0.8, sparse=sparse)
        mdp = mdp.replace(horizon=None, rewards=-mdp.rewards.abs())
        prior = torch.full((7, 3), 1 / 3, dtype=torch.float64)
        with monkeypatch.context() as mp:
            counts = _count_fused(mp)
            fused = solver(mdp, 0.6, prior, tol=1e-13)
            assert counts["ran"] >= fused.iterations - 1 and counts["declined"] == 0
        with monkeypatch.context() as mp:
            _general_only(mp)
            general = solver(mdp, 0.6, prior, tol=1e-13)
        torch.testing.assert_close(fused.V, general.V, rtol=1e-11, atol=1e-11)
        torch.testing.assert_close(fused.policy, general.policy, rtol=1e-11, atol=1e-11)
        torch.testing.assert_close(fused.Q, general.Q, rtol=1e-11, atol=1e-11)
        # the returned record is self-consistent: V = alpha log sum_a rho exp(Q / alpha)
        V_of_Q = 0.6 * torch.logsumexp(fused.Q / 0.6 + torch.log(prior), -1)
        torch.testing.assert_close(fused.V, V_of_Q, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("horizon", [60, None])
def test_a_trap_and_the_solve_matches(monkeypatch, horizon):
    """A chain with an absorbing trap worth -50 per step at alpha 0.05: the values spread over
    far more than 670 alpha and the trap's own sum underflows under one shift. Exact inference
    recomputes it from slabs (never declining); soft VI declines once and the rest of the solve
    takes the general route. Both give the general route's numbers."""
    S = 6
    P = np.zeros((S, 2, S))
    for s in range(S - 1):
        P[s, 0, max(s - 1, 0)] = 0.9
        P[s, 0, S - 1] = 0.1                                  # a slip into the trap
        P[s, 1, min(s + 1, S - 2)] = 1.0
    P[S - 1, :, S - 1] = 1.0
    r = np.full((S, 2), -0.1)
    r[S - 1] = -50.0
    prior = torch.full((S, 2), 0.5, dtype=torch.float64)      # rewards <= 0: a finite evidence
    mdp = cai.TabularMDP(P, r, None, horizon=horizon, discount=0.9)
    for solver in (cai.backward_messages, cai.soft_value_iteration):
        with monkeypatch.context() as mp:
            counts = _count_fused(mp)
            fused = solver(mdp, 0.05, prior, keep="values" if horizon else "all")
            seq = counts["sequence"]
            if solver is cai.backward_messages:
                assert counts["declined"] == 0 and counts["ran"] > 0
            else:
                assert counts["declined"] >= 1
                first = seq.index(False)
                assert not any(seq[first:])                     # sticky: no step fused after a decline
        with monkeypatch.context() as mp:
            # the reference shares no slab code: general backup, underflowing rows term by term
            import cai.ops.logspace as ls
            _general_only(mp)
            mp.setattr(ls, "_banded", lambda *a, **k: None)
            general = solver(mdp, 0.05, prior)
        torch.testing.assert_close(fused.V, general.V, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fused.policy, general.policy, rtol=1e-12, atol=1e-12)


def test_declining_is_sticky():
    rng = np.random.default_rng(4)
    mdp, P, r = _mdp(rng)
    a = torch.tensor(1.0, dtype=torch.float64)
    step = SoftValueStep.for_solver(mdp, a, EXPECTATION, None)
    ok = torch.as_tensor(rng.standard_normal(P.shape[0]))
    assert step(ok, 0) is not None
    starved = torch.tensor([0.0, -1e5, -1e5, -1e5, -1e5, -1e5], dtype=torch.float64)
    assert step(starved, 0) is None and step.declined
    assert step(ok, 0) is None                                 # no second mat-vec wasted


# ---------------------------------------------------------------------------------------------
# batches of temperatures and reward tables: one column of weights per member


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("discount", [None, 0.9])
def test_batched_step_matches_the_formulas_column_by_column(mode, sparse, discount):
    """A ``(2, 3)`` batch from 3 temperatures and 2 reward tables (with a prior and a forbidden
    action): each column equals the NumPy transcription with that column's alpha and rewards."""
    rng = np.random.default_rng(21)
    mdp, P, r = _mdp(rng, discount=discount, sparse=sparse, forbid=True)
    S, A = r.shape
    r2 = np.stack([r, r + rng.standard_normal(r.shape)])
    r2[:, np.isneginf(r)] = -np.inf
    batched = mdp.replace(rewards=torch.as_tensor(r2)[:, None], reward_layout="sa")      # (2, 1, S, A)
    alpha = torch.tensor([0.3, 0.8, 2.5], dtype=torch.float64)
    lp = rng.random((S, A)) + 0.1
    lp = np.log(lp / lp.sum(-1, keepdims=True))
    step = SoftValueStep.for_solver(batched, alpha, mode, torch.as_tensor(lp))
    assert step is not None
    gamma = 1.0 if discount is None else discount
    v = torch.as_tensor(rng.standard_normal((2, 3, S)) * 3)
    got = step(v, 0)
    assert got is not None and got.shape == (2, 3, S)
    for i in range(2):
        for j in range(3):
            want = reference_step(P, r2[i], v[i, j].numpy(), float(alpha[j]), gamma, mode, lp)
            np.testing.assert_allclose(got[i, j].numpy(), want, rtol=1e-12, atol=1e-12 * max(1, np.abs(want).max()))
    if mode == LOG_EXPECTATION and discount is not None:
        # the stationary check's live part (no death term) against the general backup
        stat = batched.replace(horizon=None)
        st = SoftValueStep.for_solver(stat, alpha, mode, torch.as_tensor(lp))
        Vf, live = st(v, None, with_live=True)
        a = alpha.expand(2, 3)
        Q, Q_live = q_backup(stat, None, v, a, mode, with_live=True)
        torch.testing.assert_close(Vf, soft_max(Q, a, torch.as_tensor(lp))[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(live, soft_max(Q_live, a, torch.as_tensor(lp))[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("layout", ["sa", "tsa"])
def test_batched_solves_equal_the_loop(monkeypatch, solver, sparse, layout):
    """One call with 4 temperatures (and, separately, 3 reward tables) runs fused and equals a loop
    of single calls to 1e-12 (values, Q and the policy), keeping values only, every step (the
    batched :meth:`SoftValueStep.full`) or the first; with an action prior and a forbidden action."""
    counts = _count_fused(monkeypatch)
    fulls = []
    orig_full = SoftValueStep.full
    monkeypatch.setattr(SoftValueStep, "full", lambda self, *a, **k: fulls.append(orig_full(self, *a, **k)) or fulls[-1])
    rng = np.random.default_rng(4)
    mdp, P, r = _mdp(rng, S=7, A=3, T=5, discount=0.95, sparse=sparse, layout=layout, forbid=layout == "sa")
    alphas = [0.2, 0.7, 1.0, 3.0]
    lp = torch.as_tensor(rng.random((7, 3)) + 0.2)
    lp = lp / lp.sum(-1, keepdim=True)                          # a normalised action prior
    for keep in ("values", "all", "first"):
        b = solver(mdp, torch.tensor(alphas, dtype=torch.float64), lp, keep=keep)
        for i, al in enumerate(alphas):
            one = solver(mdp, al, lp, keep=keep)
            torch.testing.assert_close(b.V[i], one.V, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(b.Q[i], one.Q, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(b.policy[i], one.policy, rtol=1e-12, atol=1e-12)
    # keep="all" stored every step through the batched full step, keep="first" step 0
    assert len(fulls) >= 5 + 1 and all(f is not None for f in fulls)
    tables = torch.stack([mdp.rewards, 2 * mdp.rewards, mdp.rewards - 1])
    rb = mdp.replace(rewards=tables, reward_layout=layout)
    b = solver(rb, 0.6, keep="values")
    for i in range(3):
        torch.testing.assert_close(b.V[i], solver(mdp.replace(rewards=tables[i], reward_layout=layout), 0.6, keep="values").V,
                                   rtol=1e-12, atol=1e-12)
    assert counts["declined"] == 0 and counts["ran"] >= 2 * 5


def reference_full(P, r, v, alpha, gamma, mode, log_prior=None):
    """``(V_t, Q_t, log pi_t)`` from ``V_{t+1}`` straight from the formulas (NumPy float64)."""
    S, A = r.shape
    lp = np.zeros((S, A)) if log_prior is None else log_prior
    with np.errstate(divide="ignore"):
        logP = np.log(P)
    if mode == LOG_EXPECTATION:
        L = logsumexp(logP + v[None, None, :] / alpha, axis=-1)
        Q = r + alpha * (np.logaddexp(L + math.log(gamma), math.log1p(-gamma)) if gamma < 1 else L)
    else:
        Q = r + gamma * (P @ v)
    logits = lp + Q / alpha
    lse = logsumexp(logits, axis=-1)
    return alpha * lse, Q, logits - lse[:, None]


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("discount", [None, 0.9])
@pytest.mark.parametrize("batched", [False, True])
def test_full_step_writes_the_formulas_into_preallocated_outputs(mode, sparse, discount, batched):
    """:meth:`SoftValueStep.full` (the step of ``keep="all"``) against the NumPy transcription,
    entry by entry (``V``, ``Q`` and ``log pi``, with a prior and forbidden actions): into views of
    the preallocated ``(*b, T, ...)`` outputs of :meth:`SoftValueStep.outputs` (one column, and a
    ``(2, 3)`` batch of reward tables and temperatures); a second step from the first step's ``V``
    (whose columns it reuses), and again after that ``V`` was changed in place (they must not be)."""
    rng = np.random.default_rng(8)
    mdp, P, r = _mdp(rng, discount=discount, sparse=sparse, forbid=True)
    S, A = r.shape
    lp = rng.random((S, A)) + 0.1
    lp = np.log(lp / lp.sum(-1, keepdims=True))
    gamma = 1.0 if discount is None else discount
    if batched:
        r2 = np.stack([r, r + rng.standard_normal(r.shape)])
        r2[:, np.isneginf(r)] = -np.inf
        mdp = mdp.replace(rewards=torch.as_tensor(r2)[:, None], reward_layout="sa")    # (2, 1, S, A)
        alpha = torch.tensor([0.3, 0.8, 2.5], dtype=torch.float64)
        b, members = (2, 3), [(i, j) for i in range(2) for j in range(3)]
        params = {(i, j): (r2[i], float(alpha[j])) for i, j in members}
    else:
        alpha = torch.tensor(0.7, dtype=torch.float64)
        b, members, params = (), [()], {(): (r, 0.7)}
    step = SoftValueStep.for_solver(mdp, alpha, mode, torch.as_tensor(lp))
    Vs, Qs, Ls = step.outputs(b, mdp.horizon)
    assert Vs.shape == (*b, 5, S) and Qs.shape == Ls.shape == (*b, 4, S, A)
    v = torch.as_tensor(rng.standard_normal((*b, S)) * 3)

    def check(v_next, t):
        here = (Vs.select(-2, t), Qs.select(-3, t), Ls.select(-3, t))
        got = step.full(v_next, t, out=here)
        assert got is not None and all(g is h for g, h in zip(got, here))
        for k in members:
            rk, ak = params[k]
            for g, w in zip(got, reference_full(P, rk, v_next[k].numpy(), ak, gamma, mode, lp)):
                np.testing.assert_allclose(g[k].numpy(), w, rtol=1e-12, atol=1e-12 * max(1, np.abs(w[np.isfinite(w)]).max()))
        return got

    V2 = check(check(v, 3)[0], 2)[0]      # from the previous step's own output (cached columns)
    V2.mul_(0.5)                          # an in-place change: the cached columns are stale
    check(V2, 1)
    # without out=, fresh tensors of the same shapes
    got = step.full(v, 0)
    assert [tuple(x.shape) for x in got] == [(*b, S), (*b, S, A), (*b, S, A)]


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("batched", [False, True])
def test_values_step_into_preallocated_outputs(mode, sparse, batched):
    """The values-only step with ``out=`` (``keep="values"``): each step written into a view of
    :meth:`SoftValueStep.outputs` equals the NumPy transcription entry by entry, from the previous
    step's own output (reused columns) and after that output was changed in place."""
    rng = np.random.default_rng(9)
    mdp, P, r = _mdp(rng, discount=0.9, sparse=sparse, forbid=True)
    S, A = r.shape
    if batched:
        alpha, b, members = torch.tensor([0.4, 1.0, 2.0], dtype=torch.float64), (3,), [0, 1, 2]
    else:
        alpha, b, members = torch.tensor(0.6, dtype=torch.float64), (), [()]
    step = SoftValueStep.for_solver(mdp, alpha, mode, None)
    if not batched:
        assert step.outputs(b, mdp.horizon, "values") is None      # one solve stacks its values
        Vs = torch.from_numpy(np.empty((5, S)))
    else:
        Vs, Qs, Ls = step.outputs(b, mdp.horizon, "values")
        assert Vs.shape == (*b, 5, S) and Qs is None and Ls is None

    def check(v_next, t):
        got = step(v_next, t, out=Vs.select(-2, t))
        assert got is not None and got.data_ptr() == Vs.select(-2, t).data_ptr()
        for k in members:
            want = reference_step(P, r, v_next[k].numpy(), float(alpha[k] if batched else alpha), 0.9, mode)
            np.testing.assert_allclose(got[k].numpy(), want, rtol=1e-12, atol=1e-12 * max(1, np.abs(want).max()))
        return got

    v = torch.as_tensor(rng.standard_normal((*b, S)) * 3)
    V2 = check(check(v, 3), 2)
    V2.mul_(0.5)
    check(V2, 1)


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
@pytest.mark.parametrize("sparse", [False, True])
def test_batched_keep_all_is_batch_last_and_equals_the_loop(monkeypatch, solver, sparse):
    """``keep="all"`` with a 2-D batch (2 reward tables x 3 temperatures, a discount, an action prior,
    forbidden actions) runs the batched :meth:`SoftValueStep.full` in place in batch-last memory:
    ``V``, ``Q``, ``log pi`` have the documented shapes, the batch axes with the smallest strides
    (no transposed copy was made), and each member equals the single solve of its reward table and
    temperature entry by entry (1e-12; the ``-inf`` of forbidden actions in the same places). The
    solution's tensors work as ordinary ones: per-member indexing, ``reshape``, NumPy, a pickle
    round trip bit for bit."""
    import pickle

    fulls = []
    orig_full = SoftValueStep.full
    monkeypatch.setattr(SoftValueStep, "full", lambda self, *a, **k: fulls.append(orig_full(self, *a, **k)) or fulls[-1])
    rng = np.random.default_rng(21)
    S, A, T = 8, 3, 5
    mdp, P, r = _mdp(rng, S=S, A=A, T=T, discount=0.9, sparse=sparse, forbid=True)
    lp = torch.as_tensor(rng.random((S, A)) + 0.2)
    lp = lp / lp.sum(-1, keepdim=True)
    tables = torch.stack([mdp.rewards, torch.where(torch.isneginf(mdp.rewards), mdp.rewards, 1.5 * mdp.rewards - 0.3)])
    alphas = torch.tensor([0.25, 0.9, 3.0], dtype=torch.float64)
    sol = solver(mdp.replace(rewards=tables[:, None], reward_layout="sa"), alphas, lp, keep="all")   # b = (2, 3)
    assert len(fulls) == T and all(f is not None for f in fulls)
    assert sol.V.shape == (2, 3, T + 1, S) and sol.Q.shape == sol.log_policy.shape == (2, 3, T, S, A)
    for x in (sol.V, sol.Q, sol.log_policy):
        assert not x.is_contiguous() and x.stride()[:2] == (3, 1)      # members last in memory
    for i in range(2):
        for j in range(3):
            one = solver(mdp.replace(rewards=tables[i]), float(alphas[j]), lp, keep="all")
            for name in ("V", "Q", "log_policy", "policy"):
                got, want = getattr(sol, name)[i, j], getattr(one, name)
                assert torch.equal(torch.isneginf(got), torch.isneginf(want)), name
                fin = torch.isfinite(want)
                torch.testing.assert_close(got[fin], want[fin], rtol=0, atol=1e-12 * max(1.0, want[fin].abs().max().item()))
    np.testing.assert_array_equal(sol.Q.numpy(), sol.Q.contiguous().numpy())
    assert torch.equal(sol.Q.reshape(6, T, S, A)[4], sol.Q[1, 1])
    back = pickle.loads(pickle.dumps(sol))
    for name in ("V", "Q", "log_policy"):
        assert torch.equal(getattr(back, name), getattr(sol, name))


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
def test_a_batch_of_one_keeps_all(solver):
    """A temperature of shape ``(1,)``, or one reward table in a batch, with ``keep="all"`` gives the
    scalar solve's tensors bit for bit, with the batch axis in front (the one-column step on
    ``(1, ...)`` outputs; it raised before)."""
    rng = np.random.default_rng(22)
    mdp, P, r = _mdp(rng, discount=0.8, forbid=True, sparse=True)
    one = solver(mdp, 0.6, keep="all")
    for b in (solver(mdp, torch.tensor([0.6], dtype=torch.float64), keep="all"),
              solver(mdp.replace(rewards=mdp.rewards[None], reward_layout="sa"), 0.6, keep="all")):
        for name in ("V", "Q", "log_policy"):
            assert getattr(b, name).shape == (1, *getattr(one, name).shape)
            assert torch.equal(getattr(b, name)[0], getattr(one, name))


@pytest.mark.parametrize("mode", [LOG_EXPECTATION, EXPECTATION])
def test_full_step_into_contiguous_outputs_equals_the_column_outputs(mode):
    """:meth:`SoftValueStep.full` with ``out=`` views of ordinary contiguous ``(*b, ...)`` tensors
    (not batch-last memory) writes the same numbers, bit for bit, as into :meth:`outputs`."""
    rng = np.random.default_rng(23)
    mdp, P, r = _mdp(rng, discount=0.9, sparse=True, forbid=True)
    S, A = r.shape
    lp = torch.as_tensor(np.log(rng.random((S, A)) + 0.1))
    lp = lp - torch.logsumexp(lp, -1, keepdim=True)
    alpha, b = torch.tensor([[0.3, 1.0], [2.0, 5.0]], dtype=torch.float64), (2, 2)
    step = SoftValueStep.for_solver(mdp, alpha, mode, lp)
    Vs, Qs, Ls = step.outputs(b, mdp.horizon)
    v = torch.as_tensor(rng.standard_normal((*b, S)) * 3)
    cols = step.full(v, 2, out=(Vs.select(-2, 2), Qs.select(-3, 2), Ls.select(-3, 2)))
    rows = step.full(v, 2, out=(torch.empty(*b, S, dtype=torch.float64), torch.empty(*b, S, A, dtype=torch.float64),
                                torch.empty(*b, S, A, dtype=torch.float64)))
    assert all(x.is_contiguous() for x in rows) and not cols[1].is_contiguous()
    for c, w in zip(cols, rows):
        assert torch.equal(c, w)


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("discount", [None, 0.9])
def test_a_wide_batch_equals_the_loop(solver, sparse, discount):
    """40 temperatures (the batch width where the sum over actions switches to slice additions)
    and a reward-table batch equal the loop of single calls to 1e-12, values and every step; after
    the transitions change in place, the next batch uses the new ones (the cached block pattern
    of sparse exact inference is keyed on the tensor's version)."""
    rng = np.random.default_rng(11)
    mdp, P, r = _mdp(rng, S=9, A=4, T=6, discount=discount, sparse=sparse, forbid=True)
    alphas = torch.linspace(0.2, 3.0, 40, dtype=torch.float64)
    for keep in ("values", "all"):
        b = solver(mdp, alphas, keep=keep)
        for i in (0, 17, 39):
            one = solver(mdp, float(alphas[i]), keep=keep)
            torch.testing.assert_close(b.V[i], one.V, rtol=1e-12, atol=1e-12)
            if keep == "all":
                fin = torch.isfinite(one.Q)
                torch.testing.assert_close(b.Q[i][fin], one.Q[fin], rtol=1e-12, atol=1e-12)
    # change P in place (a new row for state 1, action 2): the values move, and the batch follows
    before = solver(mdp, alphas, keep="values").V.clone()
    P2 = P.copy()
    P2[1, 2] = 0.0
    P2[1, 2, 5] = 1.0
    if sparse:
        mdp2 = _sparse(mdp.replace(transitions=torch.as_tensor(P2)))
    else:
        mdp2 = mdp.replace(transitions=torch.as_tensor(P2))
    after = solver(mdp2, alphas, keep="values").V
    assert (after - before).abs().max() > 1e-6
    for i in (0, 39):
        torch.testing.assert_close(after[i], solver(mdp2, float(alphas[i]), keep="values").V, rtol=1e-12, atol=1e-12)


def test_block_pattern_follows_in_place_changes():
    """The block pattern of a batched sparse exact solve is cached per transition tensor and batch
    size, and rebuilt when the tensor changes in place (its version counter)."""
    from cai.ops import values_step as vs

    rng = np.random.default_rng(12)
    mdp, P, r = _mdp(rng, S=8, A=3, T=5, sparse=True)
    PM = mdp.transition_matrix.clone()
    G1 = vs._block_pattern(PM, vs.scipy_csr(PM), 8, 3, 5)
    assert vs._block_pattern(PM, vs.scipy_csr(PM), 8, 3, 5)[0] is G1[0]     # a hit
    assert vs._block_pattern(PM, vs.scipy_csr(PM), 8, 3, 6)[0] is G1[0]     # same pattern, other B
    with torch.no_grad():
        PM.values().mul_(0.5)                                                # a new version
    G2 = vs._block_pattern(PM, vs.scipy_csr(PM), 8, 3, 5)
    assert G2[0] is not G1[0]
    dense = lambda G: G.to_dense().numpy() if isinstance(G, torch.Tensor) else G.toarray()   # noqa: E731
    np.testing.assert_array_equal(dense(G2[0]), 0.5 * dense(G1[0]))


@pytest.mark.parametrize("solver", [cai.backward_messages, cai.soft_value_iteration])
def test_batches_without_mkl_equal_the_loop(monkeypatch, solver):
    """Where torch has no MKL (``MKL_SPARSE`` false) the sparse products run on SciPy, and the
    block operator of exact inference is a SciPy matrix: batches still equal the loop to 1e-12."""
    import cai.ops.logspace as ls
    from cai.ops import values_step as vs

    monkeypatch.setattr(ls, "MKL_SPARSE", False)
    monkeypatch.setattr(vs, "MKL_SPARSE", False)
    monkeypatch.setattr(vs, "_BLOCK_PATTERNS", {})
    rng = np.random.default_rng(13)
    mdp, P, r = _mdp(rng, S=9, A=4, T=6, discount=0.9, sparse=True, forbid=True)
    alphas = torch.linspace(0.2, 3.0, 40, dtype=torch.float64)
    for keep in ("values", "all"):
        b = solver(mdp, alphas, keep=keep)
        for i in (0, 21, 39):
            torch.testing.assert_close(b.V[i], solver(mdp, float(alphas[i]), keep=keep).V, rtol=1e-12, atol=1e-12)
    if solver is cai.backward_messages:
        st = SoftValueStep.for_solver(mdp, alphas, LOG_EXPECTATION, None)
        assert not isinstance(st._weights(None, (40,))[1], torch.Tensor)      # a SciPy block operator


def test_large_block_indices_are_not_kept(monkeypatch):
    """Block indices above ``BLOCK_CACHE_MAX_ENTRIES`` are built per solve and not cached; the
    batch still equals the loop."""
    from cai.ops import values_step as vs

    monkeypatch.setattr(vs, "BLOCK_CACHE_MAX_ENTRIES", 10)
    monkeypatch.setattr(vs, "_BLOCK_PATTERNS", {})
    rng = np.random.default_rng(14)
    mdp, P, r = _mdp(rng, S=8, A=3, T=4, sparse=True)
    alphas = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    got = cai.backward_messages(mdp, alphas, keep="values").V
    (entry,) = vs._BLOCK_PATTERNS.values()
    assert set(entry[2]) == {"pattern"}                              # no block indices kept
    for i in range(3):
        torch.testing.assert_close(got[i], cai.backward_messages(mdp, float(alphas[i]), keep="values").V,
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rescale_above", [0.5, 1e200])
@pytest.mark.parametrize("discount", [None, 0.9])
def test_chained_exact_batch_rescaled_or_not_equals_the_loop(monkeypatch, rescale_above, discount):
    """The chained ``z`` of sparse batched exact inference, rescaled every step
    (``CHAIN_RESCALE_ABOVE = 0.5``) or only when its maximum leaves ``[1, 1e200]``, gives the loop's
    values to 1e-12 over a long horizon (rewards up to 3, temperatures down to 0.1)."""
    from cai.ops import values_step as vs

    monkeypatch.setattr(vs, "CHAIN_RESCALE_ABOVE", rescale_above)
    rng = np.random.default_rng(15)
    mdp, P, r = _mdp(rng, S=10, A=3, T=40, discount=discount, sparse=True, scale=3.0)
    alphas = torch.tensor([0.1, 0.5, 2.0, 8.0], dtype=torch.float64)
    got = cai.backward_messages(mdp, alphas, keep="values").V
    for i in range(4):
        want = cai.backward_messages(mdp, float(alphas[i]), keep="values").V
        torch.testing.assert_close(got[i], want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))


@pytest.mark.parametrize("discount", [None, 0.999])
def test_chained_exact_batch_with_values_spread_far_stays_finite(discount):
    """Values spread over ~1000 nats (alpha 0.08, rewards of scale 30): the chained ``z`` of some
    states underflows although their values are finite. The batch must still give the loop's
    finite values (they come from the sum, not from ``log z``), to 1e-12 of max |V|.
    (A review found ``-inf`` here when the values were taken from ``log z``.)"""
    rng = np.random.default_rng(17)                             # (a seed where it did)
    mdp, P, r = _mdp(rng, S=8, A=3, T=3, discount=discount, sparse=True, scale=30.0)
    lp = torch.as_tensor(rng.random((8, 3)) + 0.05)
    lp = lp / lp.sum(-1, keepdim=True)                         # an action prior
    alphas = torch.tensor([0.08, 0.3, 1.0], dtype=torch.float64)
    got = cai.backward_messages(mdp, alphas, lp, keep="values").V
    for i in range(3):
        want = cai.backward_messages(mdp, float(alphas[i]), lp, keep="values").V
        assert torch.isfinite(want).all()
        torch.testing.assert_close(got[i], want, rtol=1e-12, atol=1e-12 * float(want.abs().max()))


def test_chained_exact_batch_never_rescales_a_subnormal_z():
    """A chained ``z`` that would pass through subnormals (``u e^(m - max m)`` below the precision
    floor) is not chained: rescaled, it would pass the next starvation check with digits lost.
    Three states, one action: 0 and 1 absorbing, 2 moves to 0; the exact values are sums of rewards
    (``V_0(0) = r_T(0) + 2 r(0)``, ``V_0(2) = r(2) + r(0) + r_T(0)``). (Found in review: -731.747
    for -732.)"""
    P = np.zeros((3, 1, 3))
    P[0, 0, 0] = P[1, 0, 1] = P[2, 0, 0] = 1.0
    for x, d, e in ((600.0, 60.0, 70.0), (600.0, 66.0, 78.0)):
        mdp = _sparse(cai.TabularMDP(P, np.array([[-d], [0.0], [e]]), None, horizon=2,
                                     terminal_rewards=np.array([-x, 0.0, 0.0])))
        V0 = cai.backward_messages(mdp, torch.tensor([1.0, 1.0], dtype=torch.float64), keep="values").V[:, 0]
        for b in range(2):
            assert V0[b, 0].item() == pytest.approx(-x - 2 * d, rel=1e-12)
            assert V0[b, 2].item() == pytest.approx(e - d - x, rel=1e-12)


def test_float32_batch_over_a_long_horizon_stays_finite():
    """float32 batches of sparse exact inference do not chain ``z`` (the chain's constants are
    sized for float64): with 4 allowed actions of reward 0 the evidence is ``T log 4`` for any
    temperature, finite at T = 100 where a chained ``z`` grew past float32's range (found in
    review: inf)."""
    S, A, T = 5, 4, 100
    P = np.zeros((S, A, S), np.float32)
    for s in range(S):
        for a in range(A):
            P[s, a, (s + a) % S] = 1.0
    mdp = _sparse(cai.TabularMDP(P, np.zeros((S, A)), None, horizon=T, dtype=torch.float32))
    sol = cai.backward_messages(mdp, torch.tensor([1.0, 2.0], dtype=torch.float32), keep="values")
    assert sol.V.dtype == torch.float32
    torch.testing.assert_close(sol.log_evidence, torch.full((2,), T * math.log(A), dtype=torch.float32),
                               rtol=1e-5, atol=0)


def test_batched_exact_accepts_stored_zero_probabilities():
    """A transition CSR may store an explicit 0 (here at the last row's column 2). The block
    pattern of batched exact inference is found on the stored entries, not on their sums, so the
    batch runs and equals the loop. (Found in review: a ValueError from the pattern search.)"""
    S, A = 3, 2
    crow = torch.tensor(list(range(S * A)) + [S * A + 1])
    col = torch.tensor([0] * (S * A) + [2])
    vals = torch.tensor([1.0] * (S * A) + [0.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        Pt = torch.sparse_csr_tensor(crow, col, vals, size=(S * A, S))
    rng = np.random.default_rng(18)
    dense = cai.TabularMDP(np.repeat(np.eye(S)[[0]], S * A, 0).reshape(S, A, S), rng.standard_normal((S, A)), None,
                           horizon=3)
    mdp = dense.replace(transitions=Pt)
    assert mdp.transition_matrix._nnz() == S * A + 1
    alphas = torch.tensor([0.5, 2.0], dtype=torch.float64)
    got = cai.backward_messages(mdp, alphas, keep="values").V
    for i in range(2):
        torch.testing.assert_close(got[i], cai.backward_messages(dense, float(alphas[i]), keep="values").V,
                                   rtol=1e-12, atol=1e-12)
