"""The Panel view without a browser: each action re-solves with cai, or shows a message and keeps
the previous state."""
import json

import pytest

pytest.importorskip("panel", reason="the explorer's view needs cai[app] (Panel)")

import cai  # noqa: E402
from cai.app import explore  # noqa: E402
from cai.app.view import Explorer  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402
from cai.worlds.registry import make_world  # noqa: E402

LAYOUT = "S...\n.L..\n...G"


@pytest.fixture
def ex():
    return Explorer(gridworld(LAYOUT, horizon=6), name="small")


def test_notebook_entry_returns_a_panel_object():
    import panel as pn

    assert isinstance(explore(gridworld(LAYOUT, horizon=4)), pn.viewable.Viewable)


def test_click_and_slider_resolve_with_cai(ex):
    ex.brush.value = "wall"
    assert ex.click(0, 1)
    assert ex.spec.layout == "S#..\n.L..\n...G"
    assert ex.set_controls(alpha=2.5, slip=0.1)
    mdp = gridworld("S#..\n.L..\n...G", slip=0.1, horizon=6)
    ref = cai.backward_messages(mdp, alpha=2.5)
    assert ex.frame.log_evidence == pytest.approx(float(ref.log_evidence), abs=1e-12)
    rec = json.loads(ex.canvas.record)
    assert rec["numbers"]["log_evidence"] == float(f"{float(ref.log_evidence):.6g}")
    assert rec["numbers"]["max_elbo"] == float(f"{float(cai.soft_value_iteration(mdp, alpha=2.5).max_elbo):.6g}")
    assert ex.message == "" and not ex.alert.visible


@pytest.mark.parametrize("action, match", [
    (lambda e: (setattr(e.brush, "value", "free"), e.click(0, 0))[1], "start"),          # paints over the start
    (lambda e: (setattr(e.brush, "value", "wall"), e.click(1, 3), e.click(2, 2))[2], "reachable"),
    (lambda e: e.set_layout("S..\n.X.\n..G"), "unknown cell 'X'"),
    (lambda e: e.set_controls(alpha=1e4), "alpha"),
    (lambda e: e.type_alpha("-3"), "alpha"),
    (lambda e: e.type_alpha("warm"), "alpha"),
    (lambda e: e.set_controls(slip=1.5), "slip"),
    (lambda e: e.set_controls(horizon=0), "horizon"),
    (lambda e: e.click(7, 7), "cell"),
])
def test_bad_input_shows_a_message_and_keeps_the_state(ex, action, match):
    ex.set_controls(alpha=0.5)
    before_spec, before_frame = ex.spec, ex.frame
    record = ex.canvas.record
    assert action(ex) is False
    assert match in ex.message and ex.alert.visible and match in ex.alert.object
    if match != "reachable":                  # the first wall of that case was valid and kept
        assert ex.spec is before_spec and ex.frame is before_frame and ex.canvas.record is record
    assert ex.controls.alpha == 0.5 and ex.alpha.value == pytest.approx(-0.3, abs=0.01) and ex.alpha_text.value == "0.5"
    assert ex.set_controls(alpha=1.0)         # and it goes on working
    assert ex.message == "" and not ex.alert.visible


def test_load_world_takes_its_rewards_slip_and_horizon(ex):
    assert ex.load_world("cliff")
    assert ex.spec.goal_reward == 100.0 and ex.controls.horizon == make_world("cliff").horizon
    assert ex.horizon.value == ex.controls.horizon and ex.t.end == ex.controls.horizon
    assert not ex.load_world("frozenlake")
    assert "world" in ex.message


def test_time_and_methods_only_redraw(ex):
    record = ex.canvas.record
    ex.t.value = 3
    ex.methods.value = ["exact", "hard"]
    assert ex.canvas.t == 3 and ex.canvas.methods == ["exact", "hard"] and ex.canvas.record is record


def test_benchmark_smoke(capsys):
    """benchmarks/bench_explorer.py runs (its timings are recorded in benchmarks/README.md, not asserted)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_explorer.py"
    spec = importlib.util.spec_from_file_location("bench_explorer", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick"]) == 0
    assert "alpha slider" in capsys.readouterr().out


def test_top_level_explore_and_custom_world_label():
    import panel as pn

    assert cai.explore is explore
    ex = Explorer(make_world("square"), name="square")
    assert ex.world.value == "square"
    ex.brush.value = "wall"
    assert ex.click(1, 1)
    assert ex.world.value == "(custom layout)" and ex.spec.layout.splitlines()[1][1] == "#"
    assert isinstance(ex.panel(), pn.viewable.Viewable)


def test_typed_alpha_moves_the_slider(ex):
    ex.alpha_text.value = "0.25"
    assert ex.controls.alpha == 0.25 and ex.alpha.value == pytest.approx(-0.6, abs=0.01)
    assert ex.frame.log_evidence == pytest.approx(
        float(cai.backward_messages(gridworld(LAYOUT, horizon=6), alpha=0.25).log_evidence), abs=1e-12)
