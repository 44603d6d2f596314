"""Solution: immutable (assignment raises), lazily materialised, and it pickles."""
import io
import pickle

import pytest
import torch

import cai
from cai.methods import METHODS
from cai.worlds.builders import chain, random_mdp


@pytest.mark.parametrize("field", ["V", "method", "alpha", "log_evidence", "mdp", "iterations", "_Q", "Q", "policy"])
def test_assignment_and_deletion_raise(field):
    sol = cai.backward_messages(chain(4), 1.0)
    with pytest.raises(AttributeError, match="immutable|can't set|has no setter"):
        setattr(sol, field, None)
    if field in sol.__dict__:
        with pytest.raises(AttributeError, match="immutable"):
            delattr(sol, field)


def test_lazy_materialisation_still_works_and_does_not_change_values():
    mdp = random_mdp(5, 3, 2, seed=1, horizon=4)
    lazy = cai.backward_messages(mdp, 0.7, keep="values")
    full = cai.backward_messages(mdp, 0.7)
    torch.testing.assert_close(lazy.Q, full.Q, rtol=0, atol=1e-12)
    torch.testing.assert_close(lazy.policy, full.policy, rtol=0, atol=1e-12)
    assert lazy.log_evidence is not None and float(lazy.log_evidence) == float(full.log_evidence)


def _round_trip(obj):
    """Pickle and unpickle ``obj`` with its MDP passed by reference (pickle's persistent ids):
    TabularMDP does not pickle yet (another change makes it), so what is tested here is the
    Solution's own state: everything but the MDP goes through pickle."""
    mdps = []

    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, cai.TabularMDP):
                mdps.append(o)
                return len(mdps) - 1
            return None

    class U(pickle.Unpickler):
        def persistent_load(self, pid):
            return mdps[pid]

    buf = io.BytesIO()
    P(buf).dump(obj)
    assert mdps, "the MDP should have been met"
    return U(io.BytesIO(buf.getvalue())).load()


@pytest.mark.parametrize("solver,kw", [
    ("backward_messages", {"keep": "values"}),
    ("backward_messages", {}),
    ("soft_value_iteration", {"keep": "first"}),
    ("value_iteration", {}),
])
@pytest.mark.parametrize("horizon", [3, None])
def test_pickle_round_trip(solver, kw, horizon):
    mdp = random_mdp(5, 3, 2, seed=2, horizon=horizon, discount=None if horizon else 0.8)
    if horizon is None:   # rewards <= -2: a finite stationary evidence (spectral radius < 1) at alpha 0.6
        mdp = mdp.replace(rewards=mdp.rewards - mdp.rewards.max() - 2)
    sol = getattr(cai, solver)(mdp, **kw) if solver == "value_iteration" else getattr(cai, solver)(mdp, 0.6, **kw)
    back = _round_trip(sol)
    assert type(back) is cai.Solution and back.method == sol.method and back.method in METHODS
    for name in ("V", "Q", "policy", "log_policy", "value"):
        torch.testing.assert_close(getattr(back, name), getattr(sol, name), rtol=0, atol=0)
    if sol.log_evidence is not None:
        assert float(back.log_evidence) == float(sol.log_evidence)
    t = None if horizon is None else horizon - 1
    torch.testing.assert_close(back.q_at(t), sol.q_at(t), rtol=0, atol=0)
    assert (back.iterations, back.residual) == (sol.iterations, sol.residual)
    with pytest.raises(AttributeError):
        back.V = None                     # still immutable after unpickling
    # an unpickled exact solution still feeds the forward messages of its (unpickled) MDP
    if solver == "backward_messages" and horizon is not None:
        fm = cai.forward_messages(back.mdp, back)
        torch.testing.assert_close(fm.state, cai.forward_messages(mdp, sol).state, rtol=0, atol=0)


def test_unknown_method_is_refused():
    from cai.ops.backup import EXPECTATION
    from cai.ops.recursion import backward
    from cai.solution import Solution

    mdp = chain(3)
    a = torch.tensor(1.0, dtype=torch.float64)
    agg = lambda Q, t: cai.ops.soft_max(Q, a, None)  # noqa: E731
    rec = backward(mdp, a, EXPECTATION, agg)
    with pytest.raises(ValueError, match="method"):
        Solution(rec, mdp, a, EXPECTATION, agg, "soft-vi", None)


def test_plain_pickle_with_its_mdp():
    mdp = random_mdp(4, 2, 2, seed=3, horizon=3)
    sol = cai.backward_messages(mdp, 1.0, keep="values")
    back = pickle.loads(pickle.dumps(sol))
    torch.testing.assert_close(back.policy, sol.policy, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# keep="V0": V_0 and the evidence alone, in memory independent of the horizon


def _stored_numel(sol) -> int:
    """Elements of every tensor the solution holds, its MDP, temperature and prior aside (and
    of the recursion record it keeps)."""
    skip = {"mdp", "alpha", "log_prior"}
    held = [v for k, v in sol.__dict__.items() if k not in skip and isinstance(v, torch.Tensor)]
    rec = sol.__dict__["_rec"]
    held += [t for lst in (rec.V, rec.Q, rec.log_policy) for t in lst if t is not None]
    return sum({t.data_ptr(): t.untyped_storage().nbytes() // t.element_size() for t in held}.values())


@pytest.mark.parametrize("layout", ["sa", "tsa"])
def test_keep_v0_gives_the_evidence_and_elbo_and_nothing_that_grows_with_t(layout):
    import numpy as np

    from tests.common import brute_force, random_tiny_mdp

    rng = np.random.default_rng(3)
    d, mdp = random_tiny_mdp(rng, 3, 2, 4, discount=0.9, layout=layout, forbid=layout == "sa")
    alphas = torch.tensor([0.4, 1.0, 2.5], dtype=torch.float64)
    sol = cai.backward_messages(mdp, alphas, keep="V0")
    assert sol.first_value_only
    for i, a in enumerate(alphas.tolist()):     # the evidence against enumerating every path
        assert sol.log_evidence[i].item() == pytest.approx(brute_force(d, a)["log_evidence"], abs=1e-10)
    full = cai.backward_messages(mdp, alphas)
    torch.testing.assert_close(sol.V0, full.V0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sol.value, full.value, rtol=1e-12, atol=1e-12)
    vi, vi_full = cai.soft_value_iteration(mdp, alphas, keep="V0"), cai.soft_value_iteration(mdp, alphas)
    torch.testing.assert_close(vi.max_elbo, vi_full.max_elbo, rtol=1e-12, atol=1e-12)
    # what is stored: V_0 and the evidence, (3, S) + (3,), whatever the horizon
    S = mdp.n_states
    for T in (2, 40):
        long = mdp.replace(horizon=T, rewards=mdp.rewards[:1].expand(T, S, 2) if layout == "tsa" else mdp.rewards)
        assert _stored_numel(cai.backward_messages(long, alphas, keep="V0")) == 3 * S + 3
        assert _stored_numel(cai.soft_value_iteration(long, alphas, keep="V0")) == 3 * S
    assert _stored_numel(cai.backward_messages(long, alphas, keep="values")) >= 3 * S * 41


def test_keep_v0_says_what_is_missing_and_travels():
    mdp = random_mdp(5, 3, 2, seed=2, horizon=6)
    sol = cai.backward_messages(mdp, 0.7, keep="V0")
    for get in (lambda: sol.V, lambda: sol.Q, lambda: sol.policy, lambda: sol.log_policy,
                lambda: sol.q_at(0), lambda: sol.policy_at(1)):
        with pytest.raises(AttributeError, match="keep='V0'"):
            get()
    with pytest.raises(AttributeError, match="no attribute 'W'"):
        _ = sol.W
    assert "V0=(5,)" in repr(sol)
    back = pickle.loads(pickle.dumps(sol))
    assert torch.equal(back.V0, sol.V0) and torch.equal(back.log_evidence, sol.log_evidence)
    assert back.first_value_only
    with pytest.raises(ValueError, match="keep: expected one of"):
        cai.soft_value_iteration(mdp, 1.0, keep="V_0")


def test_keep_v0_saves_and_loads(tmp_path):
    mdp = random_mdp(4, 2, 2, seed=5, horizon=3)
    sol = cai.soft_value_iteration(mdp, torch.tensor([0.5, 2.0], dtype=torch.float64), keep="V0")
    back = cai.Solution.load(sol.save(tmp_path / "v0"))
    assert back.first_value_only and torch.equal(back.V0, sol.V0) and torch.equal(back.max_elbo, sol.max_elbo)


def test_keep_v0_on_a_stationary_problem_is_keep_values():
    mdp = random_mdp(4, 2, 2, seed=6, horizon=None, discount=0.8)
    a, b = cai.soft_value_iteration(mdp, 1.0, keep="V0"), cai.soft_value_iteration(mdp, 1.0, keep="values")
    assert not a.first_value_only and torch.equal(a.V, b.V) and torch.equal(a.policy, b.policy)
