"""Every figure renders to a non-empty PNG; the temperature sweep's numbers are right."""
import matplotlib

matplotlib.use("Agg")

from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import cai  # noqa: E402
from cai import viz  # noqa: E402
from cai.report.sweeps import sweep_temperature  # noqa: E402
from cai.worlds import CLIFF_LAYOUT, chain, gridworld, lottery, two_route  # noqa: E402
from tests.common import assert_png  # noqa: E402


@pytest.fixture(scope="module")
def solved():
    m = gridworld(CLIFF_LAYOUT, slip=0.1, horizon=8)
    ex = cai.backward_messages(m, alpha=1.0)
    sv = cai.soft_value_iteration(m, alpha=1.0)
    return m, ex, sv, cai.forward_messages(m, ex)


def _png(fig, path):
    return assert_png(fig, path, dpi=50)


def test_value_and_q_heatmaps(solved, tmp_path):
    m, ex, sv, _ = solved
    _png(viz.value_heatmap(m, ex, title="V").figure, tmp_path / "v.png")
    _png(viz.value_heatmap(m, sv.V[3], annotate=False).figure, tmp_path / "v3.png")
    _png(viz.value_heatmap(lottery(), cai.soft_value_iteration(lottery()).V[0]).figure, tmp_path / "bar.png")
    _png(viz.soft_q_heatmap(m, sv, t=2).figure, tmp_path / "q.png")
    fig, ax = plt.subplots()
    assert viz.value_heatmap(m, ex, ax=ax) is ax                     # takes and returns the Axes


def test_value_heatmap_places_values_in_their_cells(solved):
    m, ex, _, _ = solved
    ax = viz.value_heatmap(m, ex, annotate=False, colorbar=False)
    img = ax.images[0].get_array()
    for s, (r, c) in enumerate(m.metadata["coords"]):
        if r >= 0:
            assert float(img[r, c]) == pytest.approx(float(ex.V[0, s]))
    plt.close(ax.figure)


def test_policy_arrows_lengths_follow_probabilities(solved, tmp_path):
    m, _, sv, _ = solved
    ax = viz.policy_arrows(m, sv, background=sv, scale=0.4, min_prob=0.0)
    arrows = [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]
    lengths = np.array([np.hypot(*(np.asarray(t.xy) - np.asarray(t.xyann))) for t in arrows])
    pi0 = sv.policy[0].numpy()
    skip = set(m.metadata["goals"]) | set(m.metadata["lava"])
    expected = [0.4 * pi0[s, a] for s, (r, c) in enumerate(m.metadata["coords"])
                if r >= 0 and s not in skip for a in range(4)]
    np.testing.assert_allclose(np.sort(lengths), np.sort(expected), rtol=1e-12, atol=1e-15)
    _png(ax.figure, tmp_path / "pi.png")


def test_state_marginals_and_gif(solved, tmp_path):
    m, _, _, fm = solved
    axes = viz.state_marginals(m, fm, title="p(s_t | O)")
    assert len(axes) >= 2
    _png(axes[0].figure, tmp_path / "marg.png")
    axes = viz.state_marginals(chain(5), torch.full((4, 5), 0.2), times=[0, 3])
    _png(axes[0].figure, tmp_path / "marg_chain.png")
    pytest.importorskip("PIL")
    path = viz.marginals_animation(m, fm, tmp_path / "m.gif", fps=4)
    data = Path(path).read_bytes()
    assert data[:6] in (b"GIF89a", b"GIF87a") and len(data) > 1000
    with pytest.raises(ValueError, match="times"):
        viz.state_marginals(m, fm, times=[99])


def test_state_marginals_cover_the_horizon_with_one_colour_bar():
    # horizon 30: the default panels run from t = 0 to the last step with at least 5% of the
    # probability on the grid (the last step t = 30 when it has), evenly spaced
    from cai.viz.marginals import MIN_ON_GRID

    m = gridworld(CLIFF_LAYOUT, slip=0.1, horizon=30)
    fm = cai.forward_messages(m, cai.backward_messages(m, alpha=1.0))
    axes = viz.state_marginals(m, fm)
    times = [int(a.get_title().split()[2].rstrip(",")) for a in axes]
    exit_state = [s for s, (r, _) in enumerate(m.metadata["coords"]) if r < 0]
    on_grid = 1 - fm.state[:, exit_state].sum(-1).numpy()
    end = max(t for t in range(31) if on_grid[t] >= MIN_ON_GRID)
    assert times[0] == 0 and times[-1] == end and len(times) == 8
    assert max(np.diff(times)) - min(np.diff(times)) <= 1
    fig = axes[0].figure
    assert len(fig.axes) == len(axes) + 1                                  # one shared colour bar
    # the exit state's mass is in the titles, in words under the figure, and it is the real mass
    last = float(fm.state[end, exit_state].sum())
    assert f"exit {100 * last:.0f}%" in axes[-1].get_title()
    assert any("exit state" in t.get_text() for t in fig.texts)
    plt.close(fig)


def test_cell_numbers_do_not_collide_with_the_cell_letters(solved):
    # every S/G cell has its letter at the top left and its number at the bottom right; the
    # other cells have their number in the centre; each number is inked to contrast with its cell
    # (white on lava's red fill)
    m, ex, sv, _ = solved
    axes = viz.compare_solutions(m, ex, sv)
    coords = m.metadata["coords"]
    marked = {tuple(coords[s]) for k in ("start", "goals") for s in m.metadata[k]}
    lava = {tuple(coords[s]) for s in m.metadata["lava"]}
    for ax in axes:
        im = ax.images[0]
        letters = [t for t in ax.texts if t.get_text() in ("S", "G")]
        numbers = [t for t in ax.texts if t not in letters]
        assert len(letters) == len(marked) and len(numbers) == 4 * 9
        for t in numbers:
            x, y = t.get_position()
            r, c = int(round(y)), int(round(x))          # the cell whose centre is nearest
            if t.get_va() == "bottom":
                r, c = int(round(y - 0.42)), int(round(x - 0.44))
            assert ((r, c) in marked) == (t.get_ha() == "right" and t.get_va() == "bottom")
            if (r, c) in lava:
                assert t.get_color() == "white"
                continue
            cell = np.asarray(im.cmap(im.norm(im.get_array()[r, c]))[:3])
            lum = float(cell @ [0.2126, 0.7152, 0.0722])
            assert t.get_color() == ("black" if lum > 0.45 else "white")
        for t in letters:
            assert t.get_ha() == "left" and t.get_va() == "top"
    plt.close(axes[0].figure)


def test_compare_and_trajectories(solved, tmp_path):
    m, ex, sv, _ = solved
    axes = viz.compare_solutions(m, ex, sv)
    assert len(axes) == 3
    diff = axes[2].images[0].get_array()
    r, c = m.metadata["coords"][m.metadata["start"][0]]
    assert float(diff[r, c]) == pytest.approx(float(ex.V[0, m.metadata["start"][0]] - sv.V[0, m.metadata["start"][0]]))
    _png(axes[0].figure, tmp_path / "cmp.png")
    tr = cai.sample_posterior(m, ex, 20, generator=torch.Generator().manual_seed(0))
    _png(viz.trajectories_on_grid(m, tr, title="posterior").figure, tmp_path / "tr.png")
    _png(viz.trajectories_on_grid(m, tr.states, background=sv).figure, tmp_path / "tr2.png")
    with pytest.raises(ValueError, match="grid"):
        viz.trajectories_on_grid(lottery(), tr)


def test_policy_state_marginals_agree_with_sampling():
    # independent reference: Monte Carlo with the core's sampler (4000 paths; 5 sigma tolerance)
    m = two_route(slip=0.2, horizon=6)
    sv = cai.soft_value_iteration(m, alpha=0.7)
    d = cai.policy_marginals(m, sv.policy).state
    torch.testing.assert_close(d.sum(-1), torch.ones(7, dtype=torch.float64))
    tr = cai.sample_trajectories(m, sv.policy, 4000, generator=torch.Generator().manual_seed(1))
    emp = torch.stack([torch.bincount(tr.states[:, t], minlength=m.n_states) for t in range(7)]) / 4000.0
    sigma = (d * (1 - d) / 4000).sqrt()
    assert bool(((emp - d).abs() <= 5 * sigma + 1e-12).all())


def test_sweep_temperature_identities():
    m = gridworld(CLIFF_LAYOUT, slip=0.1, horizon=16, discount=0.95, goal_reward=100.0, lava_reward=-100.0)
    alphas = [0.05, 0.5, 2.0]
    sw = sweep_temperature(m, alphas)
    assert sw.alpha.shape == (3,)
    # batched solve == one solve per alpha
    for i, a in enumerate(alphas):
        assert float(sw.soft_value[i]) == pytest.approx(float(cai.soft_value_iteration(m, alpha=a).value), rel=1e-10)
    # soft value = expected return + alpha * expected entropy of all steps (counting prior),
    # with the entropy recomputed here over every state from the on-policy marginals
    sol = cai.soft_value_iteration(m, alpha=torch.tensor(alphas, dtype=torch.float64))
    d = cai.policy_marginals(m, sol.policy).state[:, :-1]
    H = -(sol.policy * sol.log_policy.clamp_min(-1e300)).nan_to_num().sum(-1)
    total_H = (d * H).sum((-1, -2))
    torch.testing.assert_close(sw.soft_value, sw.expected_return + sw.alpha * total_H)
    # exact inference is optimistic: alpha log p(O) >= soft value; entropy rises with alpha
    assert bool((sw.log_evidence >= sw.soft_value - 1e-9).all())
    assert bool((sw.entropy[1:] > sw.entropy[:-1]).all()) and float(sw.entropy[0]) < 0.1
    assert float(sw.entropy.max()) <= np.log(4) + 1e-12
    # the entropy per decision leaves out the cells with nothing to decide: goal, lava and the exit
    # (one action each), so it is the on-policy mean over the free cells only
    free = torch.ones(m.n_states, dtype=torch.bool)
    free[m.metadata["goals"] + m.metadata["lava"] + [m.n_states - 1]] = False
    torch.testing.assert_close(sw.entropy, (d * H * free).sum((-1, -2)) / (d * free).sum((-1, -2)))


def test_temperature_sweep_figure(tmp_path):
    m = two_route(horizon=8)
    ax = viz.temperature_sweep(m, np.logspace(-1, 1, 5), title="sweep")
    assert hasattr(ax, "entropy_ax")
    _png(ax.figure, tmp_path / "sweep.png")


def test_bad_inputs(solved):
    m, ex, _, _ = solved
    with pytest.raises(ValueError, match="values"):
        viz.value_heatmap(m, torch.zeros(3))
    with pytest.raises(ValueError, match="Q"):
        viz.soft_q_heatmap(m, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="grid"):
        viz.trajectories_on_grid(lottery(), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="policy"):
        viz.policy_arrows(lottery(), torch.ones(3, 2) / 2)        # no grid: bars, but the shape is checked
    with pytest.raises(ValueError, match="marginals"):
        viz.state_marginals(m, torch.zeros(5))
    with pytest.raises(ValueError, match="horizon"):
        sweep_temperature(m.replace(horizon=None, discount=0.9), [1.0])


# --- issue 11: steps and batches are checked, never indexed blindly ---------------------------

def test_step_out_of_range_or_not_an_integer_is_named():
    mdp = chain(5, horizon=4)
    sol = cai.soft_value_iteration(mdp, 0.5)
    post = cai.forward_messages(mdp, cai.backward_messages(mdp, 0.5))
    for t in (5, -1, 2.5, True, "1"):
        with pytest.raises(ValueError, match="^t: expected an integer step in \\[0, 4\\]"):
            viz.value_heatmap(mdp, sol, t=t)
    with pytest.raises(ValueError, match="^t: expected an integer step in \\[0, 3\\]"):
        viz.policy_arrows(gridworld("S.G", horizon=4), cai.soft_value_iteration(gridworld("S.G", horizon=4)), t=4)
    for times in ([2.5], [0, 9], [-1]):
        with pytest.raises(ValueError, match="^times: expected an integer step in \\[0, 4\\]"):
            viz.state_marginals(mdp, post, times=times)
    with pytest.raises(ValueError, match="^times: expected a non-empty sequence"):
        viz.state_marginals(mdp, post, times=3)
    plt.close("all")


def test_batched_solution_is_refused_with_its_batch_shape():
    """A temperature sweep is a batch: plotting it with t must not draw batch member t."""
    mdp = gridworld("S..\n..G", horizon=3)
    sweep = cai.soft_value_iteration(mdp, torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64))
    for draw in (lambda: viz.value_heatmap(mdp, sweep, t=1), lambda: viz.soft_q_heatmap(mdp, sweep, t=1),
                 lambda: viz.policy_arrows(mdp, sweep, t=1), lambda: viz.compare_solutions(mdp, sweep, sweep)):
        with pytest.raises(ValueError, match="expected an unbatched Solution, got one with batch shape \\(3,\\)"):
            draw()
    stationary = gridworld("S..\n..G", horizon=None, discount=0.9)
    batch = cai.soft_value_iteration(stationary, torch.tensor([0.5, 1.0], dtype=torch.float64))
    S = stationary.n_states
    with pytest.raises(ValueError, match=f"^values: expected values of shape \\(S,\\) = \\({S},\\), got shape \\(2, {S}\\)"):
        viz.value_heatmap(stationary, batch.V, t=1)       # a (2, S) array is not a time axis here
    plt.close("all")
