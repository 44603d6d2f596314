"""Figures of cai.viz.why: they draw what the solvers return, and reject bad input."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cai  # noqa: E402
import cai.worlds  # noqa: E402
from cai.viz import why  # noqa: E402
from tests.common import assert_png  # noqa: E402


def test_policy_iteration_progress(tmp_path):
    mdp = cai.worlds.chain(5, horizon=6)
    ax = why.policy_iteration_progress(mdp, 0.5)
    y = ax.lines[0].get_ydata()
    assert np.all(np.diff(y) >= -1e-12)
    assert y[-1] == pytest.approx(float(cai.soft_value_iteration(mdp, 0.5).value), abs=1e-10)
    assert_png(ax, tmp_path / "pi.png")


def test_tie_breaking(tmp_path):
    mdp = cai.worlds.two_route()
    s = mdp.metadata["start"][0]
    ax = why.tie_breaking(mdp, s, [0, 2], alphas=[0.05, 0.5, 2.0])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ax.lines[3].get_ydata(), atol=1e-12)
    assert ax.lines[0].get_ydata()[0] == pytest.approx(0.5, abs=1e-8)
    assert_png(ax, tmp_path / "tie.png")
    with pytest.raises(ValueError, match="alphas"):
        why.tie_breaking(mdp, s, [0], alphas=[-1.0])


def test_myopic_vs_maxent(tmp_path):
    mdp = cai.worlds.options_fork(4)
    ax = why.myopic_vs_maxent(mdp, 0, 1, alphas=[0.1, 1.0, 10.0])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 0.8, atol=1e-12)     # n / (n + 1), c = 0
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 0.5, atol=1e-12)
    assert_png(ax, tmp_path / "myopic.png")


def test_temperature_dual(tmp_path):
    mdp = cai.worlds.random_mdp(8, 3, 2, seed=0, horizon=5)
    ax = why.temperature_dual(mdp, 0.6, alphas=[0.1, 1.0, 10.0])
    assert ax.lines[-1].get_ydata()[-1] == pytest.approx(0.6, abs=1e-8)
    assert_png(ax, tmp_path / "dual.png")


def test_robust_reward_curve(tmp_path):
    mdp = cai.worlds.random_mdp(8, 3, 2, seed=0, horizon=5)
    ax = why.robust_reward_curve(mdp, beta=0.5, alphas=[0.1, 0.5, 2.0])
    y = ax.lines[0].get_ydata()
    assert y[1] > max(y[0], y[2]) and y[1] > ax.lines[1].get_ydata()[0]
    assert_png(ax, tmp_path / "robust.png")


def test_dynamics_robustness(tmp_path):
    from cai.why import perturb_cell

    mdp = cai.worlds.square(5, lava=False, horizon=12)
    ax = why.dynamics_robustness(mdp, perturb_cell(mdp, (0, 2)), alphas=[0.05, 0.5])
    assert ax.lines[2].get_ydata()[0] == pytest.approx(-12.0)
    assert "wall" in ax.get_title()
    assert_png(ax, tmp_path / "dyn.png")


def test_first_hit_survival(tmp_path):
    from cai.why import first_hit_times
    mdp = cai.worlds.chain(5, horizon=10)
    rs = [first_hit_times(mdp, m, budget=60, seeds=range(6), n_boot=20) for m in ("soft_q", "epsilon_greedy")]
    ax = why.first_hit_survival(rs)
    for line, r in zip(ax.lines, rs):
        y = line.get_ydata()
        assert y[0] == 1.0 and np.all(np.diff(y) <= 0)
        # the curve ends at the fraction that never found it (Kaplan-Meier without earlier censoring)
        assert y[-1] == pytest.approx(1.0 - r.fraction_found, abs=1e-12)
        assert line.get_xdata()[-1] == 60
    assert ax.get_xlim()[0] == 0 and "transitions" in ax.get_xlabel()    # no negative sample counts on the axis
    assert_png(ax, tmp_path / "hit.png")
    with pytest.raises(ValueError, match="labels"):
        why.first_hit_survival(rs, labels=["a"])


def test_finetune_survival(tmp_path):
    from cai.why import FinetuneTimes
    from cai.why.exploration import FirstHitTimes
    # hand-made results (no learner run): seeds reaching the target at 24, 48, 48; one censored at 96
    t, f = np.array([24, 48, 48, 96]), np.array([True, True, True, False])
    hits = FirstHitTimes("soft", t, f, 96, 0.75, (0.3, 0.95), 48.0, (24.0, 96.0))
    r = FinetuneTimes("soft", hits, 0.6, 2.0, -12.0, -12.0)
    ax = why.finetune_survival([r])
    y = ax.lines[0].get_ydata()
    np.testing.assert_allclose(y, [1.0, 0.75, 0.25, 0.25], atol=1e-12)      # Kaplan-Meier by hand
    assert ax.get_legend().get_texts()[0].get_text() == "soft start (reached it in 75% of 4)" and "target" in ax.get_ylabel()
    assert_png(ax, tmp_path / "ft.png")
    with pytest.raises(ValueError, match="results"):
        why.finetune_survival([])
    with pytest.raises(ValueError, match="one target return"):
        why.finetune_survival([r, FinetuneTimes("hard", hits, 0.9, 2.0, -12.0, -12.0)])


def test_meta_pomdp_episodes(tmp_path):
    from cai.why import maxent_meta_policy

    mdp = cai.worlds.goal_lattice(3)
    goals, p = mdp.metadata["goals"], [0.5, 0.3, 0.15, 0.05]
    ax = why.meta_pomdp_episodes(mdp, goals, p, alphas=[1.0, 1.5, 2.0, 3.0])
    y = ax.lines[0].get_ydata()
    assert int(np.argmin(y)) == 2 and y[2] == pytest.approx((np.sqrt(p).sum()) ** 2, rel=1e-12)
    assert y[0] == pytest.approx(4.0, abs=1e-10)                       # probability matching: K goals
    assert y[3] == pytest.approx(float(maxent_meta_policy(mdp, goals, p, 3.0, scale=1.0).episodes), rel=1e-14)
    # the solid curve's label names the reward it was computed with (the path-count term included)
    assert r"\alpha \log w(g)" in ax.get_legend().get_texts()[0].get_text()
    raw = why.meta_pomdp_episodes(mdp, goals, p, alphas=[1.0, 2.0], correct_paths=False)
    assert "w(g)" not in raw.get_legend().get_texts()[0].get_text()
    assert_png(ax, tmp_path / "meta.png")
    with pytest.raises(ValueError, match="alphas"):
        why.meta_pomdp_episodes(mdp, goals, p, alphas=[0.0])
