"""Figures that teach: every figure renders for a grid world and for a world without a grid (or
refuses with a ValueError that names the argument), the numbers drawn are the solver's (read back
from the text artists), the number format tells close values apart, styles and vector output."""
import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import cai  # noqa: E402
from cai import viz  # noqa: E402
from cai.report import lava_probability  # noqa: E402
from cai.viz.marginals import MIN_ON_GRID  # noqa: E402
from cai.worlds import CLIFF_LAYOUT, gridworld, options_fork  # noqa: E402

TINY = "...\nSLG"          # 2 x 3: a start, one lava cell and the goal on the bottom row


@pytest.fixture(scope="module")
def grid():
    m = gridworld(CLIFF_LAYOUT, slip=0.1, horizon=8)
    return m, cai.backward_messages(m, 1.0), cai.soft_value_iteration(m, 1.0), cai.value_iteration(m)


@pytest.fixture(scope="module")
def nogrid():
    m = options_fork()
    return m, cai.backward_messages(m, 1.0), cai.soft_value_iteration(m, 1.0), cai.value_iteration(m)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _cells(mdp):
    """``{(row, col): state}`` of the grid's cells."""
    return {tuple(int(v) for v in rc): s for s, rc in enumerate(mdp.metadata["coords"]) if rc[0] >= 0}


def _numbers(ax) -> list:
    """``(x, y, float)`` of every text artist of ``ax`` that reads as a number."""
    out = []
    for t in ax.texts:
        try:
            out.append((*t.get_position(), float(t.get_text())))
        except ValueError:
            continue
    return out


def _decimals(spec: str) -> int:
    return int(spec[1:-1]) if spec.endswith("f") else 6


# ---------------------------------------------------------------------------------------------
# the number format

def test_number_format_tells_apart_a_narrow_range_of_large_numbers():
    # FrozenLake's values span 13.9..14.4: two significant digits wrote "14" in every cell
    v = np.array([13.9, 13.93, 14.02, 14.11, 14.27, 14.4])
    spec = viz.number_format(v)
    shown = [format(x, spec) for x in v]
    assert len(set(shown)) == len(v), shown
    # decimals = ceil(-log10(span / 20)) = ceil(-log10(0.025)) = 2
    assert spec == ".2f"
    # each label is within half its last digit of the value
    assert np.allclose([float(s) for s in shown], v, atol=0.5 * 10 ** -_decimals(spec) + 1e-12)


@pytest.mark.parametrize("values, spec", [
    ([-100.0, 106.0], ".0f"),          # span 206: a twentieth is 10.3 -> no decimals
    ([0.0, 1.0], ".2f"),               # span 1: 0.05 -> 2 decimals
    ([0.0, 13.0], ".1f"),              # span 13: 0.65 -> 1 decimal
    ([5.0, 5.0], ".3g"),               # no range: 3 significant digits
    ([2e-5, 7e-5], ".3g"),             # tiny magnitudes: g format
    ([np.nan, -np.inf, 1.0, 3.0], ".1f"),   # non-finite entries are ignored: span 2
])
def test_number_format_follows_the_range(values, spec):
    assert viz.number_format(np.array(values)) == spec


def test_number_format_distinguishes_values_a_twentieth_of_the_range_apart():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lo, span = rng.uniform(-500, 500), 10 ** rng.uniform(-3, 3)
        v = lo + span * np.arange(21) / 20                       # neighbours exactly span/20 apart
        spec = viz.number_format(v)
        assert len({format(x, spec) for x in v}) == 21, (lo, span, spec)


# ---------------------------------------------------------------------------------------------
# the numbers drawn are the solver's

def test_value_heatmap_writes_the_solvers_values_in_their_cells(grid):
    m, ex, sv, _ = grid
    ax = viz.value_heatmap(m, sv)
    V = sv.V[0].numpy()
    spec = viz.number_format(V[np.asarray(m.metadata["coords"])[:, 0] >= 0])
    half = 0.5 * 10 ** -_decimals(spec) + 1e-9
    cells = _cells(m)
    found = {}
    for x, y, val in _numbers(ax):
        # centred numbers sit on the cell centre; numbers moved aside by an S/G letter sit at +0.44/+0.42
        r, c = int(round(y - (0.42 if abs(y - round(y)) > 0.2 else 0))), int(round(x - (0.44 if abs(x - round(x)) > 0.2 else 0)))
        found[cells[(r, c)]] = val
    assert set(found) == set(cells.values())                     # every cell, lava included, once
    for s, val in found.items():
        assert abs(val - V[s]) <= half, (s, val, V[s])


def test_value_heatmap_keeps_lava_off_the_colour_scale(grid):
    m, _, sv, _ = grid
    ax = viz.value_heatmap(m, sv)
    V = sv.V[0].numpy()
    on_grid = np.asarray(m.metadata["coords"])[:, 0] >= 0
    keep = on_grid.copy()
    keep[m.metadata["lava"]] = False
    assert ax.images[0].get_clim() == pytest.approx((V[keep].min(), V[keep].max()))
    assert V[m.metadata["lava"]].max() < V[keep].min()          # the penalty would have flattened the scale
    # lava's own numbers are written in white on its red fill
    lava_cells = {tuple(m.metadata["coords"][s]) for s in m.metadata["lava"]}
    whites = [t for t in ax.texts if (round(t.get_position()[1]), round(t.get_position()[0])) in lava_cells]
    assert whites and all(t.get_color() == "white" for t in whites)
    assert [h.get_label() for h in ax.get_legend().legend_handles] == ["lava (cliff)", "goal (G)", "start (S)"]


def test_soft_q_triangles_carry_the_solvers_q_and_the_key_names_the_actions(grid):
    m, _, sv, _ = grid
    tiny = gridworld(TINY, slip=0.1, horizon=3)
    sol = cai.soft_value_iteration(tiny, 1.0)
    ax = viz.soft_q_heatmap(tiny, sol)
    q = sol.q_at(0).numpy()
    spec = viz.number_format(q[np.isfinite(q)])
    moves = viz.action_moves(tiny)
    cells = _cells(tiny)
    want = {}
    for (r, c), s in cells.items():
        for a, (dr, dc) in enumerate(moves):
            if np.isfinite(q[s, a]):
                want[(round(c + 0.3 * dc, 6), round(r + 0.3 * dr, 6))] = q[s, a]
    got = {(round(x, 6), round(y, 6)): v for x, y, v in _numbers(ax)}
    assert set(got) == set(want)
    for k in want:
        assert abs(got[k] - want[k]) <= 0.5 * 10 ** -_decimals(spec) + 1e-9
    key = [a for a in ax.child_axes]
    assert len(key) == 1 and {t.get_text() for t in key[0].texts} == set(tiny.action_names)


def test_policy_arrows_lengths_are_probabilities_and_the_background_is_the_entropy(grid):
    m, _, sv, hv = grid
    for sol in (sv, hv):
        ax = viz.policy_arrows(m, sol, background="entropy", scale=0.45, min_prob=0.02)
        pi = sol.policy_at(0).numpy()
        moves = viz.action_moves(m)
        arrows = [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]
        lengths = sorted(round(float(np.hypot(*(np.asarray(t.xy) - np.asarray(t.xyann)))), 9) for t in arrows)
        skip = set(m.metadata["goals"]) | set(m.metadata["lava"])
        want = sorted(round(0.45 * pi[s, a], 9) for s, (r, c) in enumerate(m.metadata["coords"]) if r >= 0
                      and s not in skip for a in range(m.n_actions) if pi[s, a] >= 0.02 and moves[a].any())
        assert lengths == want
        # the background: -sum_a pi log pi per cell, written out here from the probabilities
        img = ax.images[0].get_array()
        for (r, c), s in _cells(m).items():
            if s in skip:
                assert np.ma.is_masked(img[r, c]) or np.isnan(img[r, c])
            else:
                p = pi[s][pi[s] > 0]
                assert img[r, c] == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)
    assert np.nanmax(np.ma.filled(viz.policy_arrows(m, hv, background="entropy").images[0].get_array(), np.nan)) \
        == pytest.approx(0.0, abs=1e-12)                         # greedy: zero entropy everywhere


def test_policy_entropy_closed_forms():
    A = 5
    assert viz.policy_entropy(np.full(A, 1 / A)) == pytest.approx(np.log(A))
    assert viz.policy_entropy(np.eye(A)).tolist() == [0.0] * A
    assert viz.policy_entropy([0.5, 0.5, 0.0]) == pytest.approx(np.log(2))


# ---------------------------------------------------------------------------------------------
# worlds without a grid: bar charts per state, with the action names

def test_policy_and_q_bars_for_a_world_without_a_grid(nogrid):
    m, ex, sv, _ = nogrid
    ax = viz.policy_arrows(m, sv, title="soft")                  # no grid: bars, not an error
    pi = sv.policy_at(0).numpy()
    heights = np.array([p.get_height() for p in ax.patches]).reshape(m.n_actions, m.n_states).T
    assert np.allclose(heights, pi, atol=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(m.action_names)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(m.state_names)
    ax = viz.soft_q_heatmap(m, sv)
    q = sv.q_at(0).numpy()
    h = np.array([p.get_height() for p in ax.patches]).reshape(m.n_actions, m.n_states).T
    assert np.array_equal(np.isnan(h), ~np.isfinite(q))          # a forbidden action gets no bar
    assert np.allclose(h[np.isfinite(q)], q[np.isfinite(q)])
    ax = viz.value_heatmap(m, ex)
    V = ex.V[0].numpy()
    spec = viz.number_format(V)
    got = [v for _, _, v in _numbers(ax)]
    assert np.allclose(got, V, atol=0.5 * 10 ** -_decimals(spec) + 1e-9)


@pytest.mark.parametrize("world", ["grid", "nogrid"])
def test_every_figure_renders_or_refuses_for_both_kinds_of_world(world, request, tmp_path):
    for m, ex, sv, hv in (request.getfixturevalue(world),):
        post = cai.forward_messages(m, ex)
        figs = [viz.value_heatmap(m, sv).figure, viz.soft_q_heatmap(m, sv).figure,
                viz.policy_arrows(m, sv).figure, viz.policy_bars(m, hv).figure,
                viz.compare_solutions(m, ex, sv)[0].figure, viz.state_marginals(m, post, times=[0, 1])[0].figure,
                viz.temperature_sweep(m, [0.1, 1.0]).figure]
        viz.marginals_animation(m, post.state[:2], tmp_path / "m.gif", dpi=20)
        assert (tmp_path / "m.gif").read_bytes()[:3] == b"GIF"
        for i, fig in enumerate(figs):
            viz.save_figure(fig, tmp_path / f"f{i}.png", dpi=20)
        if "coords" in m.metadata:
            axes = viz.trajectory_comparison(m, ex, sv, n=5, generator=torch.Generator().manual_seed(0))
            assert len(axes) == 3
        else:
            with pytest.raises(ValueError, match="mdp: expected a world with grid geometry"):
                viz.trajectory_comparison(m, ex, sv, n=5)
            with pytest.raises(ValueError, match="mdp: expected a world with grid geometry"):
                viz.trajectories_on_grid(m, torch.zeros(2, 3, dtype=torch.long))
        plt.close("all")


# ---------------------------------------------------------------------------------------------
# marginals: no empty panels, a colour bar on the GIF

def test_default_marginal_panels_are_never_empty_and_the_note_says_why():
    m = gridworld(CLIFF_LAYOUT, slip=0.0, horizon=20)          # the shortest path exits at t = 12
    post = cai.forward_messages(m, cai.backward_messages(m, 0.3))
    axes = viz.state_marginals(m, post)
    on_grid = np.asarray(m.metadata["coords"])[:, 0] >= 0
    shown = [int(a.get_title().split()[2].rstrip(",")) for a in axes]
    state = post.state.numpy()
    for a, t in zip(axes, shown):
        img = np.ma.filled(a.images[0].get_array(), np.nan)
        assert np.nansum(img) >= MIN_ON_GRID
        assert np.nansum(img) == pytest.approx(state[t, on_grid].sum())   # the panel is p(s_t), nothing else
    last = max(t for t in range(21) if state[t, on_grid].sum() >= MIN_ON_GRID)
    assert shown[0] == 0 and shown[-1] == last < 20
    notes = " ".join(t.get_text() for t in axes[0].figure.texts)
    assert f"t = {last + 1}..20 not shown" in notes and "exit state" in notes


def test_marginals_animation_has_one_fixed_colour_bar(grid, tmp_path, monkeypatch):
    m, ex, _, _ = grid
    closed = []
    monkeypatch.setattr(plt, "close", lambda fig=None: closed.append(fig))
    viz.marginals_animation(m, cai.forward_messages(m, ex).state[:2], tmp_path / "a.gif", dpi=20)
    fig = closed[-1]
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "p(s_t = s)"


# ---------------------------------------------------------------------------------------------
# trajectories: the posterior's policy in the real dynamics falls; P(fall) is right

def _fall_by_enumeration(mdp, policy) -> float:
    """P(the path is in lava at some t < T): every path of states and actions enumerated."""
    P = mdp.dense_transitions().numpy().reshape(mdp.n_states, mdp.n_actions, mdp.n_states)
    p0, lava, T = mdp.initial.numpy(), set(mdp.metadata["lava"]), mdp.horizon
    pi = np.broadcast_to(np.asarray(policy), (T, mdp.n_states, mdp.n_actions))
    total = 0.0
    for s0 in np.nonzero(p0)[0]:
        stack = [(0, int(s0), float(p0[s0]))]
        while stack:
            t, s, w = stack.pop()
            if s in lava:
                total += w
                continue
            if t == T - 1:
                continue
            for a, s2 in itertools.product(range(mdp.n_actions), range(mdp.n_states)):
                pw = w * pi[t, s, a] * P[s, a, s2]
                if pw > 0:
                    stack.append((t + 1, s2, pw))
    return total


def test_lava_probability_matches_path_enumeration():
    m = gridworld(TINY, slip=0.2, horizon=4)
    ex = cai.backward_messages(m, 1.0)
    for pol in (ex.policy.numpy(), cai.soft_value_iteration(m, 1.0).policy.numpy()):
        got = lava_probability(m, cai.policy_marginals(m, torch.as_tensor(pol)).state)
        assert got == pytest.approx(_fall_by_enumeration(m, pol), abs=1e-12)
        assert got > 1e-3                                         # a test that could fail
    with pytest.raises(ValueError, match="state_marginals"):
        lava_probability(m, torch.zeros(3, m.n_states))


def test_trajectory_panels_show_the_fall_probabilities(grid):
    m, ex, sv, _ = grid
    axes = viz.trajectory_comparison(m, ex, sv, n=40, generator=torch.Generator().manual_seed(1))
    want = [lava_probability(m, cai.forward_messages(m, ex).state),
            lava_probability(m, cai.policy_marginals(m, ex.policy).state),
            lava_probability(m, cai.policy_marginals(m, sv.policy).state)]
    titles = [a.get_title() for a in axes]
    for title, p in zip(titles, want):
        assert f"P(fall) = {p:.3f}" in title
    assert "real dynamics" in titles[1] and "posterior" in titles[1]
    assert want[1] > 2 * want[2] and want[0] < 1e-3              # the posterior's policy walks the edge
    # the drawn count is the samples' own: redraw with the same seed
    g = torch.Generator().manual_seed(1)
    cai.sample_posterior(m, ex, 40, generator=g)
    states = cai.sample_trajectories(m, ex.policy, 40, generator=g).states.numpy()
    fell = int(np.isin(states[:, :-1], m.metadata["lava"]).any(1).sum())
    assert f"{fell}/40 drawn fell" in titles[1]


# ---------------------------------------------------------------------------------------------
# styles and vector output

def test_slides_style_is_larger_and_restores_the_defaults(grid):
    m, _, sv, _ = grid
    before = matplotlib.rcParams["font.size"]
    with viz.style("slides") as rc:
        assert matplotlib.rcParams["font.size"] == rc["font.size"] > before
        ax = viz.value_heatmap(m, sv, title="V")
        big_title, big_size = ax.title.get_fontsize(), ax.figure.get_size_inches()
    assert matplotlib.rcParams["font.size"] == before
    ax = viz.value_heatmap(m, sv, title="V")
    assert big_title > ax.title.get_fontsize()
    assert np.allclose(big_size / ax.figure.get_size_inches(), viz.STYLES["slides"]["font.size"] / 10)
    with pytest.raises(ValueError, match="name: expected one of paper, slides"), viz.style("poster"):
        pass


@pytest.mark.parametrize("fmt, magic", [("svg", None), ("pdf", b"%PDF"), ("png", b"\x89PNG")])
def test_save_figure_writes_valid_files(grid, tmp_path, fmt, magic):
    m, _, sv, _ = grid
    path = viz.save_figure(viz.policy_arrows(m, sv).figure, tmp_path / f"p.{fmt}", dpi=20)
    data = path.read_bytes()
    if fmt == "svg":
        head = data[:200].decode()
        assert head.startswith("<?xml") and "<svg" in data.decode()
    else:
        assert data.startswith(magic)


def test_save_figure_refuses_unknown_formats(grid, tmp_path):
    m, _, sv, _ = grid
    fig = viz.value_heatmap(m, sv).figure
    with pytest.raises(ValueError, match="format: expected one of png, svg, pdf"):
        viz.save_figure(fig, tmp_path / "x.jpeg")
    with pytest.raises(ValueError, match="dpi"):
        viz.save_figure(fig, tmp_path / "x.png", dpi=0)
    with pytest.raises(ValueError, match="background"):
        viz.policy_arrows(m, sv, background="entropies")
