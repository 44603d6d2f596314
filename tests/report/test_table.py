"""The inference-vs-DP table (`cai compare`, `cai demo`): every number against a direct computation."""
import math

import pytest
import torch

import cai
from cai.dp.visitation import policy_marginals
from cai.mdp.tabular import absorbing_states, uniform_action_prior
from cai.report.compare import compare_inference
from cai.report.table import (
    InferenceTable,
    Measure,
    choiceless_states,
    inference_table,
    policy_tv,
    resolve_action_prior,
)
from cai.worlds.builders import gridworld, square_layout
from cai.worlds.registry import make_world


def test_cliff_soft_minus_hard_value_is_the_p0_weighted_gap():
    m = make_world("cliff")                                   # deterministic, T = 30, alpha = 1
    table = inference_table(m, 1.0, repeats=1)
    assert isinstance(table, InferenceTable) and table.action_prior == "counting"
    soft, hard = cai.soft_value_iteration(m, 1.0), cai.value_iteration(m)
    expected = float((m.initial * (soft.V[0] - hard.V[0])).sum())
    assert table.measure("soft - hard value") == pytest.approx(expected, abs=1e-9)
    # the old artefact: four actions in the exit paid alpha * log 4 per step, T alpha log|A| = 41.59
    assert abs(table.measure("soft - hard value") - 30 * math.log(4)) > 1.0
    # deterministic dynamics: exact inference is soft VI (evidence = max ELBO, same values)
    assert abs(table.measure("log p(O) - max ELBO")) < 1e-9 and abs(table.measure("exact - soft value")) < 1e-9
    assert table.rows[0].value == pytest.approx(float(cai.backward_messages(m, 1.0).value), abs=1e-12)
    assert table.rows[2].value == pytest.approx(float(hard.value), abs=1e-12) and table.rows[2].evidence is None


def test_soft_vs_hard_distance_vanishes_with_one_optimal_route():
    # the cliff at slip 0 has one shortest route (up, eight rights along the edge, down): as alpha -> 0
    # the soft policy follows it, and the distance weighted by where the soft policy goes is 0
    m = make_world("cliff")
    cold = inference_table(m, 1e-3, repeats=1).measure("policy TV soft vs hard")
    assert 0.0 <= cold < 1e-6
    # ... while at alpha = 1 the two policies differ where the agent is (the same measure can fail)
    assert inference_table(m, 1.0, repeats=1).measure("policy TV soft vs hard") > 0.1
    # the unweighted mean over every (t, s) (the old number) stays far from 0: ties in states never visited
    soft, hard = cai.soft_value_iteration(m, 1e-3), cai.value_iteration(m)
    assert float((0.5 * (soft.policy - hard.policy).abs().sum(-1)).mean()) > 1e-2


def test_exact_vs_soft_distance_by_hand_on_the_slippery_cliff():
    m = make_world("demo", horizon=8)                          # slip 0.1: the policies differ
    table = inference_table(m, 1.0, repeats=1)
    ex, sv = cai.backward_messages(m, 1.0), cai.soft_value_iteration(m, 1.0)
    post = cai.forward_messages(m, ex).state
    # left out: the cells with nothing to choose, goal and lava (one action each) and the exit
    skip = set(m.metadata["goals"] + m.metadata["lava"] + [m.n_states - 1])
    num = den = 0.0
    for t in range(8):
        for s in range(m.n_states):
            if s in skip:
                continue
            tv = 0.5 * sum(abs(float(ex.policy[t, s, a] - sv.policy[t, s, a])) for a in range(m.n_actions))
            num += float(post[t, s]) * tv
            den += float(post[t, s])
    assert table.measure("policy TV exact vs soft") == pytest.approx(num / den, rel=1e-12)
    assert table.measure("policy TV exact vs soft") > 1e-3
    assert table.measure("log p(O) - max ELBO") == pytest.approx(float(ex.log_evidence - sv.max_elbo), abs=1e-12)
    assert table.measure("log p(O) - max ELBO") > 0


def test_stationary_default_is_the_uniform_prior_and_matches_the_linear_solve():
    m = make_world("cliff", horizon=None, discount=0.95)
    table = inference_table(m, 1.0, repeats=1)
    assert table.action_prior == "uniform" and not any(r.diverged for r in table.rows)
    rho = uniform_action_prior(m)
    lin = cai.backward_messages(m, 1.0, rho, method="linear")  # a direct solve of z = M z + b
    assert table.rows[0].value == pytest.approx(float(lin.value), rel=1e-9)
    assert "action prior: uniform" in str(table)
    counting = inference_table(m, 1.0, "counting", repeats=1)
    assert counting.rows[0].diverged and counting.measure("log p(O) - max ELBO") is None
    assert "diverges" in str(counting) and "action prior: counting" in str(counting)


def test_every_number_is_defined_in_one_line():
    table = inference_table(make_world("two-route", horizon=6), 0.5, repeats=1)
    table = table.with_measures(Measure("extra", 1.5, "extra: a number the caller adds, units"))
    text = str(table).splitlines()
    assert text[1].startswith("action prior: counting")
    for k, m in enumerate(table.measures, 1):
        assert sum(ln.strip().startswith(f"[{k}] {m.label}") for ln in text) == 2     # the row and its definition
        assert any(ln.strip() == f"[{k}] {m.definition}" for ln in text)


def test_compare_inference_rows_use_the_same_weighted_tv():
    mdp = gridworld(square_layout(3), slip=0.2, horizon=4)
    rep = compare_inference(mdp, 1.0, methods=(), pyro_evidence=False)
    ex, sv = cai.backward_messages(mdp, 1.0), cai.soft_value_iteration(mdp, 1.0)
    w = policy_marginals(mdp, sv.policy).state
    expected = policy_tv(ex.policy, sv.policy, w, skip=choiceless_states(mdp))
    assert rep.rows[0].policy_tv == pytest.approx(expected, abs=1e-12) and rep.rows[0].policy_tv > 0
    assert rep.action_prior == "counting" and "action prior: counting" in str(rep)


def test_choiceless_states_of_a_grid():
    m = make_world("cliff")
    expected = sorted(m.metadata["goals"] + m.metadata["lava"] + [m.n_states - 1])
    assert choiceless_states(m).nonzero().flatten().tolist() == expected
    assert absorbing_states(m).nonzero().flatten().tolist() == [m.n_states - 1]


def test_bad_input():
    m = make_world("chain")
    with pytest.raises(ValueError, match="action_prior: expected 'auto'"):
        inference_table(m, 1.0, "flat")
    with pytest.raises(ValueError, match="action_prior"):
        resolve_action_prior(m, torch.ones(3))
    with pytest.raises(TypeError, match="mdp: expected a cai.TabularMDP"):
        inference_table("chain")
    with pytest.raises(ValueError, match="alpha"):
        inference_table(m, -1.0)
    with pytest.raises(ValueError, match="repeats"):
        inference_table(m, 1.0, repeats=0)
    assert resolve_action_prior(m, None) == (None, "counting")
    prior, name = resolve_action_prior(m, [0.25, 0.75])
    assert name == "custom" and prior.shape == (6, 2)
