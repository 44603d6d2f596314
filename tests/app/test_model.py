"""The explorer's pure model against brute-force enumeration of every trajectory of a tiny grid."""
import json
import math

import numpy as np
import pytest
import torch

from cai.app.model import (
    BRUSHES,
    Controls,
    GridWorldSpec,
    check_controls,
    check_layout,
    edit_layout,
    solve,
    spec_from_mdp,
)
from cai.worlds.builders import gridworld
from cai.worlds.registry import make_world
from tests.common import _lse, brute_elbo, brute_force, enumerate_paths

TINY = "S.L\n..G"


def _d(mdp):
    """The dict the brute-force references of tests/common.py enumerate."""
    P = mdp.transitions.detach().cpu().numpy().reshape(mdp.n_states, mdp.n_actions, mdp.n_states)
    r = mdp.reward_at(0).detach().cpu().numpy()
    return dict(P=P, r=r, rT=np.zeros(mdp.n_states), p0=mdp.initial.numpy(), T=mdp.horizon, gamma=1.0, layout="sa")


@pytest.fixture(scope="module")
def tiny():
    spec = GridWorldSpec(TINY, step_cost=-1.0, goal_reward=5.0, lava_reward=-4.0, name="tiny")
    controls = Controls(alpha=0.7, slip=0.2, horizon=3)
    return spec, controls, solve(spec, controls), spec.build(controls)


def test_numbers_match_brute_force(tiny):
    spec, c, frame, mdp = tiny
    d = _d(mdp)
    ref = brute_force(d, c.alpha)
    assert frame.log_evidence == pytest.approx(ref["log_evidence"], abs=1e-10)
    np.testing.assert_allclose(frame.methods["exact"].marginals, ref["state"], atol=1e-10)
    lava = mdp.metadata["lava"]
    # P(lava) with each method's policy in the real dynamics, and under the posterior itself: in lava
    # at some t < T (lava reached at T is not a fall the objective sees: its penalty would come
    # with the next action, beyond the horizon; cai.report.lava_probability)
    paths = list(enumerate_paths(d))
    logs = [lw + R / c.alpha for lw, _, R, *_ in paths]
    logZ = _lse(logs)
    post = sum(math.exp(lg - logZ) for (_, _, _, states, *_), lg in zip(paths, logs) if set(states[:-1]) & set(lava))
    assert frame.p_lava_posterior == pytest.approx(post, abs=1e-10)
    assert 0 < post < 1e-3                          # the posterior controls its luck: it (almost) never falls
    assert 0.01 < frame.methods["exact"].p_lava < 0.99               # its policy in the real dynamics does
    for m, res in frame.methods.items():
        pol = res.policy
        p_lava = sum(math.exp(lq) for _, lq, _, states, *_ in enumerate_paths(d, policy=pol)
                     if lq > -math.inf and set(states[:-1]) & set(lava))
        assert res.p_lava == pytest.approx(p_lava, abs=1e-10), m
        assert res.elbo == pytest.approx(brute_elbo(d, pol, c.alpha)[0], abs=1e-9), m
    # the maximal ELBO is soft VI's policy's ELBO, and no policy beats it; the gap is >= 0
    assert frame.max_elbo == pytest.approx(brute_elbo(d, frame.methods["soft"].policy, c.alpha)[0], abs=1e-9)
    assert frame.methods["exact"].elbo < frame.max_elbo
    assert frame.gap > 1e-3                                           # slip: exact inference is optimistic


def test_hard_value_closed_form():
    # deterministic corridor S . G with step cost -1, goal 10: two steps then the goal's reward
    frame = solve(GridWorldSpec("S.G"), Controls(alpha=0.5, slip=0.0, horizon=3))
    assert frame.methods["hard"].value == pytest.approx(-1 - 1 + 10, abs=1e-12)
    # deterministic dynamics: exact inference = soft VI, so the gap is 0
    assert frame.gap == pytest.approx(0.0, abs=1e-10)
    assert frame.methods["hard"].p_lava == 0.0


def test_to_json_is_what_the_page_draws(tiny):
    spec, c, frame, mdp = tiny
    rec = json.loads(json.dumps(frame.to_json(), allow_nan=False))
    assert rec["rows"] == ["S.L", "..G"]
    assert rec["cells"] == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]   # the exit state is not drawn
    for m in ("exact", "soft", "hard"):
        assert np.asarray(rec["methods"][m]["V"]).shape == (4, 6)
        assert np.asarray(rec["methods"][m]["policy"]).shape == (3, 6, 4)
        np.testing.assert_allclose(rec["methods"][m]["V"], frame.methods[m].V[:, :6], atol=0.005)
        assert float(f"{frame.methods[m].p_lava:.6g}") == rec["numbers"][f"p_lava_{m}"]
    assert rec["numbers"]["log_evidence"] == float(f"{frame.log_evidence:.6g}")
    assert set(rec["definitions"]) >= {"log_evidence", "max_elbo", "gap", "p_lava", "elbo", "value"}


@pytest.mark.parametrize("layout, match", [
    ("..L\n..G", "start"),
    ("S.X\n..G", "unknown cell 'X'"),
    ("S.#\n.#G", "reachable"),
    ("SL.\nL.G", "reachable"),            # lava ends the episode before the goal
    ("S..\n...", "goal"),
    ("S..\n..", "row 1"),
])
def test_bad_layouts_are_named(layout, match):
    with pytest.raises(ValueError, match=match):
        check_layout(layout)
    with pytest.raises(ValueError, match="layout"):
        solve(GridWorldSpec(layout), Controls())


@pytest.mark.parametrize("controls, match", [
    (Controls(alpha=0.0), "alpha"), (Controls(alpha=float("nan")), "alpha"), (Controls(alpha=1e3), "alpha"),
    (Controls(alpha="x"), "alpha"), (Controls(slip=1.0), "slip"), (Controls(slip=-0.1), "slip"),
    (Controls(horizon=0), "horizon"), (Controls(horizon=2.5), "horizon"), (Controls(horizon=True), "horizon"),
])
def test_bad_controls_are_named(controls, match):
    with pytest.raises(ValueError, match=match):
        check_controls(controls)


def test_edit_layout():
    assert edit_layout(TINY, 1, 0, "wall") == "S.L\n#.G"
    assert edit_layout(TINY, 0, 0, "free") == "..L\n..G"        # the caller's check refuses it
    for brush, ch in BRUSHES.items():
        assert edit_layout(TINY, 1, 1, brush).splitlines()[1][1] == ch
    with pytest.raises(ValueError, match="brush"):
        edit_layout(TINY, 0, 0, "water")
    with pytest.raises(ValueError, match="cell"):
        edit_layout(TINY, 2, 0, "wall")


@pytest.mark.parametrize("name", ["demo", "cliff", "two-route", "square"])
def test_spec_from_mdp_rebuilds_the_registry_world(name):
    mdp = make_world(name)
    spec, c = spec_from_mdp(mdp, name)
    again = spec.build(c)
    assert torch.equal(again.transitions, mdp.transitions)
    assert torch.equal(again.reward_at(0), mdp.reward_at(0))
    assert again.horizon == mdp.horizon


def test_spec_from_mdp_refuses_non_grids():
    with pytest.raises(ValueError, match="grid"):
        spec_from_mdp(make_world("chain"))
    with pytest.raises(ValueError, match="horizon"):
        spec_from_mdp(gridworld(TINY, horizon=None, discount=0.9))
    with pytest.raises(TypeError, match="mdp"):
        spec_from_mdp("cliff")
