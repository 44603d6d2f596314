"""The unrolled graphical model and the transition graph."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import cai  # noqa: E402
from cai.viz.graph import draw_transition_graph, draw_unrolled, message_annotations, message_caption, transition_graph, unrolled_graph  # noqa: E402
from cai.worlds import chain, two_route  # noqa: E402
from tests.common import assert_png  # noqa: E402


def _expected_edges(T, final_state=True, action_edges=True):
    """The edge set written out by hand from the factorisation p0 prod rho P p(O|s,a)."""
    last = T if final_state else T - 1
    edges = {}
    for t in range(T):
        if action_edges:
            edges[(f"s_{t}", f"a_{t}")] = "action_prior"
        edges[(f"s_{t}", f"O_{t}")] = "optimality"
        edges[(f"a_{t}", f"O_{t}")] = "optimality"
        if t + 1 <= last:
            edges[(f"s_{t}", f"s_{t + 1}")] = "dynamics"
            edges[(f"a_{t}", f"s_{t + 1}")] = "dynamics"
    return edges


@pytest.mark.parametrize("T", [1, 2, 5])
@pytest.mark.parametrize("final_state", [True, False])
@pytest.mark.parametrize("action_edges", [True, False])
def test_unrolled_graph_nodes_and_edges(T, final_state, action_edges):
    g = unrolled_graph(T, final_state=final_state, action_edges=action_edges)
    assert g.number_of_nodes() == 3 * T + int(final_state)
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(k == "state" for k in kinds.values()) == T + int(final_state)
    assert sum(k == "action" for k in kinds.values()) == T
    assert sum(k == "optimality" for k in kinds.values()) == T
    for n, d in g.nodes(data=True):
        assert n == f"{n[0]}_{d['time']}"
        assert d["observed"] == (d["kind"] == "optimality")
    got = {(u, v): d["factor"] for u, v, d in g.edges(data=True)}
    assert got == _expected_edges(T, final_state, action_edges)
    assert all(d["label"].startswith("$") for _, _, d in g.edges(data=True))
    assert nx.is_directed_acyclic_graph(g)
    # O_t is a leaf whose parents are exactly s_t and a_t
    for t in range(T):
        assert set(g.predecessors(f"O_{t}")) == {f"s_{t}", f"a_{t}"} and g.out_degree(f"O_{t}") == 0


def test_unrolled_graph_bad_T():
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="T: expected"):
            unrolled_graph(bad)


def test_transition_graph_matches_dynamics():
    m = chain(4, slip=0.2)
    g = transition_graph(m)
    P = m.dense_transitions()
    assert set(g.nodes) == set(range(4))
    expected = {(s, t) for s in range(4) for t in range(4) if float(P[s, :, t].sum()) > 0}
    assert set(g.edges) == expected
    for s, t, d in g.edges(data=True):
        assert d["weight"] == pytest.approx(float(P[s, :, t].mean()))        # uniform policy
        assert d["probs"] == {m.action_names[a]: pytest.approx(float(P[s, a, t])) for a in range(2) if P[s, a, t] > 0}
    # with a policy the weights are sum_a pi(a|s) P(s'|s,a), rows summing to 1
    pi = torch.tensor([[0.9, 0.1]] * 4, dtype=torch.float64)
    g2 = transition_graph(m, pi)
    for s in range(4):
        assert sum(d["weight"] for _, _, d in g2.out_edges(s, data=True)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="policy"):
        transition_graph(m, torch.ones(4, 3) / 3)


def test_message_annotations():
    m = two_route(horizon=4)
    ex = cai.backward_messages(m, alpha=1.0)
    fm = cai.forward_messages(m, ex)
    ann = message_annotations(ex, marginals=fm)
    s0 = m.metadata["start"][0]
    assert set(ann) == {f"s_{t}" for t in range(5)} | {f"a_{t}" for t in range(4)} | {"O_0"}
    assert ann["s_0"].startswith(f"V={float(ex.V[0, s0]):.3g}")
    assert "p=1.00" in ann["s_0"]
    assert f"{float(ex.log_evidence):.3g}" in ann["O_0"]
    with pytest.raises(ValueError, match="state"):
        message_annotations(ex, state=999)


def _png(ax, path):
    return assert_png(ax, path, dpi=60)


def test_drawings_produce_png(tmp_path):
    m = two_route(horizon=3)
    ex = cai.backward_messages(m, alpha=1.0)
    _png(draw_unrolled(3), tmp_path / "g.png")
    _png(draw_unrolled(unrolled_graph(2, action_edges=True), annotations=message_annotations(ex), title="t"),
         tmp_path / "g2.png")
    _png(draw_transition_graph(m), tmp_path / "tg.png")
    _png(draw_transition_graph(chain(5)), tmp_path / "tg2.png")            # spring layout (no grid)


def test_message_annotations_say_what_they_show():
    # the a_t label is max_a Q_t(s, a) and the posterior probability of the most likely action at
    # the same state s; the soft value is a soft maximum of the Q-values, V = logsumexp(Q) >= max Q
    m = two_route(horizon=4)
    ex = cai.backward_messages(m, alpha=1.0)
    s0 = m.metadata["start"][0]
    ann = message_annotations(ex)
    for t in range(4):
        q, pi = ex.Q[t, s0], ex.policy[t, s0]
        k = int(torch.argmax(pi))
        assert "Q*" not in ann[f"a_{t}"]
        assert ann[f"a_{t}"] == f"max$_a$ Q={float(q.max()):.3g}\nπ({m.action_names[k]}|s)={float(pi[k]):.2f}"
        # independent check of the numbers: V_t = log sum_a exp(Q_t) and pi = exp(Q - V)
        torch.testing.assert_close(ex.V[t, s0], torch.logsumexp(q, -1))
        torch.testing.assert_close(pi, torch.exp(q - torch.logsumexp(q, -1)))
    cap = message_caption(ex, marginals=True)
    for needle in (m.state_names[s0], "exact backward messages", "reward units", "posterior policy",
                   "p = p(s_t = s | O)", "log evidence", "V ≥ max_a Q", "alpha = 1"):
        assert needle in cap
    sv = cai.soft_value_iteration(m, alpha=0.5)
    cap = message_caption(sv)
    assert "not exact inference" in cap and "alpha = 0.5" in cap and "log evidence" not in cap
    assert "hard value iteration" in message_caption(cai.value_iteration(m))
    with pytest.raises(ValueError, match="state"):
        message_caption(ex, state=-1)


def _drawn_node_labels(ax):
    return {t.get_text() for t in ax.texts if t.get_text().startswith("$")}


def test_long_horizons_are_drawn_with_an_ellipsis():
    T = 50
    g = unrolled_graph(T)
    assert g.number_of_nodes() == 3 * T + 1                    # the graph keeps every node
    ax = draw_unrolled(g, max_steps=6)
    drawn = _drawn_node_labels(ax)
    # decisions 0..3 and 48, 49 (max_steps - 2 first, 2 last), states s_0..s_4 and s_48..s_50
    expected = ({f"$s_{{{t}}}$" for t in [0, 1, 2, 3, 4, 48, 49, 50]}
                | {f"${k}_{{{t}}}$" for k in "aO" for t in [0, 1, 2, 3, 48, 49]})
    assert drawn == expected
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "⋯" in texts and "44 steps" in texts and "t = 4..47" in texts
    w, h = ax.figure.get_size_inches()
    assert w < 20 and w == pytest.approx(2.0 * (6 + 1.2) + 2.0)
    plt.close(ax.figure)
    # short horizons (T <= max_steps + 1) are drawn whole, and max_steps=None never elides
    for T, kw in ((7, {}), (12, {"max_steps": None})):
        ax = draw_unrolled(T, **kw)
        assert len(_drawn_node_labels(ax)) == 3 * T + 1
        assert not any("not drawn" in t.get_text() for t in ax.texts)
        plt.close(ax.figure)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="max_steps"):
            draw_unrolled(10, max_steps=bad)


def test_elided_drawing_annotates_only_drawn_nodes(tmp_path):
    m = two_route(horizon=20)
    ex = cai.backward_messages(m, alpha=1.0)
    ann = message_annotations(ex)
    ax = draw_unrolled(20, annotations=ann, caption=message_caption(ex), max_steps=4)
    shown = {t.get_text() for t in ax.texts}
    assert ann["a_0"] in shown and ann["a_19"] in shown and ann["s_20"] in shown
    # max_steps=4: s_0..s_2 and s_18..s_20, a_0, a_1, a_18, a_19, and O_0 carry annotations (boxed)
    assert sum(t.get_bbox_patch() is not None for t in ax.texts) == 6 + 4 + 1
    assert any(message_caption(ex).startswith(t.get_text()[:40]) for t in ax.texts)
    _png(ax, tmp_path / "elided.png")


def test_transition_graph_takes_a_stationary_solution():
    m = chain(4, slip=0.2, horizon=None, discount=0.9)
    sol = cai.soft_value_iteration(m, 0.5)
    a, b = transition_graph(m, sol), transition_graph(m, sol.policy)
    assert {e: d["weight"] for e, d in a.edges.items()} == {e: d["weight"] for e, d in b.edges.items()}
    finite = chain(4, horizon=3)
    with pytest.raises(ValueError, match="policy: expected a stationary policy .* pass solution.policy_at\\(t\\)"):
        draw_transition_graph(finite, policy=cai.soft_value_iteration(finite))


def test_unrolled_graph_with_observations():
    g = unrolled_graph(3, observations=True, action_edges=True)
    obs = sorted(n for n, d in g.nodes(data=True) if d["kind"] == "observation")
    assert obs == ["o_1", "o_2", "o_3"] and all(g.nodes[n]["observed"] for n in obs)
    for t in range(3):                                     # p(o_{t+1} | s_{t+1}, a_t)
        assert set(g.predecessors(f"o_{t + 1}")) == {f"s_{t + 1}", f"a_{t}"}
    # the policy sees observations, not states: o_t -> a_t, no s_t -> a_t
    assert not any(g.has_edge(f"s_{t}", f"a_{t}") for t in range(3))
    assert [g.has_edge(f"o_{t}", f"a_{t}") for t in (1, 2)] == [True, True]
    assert g.number_of_nodes() == 3 * 3 + 1 + 3 and g.number_of_edges() == 4 * 3 + 2 * 3 + 2
    assert unrolled_graph(3).number_of_nodes() == 10       # the MDP's graph is unchanged by default


def test_draw_unrolled_with_observations():
    import matplotlib
    matplotlib.use("Agg")
    ax = draw_unrolled(3, observations=True, action_edges=True)
    labels = {t.get_text() for t in ax.texts}
    assert {"$o_{1}$", "$o_{3}$"} <= labels
