"""Property-based tests: the docs/design.md §2.4 invariants on random MDPs drawn by hypothesis."""
import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cai
from tests.common import brute_force, random_tiny_mdp

mdps = st.fixed_dictionaries({
    "seed": st.integers(0, 2 ** 31 - 1),
    "S": st.integers(1, 3),
    "A": st.integers(1, 3),
    "T": st.integers(1, 3),
    "discount": st.sampled_from([None, 0.5, 0.95]),
    "alpha": st.floats(0.05, 5.0),
    "scale": st.sampled_from([0.1, 1.0, 10.0]),
    "layout": st.sampled_from(["sa", "tsa", "sas"]),
    "deterministic": st.booleans(),
    "prior": st.booleans(),
})


def _build(p):
    rng = np.random.default_rng(p["seed"])
    d, mdp = random_tiny_mdp(rng, p["S"], p["A"], p["T"], discount=p["discount"], layout=p["layout"],
                             deterministic=p["deterministic"], scale=p["scale"])
    prior = None
    if p["prior"]:
        prior = rng.random((p["S"], p["A"])) + 0.05
        prior /= prior.sum(-1, keepdims=True)
    return d, mdp, prior


@settings(max_examples=60, deadline=None)
@given(mdps)
def test_invariants(p):
    d, mdp, prior = _build(p)
    alpha = p["alpha"]
    ex = cai.backward_messages(mdp, alpha, prior)
    sv = cai.soft_value_iteration(mdp, alpha, prior)
    tol = 1e-9 * max(1.0, p["scale"] * (p["T"] + 1))
    # policies are distributions
    for pol in (ex.policy, sv.policy):
        assert torch.all(pol >= 0)
        torch.testing.assert_close(pol.sum(-1), torch.ones_like(pol.sum(-1)), atol=1e-12, rtol=0)
    # exact is optimistic; the max ELBO is below the evidence, and the soft-VI policy attains it
    assert torch.all(sv.V - tol <= ex.V)
    assert sv.max_elbo.item() <= ex.log_evidence.item() + tol / alpha
    assert math.isclose(cai.elbo(mdp, sv.policy, alpha, prior).item(), sv.max_elbo.item(),
                        abs_tol=tol / alpha, rel_tol=1e-10)
    # brute force agrees on the evidence
    bf = brute_force(d, alpha, prior)
    assert math.isclose(ex.log_evidence.item(), bf["log_evidence"], abs_tol=1e-9, rel_tol=1e-11)
    # deterministic dynamics without death: exact and soft coincide
    if p["deterministic"] and p["discount"] is None:
        torch.testing.assert_close(ex.V, sv.V, atol=tol, rtol=1e-10)
    # 0 <= V_soft - V_hard <= alpha log|A| (steps to go) with the counting prior
    if prior is None:
        hard = cai.value_iteration(mdp)
        steps = torch.arange(p["T"], -1, -1, dtype=torch.float64).unsqueeze(-1)
        diff = sv.V - hard.V
        assert torch.all(diff >= -tol)
        assert torch.all(diff <= alpha * math.log(p["A"]) * steps + tol)
