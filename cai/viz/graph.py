r"""The control-as-inference graphical model as a :mod:`networkx` graph, and its lecture drawing.

The unrolled model over ``T`` decisions has the nodes ``s_0 .. s_T`` (states), ``a_0 .. a_{T-1}``
(actions) and ``O_0 .. O_{T-1}`` (optimality variables, observed ``= 1``), ``3T + 1`` nodes in all
(``3T`` without the final state). Its edges carry the factors of the joint (Levine 2018, §2)::

    p(tau, O) = p0(s_0) prod_t rho(a_t | s_t) p(s_{t+1} | s_t, a_t) p(O_t = 1 | s_t, a_t)
    p(O_t = 1 | s_t, a_t) ∝ exp(r(s_t, a_t) / alpha)

Every edge has the attribute ``factor`` (``"action_prior"``, ``"dynamics"`` or ``"optimality"``)
and a LaTeX ``label`` of the factor it belongs to. With the default counting prior
(``rho = 1``) the ``s_t -> a_t`` edges carry a constant factor and lecture figures usually omit
them (``action_edges=False``).

:func:`transition_graph` is the MDP's own state-transition graph (one node per state).

References:
    Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference: Tutorial and
    Review", Fig. 2.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional

import networkx as nx
import numpy as np
import torch

from cai.mdp.checks import check_positive_int
from cai.methods import VI
from cai.typing import ArrayLike

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.exact.messages import ForwardMessages
    from cai.mdp.tabular import TabularMDP
    from cai.solution import Solution

__all__ = ["unrolled_graph", "transition_graph", "message_annotations", "message_caption", "draw_unrolled",
           "draw_transition_graph", "node_name", "FACTORS"]

#: The factor each kind of edge carries, as LaTeX.
FACTORS = {
    "initial": r"$p_0(s_0)$",
    "action_prior": r"$\rho(a_t \mid s_t)$",
    "dynamics": r"$p(s_{t+1} \mid s_t, a_t)$",
    "optimality": r"$p(O_t{=}1 \mid s_t, a_t) \propto e^{r(s_t, a_t)/\alpha}$",
    "observation": r"$p(o_{t+1} \mid s_{t+1}, a_t)$",
    "policy": r"$\pi(a_t \mid a_{<t}, o_{\leq t})$",
}

_KIND = {"s": "state", "a": "action", "O": "optimality", "o": "observation"}


def node_name(kind: str, t: int) -> str:
    """The name of a node: ``node_name("s", 2) == "s_2"`` (kinds ``"s"``, ``"a"``, ``"O"``, ``"o"``)."""
    if kind not in _KIND:
        raise ValueError(f"kind: expected 's', 'a', 'O' or 'o', got {kind!r}")
    return f"{kind}_{t}"


def _check_T(T) -> int:
    return check_positive_int("T", T, "a number of decisions >= 1")


def unrolled_graph(T: int, *, final_state: bool = True, action_edges: bool = True,
                   observations: bool = False) -> nx.DiGraph:
    """The unrolled graphical model ``s_t, a_t, O_t`` over ``T`` decisions.

    Args:
        T: number of decisions (``t = 0 .. T-1``).
        final_state: include ``s_T`` (and the edges ``s_{T-1}, a_{T-1} -> s_T``): ``3T + 1``
            nodes, else ``3T``.
        action_edges: include the ``s_t -> a_t`` edges of the action prior ``rho(a_t|s_t)``
            (with ``observations``: the ``o_t -> a_t`` edges of a policy that sees only
            observations, ``pi(a_t | a_{<t}, o_{<=t})``; ``a_0`` has none).
        observations: the POMDP's graph (:class:`cai.pomdp.POMDP`): add the observed nodes
            ``o_1 .. o_T`` (``o_{t+1}`` after ``s_{t+1}``, with edges ``s_{t+1}, a_t -> o_{t+1}``
            of ``p(o_{t+1} | s_{t+1}, a_t)``; ``o_T`` needs ``final_state``).

    Returns:
        ``networkx.DiGraph``. Node attributes: ``kind`` (``"state"``, ``"action"``,
        ``"optimality"``, ``"observation"``), ``time`` (``t``), ``observed`` (True for ``O_t``
        and ``o_t``), ``label`` (LaTeX). ``s_0`` also has ``factor="initial"``. Edge attributes:
        ``factor`` and ``label``. Graph attributes: ``T``, ``final_state``, ``action_edges``,
        ``observations``.

    Raises:
        ValueError: if ``T`` is not a positive integer.
    """
    T = _check_T(T)
    g = nx.DiGraph(T=T, final_state=bool(final_state), action_edges=bool(action_edges), observations=bool(observations))
    last = T if final_state else T - 1
    for t in range(last + 1):
        g.add_node(node_name("s", t), kind="state", time=t, observed=False, label=f"$s_{{{t}}}$")
    g.nodes["s_0"].update(factor="initial", factor_label=FACTORS["initial"])
    for t in range(T):
        g.add_node(node_name("a", t), kind="action", time=t, observed=False, label=f"$a_{{{t}}}$")
        g.add_node(node_name("O", t), kind="optimality", time=t, observed=True, label=f"$O_{{{t}}}$")
    for t in range(T):
        s, a, o = node_name("s", t), node_name("a", t), node_name("O", t)
        if action_edges and not observations:
            g.add_edge(s, a, factor="action_prior", label=FACTORS["action_prior"])
        g.add_edge(s, o, factor="optimality", label=FACTORS["optimality"])
        g.add_edge(a, o, factor="optimality", label=FACTORS["optimality"])
        if t + 1 <= last:
            nxt = node_name("s", t + 1)
            g.add_edge(s, nxt, factor="dynamics", label=FACTORS["dynamics"])
            g.add_edge(a, nxt, factor="dynamics", label=FACTORS["dynamics"])
            if observations:
                o = node_name("o", t + 1)
                g.add_node(o, kind="observation", time=t + 1, observed=True, label=f"$o_{{{t + 1}}}$")
                g.add_edge(nxt, o, factor="observation", label=FACTORS["observation"])
                g.add_edge(a, o, factor="observation", label=FACTORS["observation"])
                if action_edges and t + 1 < T:
                    g.add_edge(o, node_name("a", t + 1), factor="policy", label=FACTORS["policy"])
    return g


def transition_graph(mdp: TabularMDP, policy: Optional[ArrayLike] = None, *, threshold: float = 0.0) -> nx.DiGraph:
    """The MDP's state-transition graph: an edge ``s -> s'`` wherever some action can move there.

    Args:
        mdp: :class:`~cai.TabularMDP`.
        policy: optional stationary policy ``(S, A)`` (e.g. ``solution.policy_at(0)``), or an
            unbatched stationary :class:`~cai.Solution`, that sets the edge weights; default
            uniform over actions.
        threshold: drop edges whose weight is not above this.

    Returns:
        ``networkx.DiGraph`` on the state indices ``0 .. S-1``. Node attributes: ``name``,
        ``initial`` (``p0``), ``pos`` (``(x, y)`` for grid worlds). Edge attributes: ``probs``
        (``{action name: P(s'|s,a)}`` over actions with positive probability) and ``weight``
        (``sum_a pi(a|s) P(s'|s,a)``).
    """
    from cai.mdp.checks import check_policy
    from cai.solution import Solution

    S, A = mdp.n_states, mdp.n_actions
    P = mdp.dense_transitions().detach().cpu().numpy()
    if isinstance(policy, Solution):
        if policy.mdp.horizon is not None or policy.V.dim() != 1:
            raise ValueError(f"policy: expected a stationary policy (S, A) or an unbatched stationary Solution, got a "
                             f"Solution with V of shape {tuple(policy.V.shape)}; pass solution.policy_at(t)")
        policy = policy.policy
    if policy is None:
        pi = np.full((S, A), 1.0 / A)
    else:
        pi = check_policy(policy, (S, A), mdp.dtype, mdp.device).detach().cpu().numpy()
        if pi.ndim != 2:
            raise ValueError(f"policy: expected a single stationary policy (S, A), got {pi.shape}")
    W = np.einsum("sa,sat->st", pi, P)
    names = mdp.state_names or [str(s) for s in range(S)]
    anames = mdp.action_names or [str(a) for a in range(A)]
    p0 = mdp.initial.detach().cpu().numpy()
    pos = _grid_positions(mdp)
    g = nx.DiGraph()
    for s in range(S):
        attrs = {"name": names[s], "initial": float(p0[s])}
        if pos is not None:
            attrs["pos"] = pos[s]
        g.add_node(s, **attrs)
    for s, s2 in zip(*np.nonzero(P.sum(1) > 0)):
        if W[s, s2] > threshold:
            probs = {anames[a]: float(P[s, a, s2]) for a in range(A) if P[s, a, s2] > 0}
            g.add_edge(int(s), int(s2), probs=probs, weight=float(W[s, s2]))
    return g


def _grid_positions(mdp):
    meta = mdp.metadata
    if meta.get("kind") != "grid":
        return None
    H = meta["shape"][0]
    out = []
    for r, c in meta["coords"]:
        out.append((float(c), float(H - 1 - r)) if r >= 0 else (float(meta["shape"][1]), -1.0))
    return out


def _check_annotated(solution, state):
    mdp = solution.mdp
    if mdp.horizon is None or solution.V.dim() != 2:
        raise ValueError("solution: expected an unbatched finite-horizon solution, got V of shape "
                         f"{tuple(solution.V.shape)}")
    if state is None:
        state = int(torch.argmax(mdp.initial))
    if isinstance(state, bool) or not isinstance(state, (int, np.integer)) or not (0 <= state < mdp.n_states):
        raise ValueError(f"state: expected a state index in [0, {mdp.n_states - 1}], got {state!r}")
    return mdp, int(state)


def message_annotations(solution: Solution, state: Optional[int] = None, *, marginals: Optional[ForwardMessages] = None) -> dict:
    """Text for :func:`draw_unrolled`: message values at one state, per time step.

    All numbers are at the same state ``s`` at every step (the ``s`` in the labels);
    :func:`message_caption` writes the key that goes under the drawing.

    Args:
        solution: a :class:`~cai.Solution` (finite horizon, unbatched) from
            :func:`cai.backward_messages` or :func:`cai.soft_value_iteration`.
        state: the state ``s`` whose messages are shown; default the most likely initial state.
        marginals: optional :class:`~cai.ForwardMessages`; adds ``p(s_t = s | O)``.

    Returns:
        ``{node name: text}``: ``s_t`` gets ``V=`` the soft value ``V_t(s)`` (and ``p=`` the
        marginal ``p(s_t = s | O)``); ``a_t`` gets the largest soft Q-value
        ``max_a Q_t(s, a)`` and the probability ``pi_t(a* | s)`` of the policy's most likely
        action ``a*`` (for exact messages the posterior policy ``p(a_t | s_t = s, O)``);
        ``O_0`` gets ``log p(O_{0:T-1})`` (nats) for exact messages. Values are in reward units
        (for exact messages ``V_t = alpha log beta_t``, ``Q_t = alpha log beta_t(s, a)``).

    Raises:
        ValueError: for a batched or stationary solution, or a bad ``state``.
    """
    mdp, state = _check_annotated(solution, state)
    T = mdp.horizon
    anames = mdp.action_names or [str(a) for a in range(mdp.n_actions)]
    V = solution.V[:, state].tolist()
    out = {}
    for t in range(T + 1):
        text = f"V={V[t]:.3g}"
        if marginals is not None:
            text += f"\np={float(marginals.state[t, state]):.2f}"
        out[node_name("s", t)] = text
    for t in range(T):
        q = solution.q_at(t)[state]
        pi = solution.policy_at(t)[state]
        k = int(torch.argmax(pi))
        out[node_name("a", t)] = f"max$_a$ Q={float(q.max()):.3g}\n\u03c0({anames[k]}|s)={float(pi[k]):.2f}"
    if solution.log_evidence is not None:
        out["O_0"] = f"log p(O)={float(solution.log_evidence):.3g}"
    return out


def message_caption(solution: Solution, state: Optional[int] = None, *, marginals: bool = False) -> str:
    """The key to :func:`message_annotations`' numbers, to print under the drawing.

    Args:
        solution, state: as in :func:`message_annotations`.
        marginals: whether the annotations include the marginals ``p``.

    Returns:
        A few lines of plain text.
    """
    mdp, state = _check_annotated(solution, state)
    names = mdp.state_names or [str(s) for s in range(mdp.n_states)]
    alpha = solution.alpha.reshape(-1)[0].item() if isinstance(solution.alpha, torch.Tensor) else solution.alpha
    exact = solution.log_evidence is not None
    hard = solution.method == VI
    source = ("exact backward messages" if exact else
              "hard value iteration" if hard else f"{solution.method.replace('_', ' ')} (not exact inference)")
    temp = "" if hard else f"alpha = {alpha:g}, "
    lines = [f"numbers at one state s = {names[state]} at every step (the most likely start state), "
             f"{temp}{source}, in reward units:"]
    if hard:
        lines.append("V = value V_t(s) = max_a Q_t(s,a);  max_a Q = the largest Q-value")
    else:
        what = "V = soft value V_t(s)" + (" = \u03b1 log \u03b2_t(s)" if exact else "")
        what += ";  max_a Q = the largest soft Q-value max_a Q_t(s,a)"
        if solution.log_prior is None:                       # counting prior: V = alpha logsumexp(Q / alpha)
            what += " (V \u2265 max_a Q: V is a soft maximum)"
        lines.append(what)
    pol = ("\u03c0(a|s) = posterior policy p(a_t = a | s_t = s, O) of the most likely action a" if exact
           else "\u03c0(a|s) = the policy's probability of its most likely action a at s")
    if marginals:
        pol += ";  p = p(s_t = s | O)"
    if exact:
        pol += ";  log p(O) = log evidence (nats)"
    lines.append(pol)
    return "\n".join(lines)


_DX = 1.8          # horizontal distance between consecutive time steps
_GAP = 1.2         # width of the elided stretch of a long horizon, in time steps
#: where each kind's annotation goes: (dx, dy, horizontal alignment, vertical alignment)
_ANNOTATION_AT = {"state": (0.0, -0.32, "center", "top"), "action": (0.3, 0.24, "left", "center"),
                  "optimality": (0.0, 0.32, "center", "bottom"), "observation": (0.0, -0.32, "center", "top")}


def _drawn_times(T: int, max_steps: Optional[int]):
    """``(head, tail)``: draw decisions ``0 .. head-1`` and ``T-tail .. T-1``; ``tail = 0`` draws all."""
    if max_steps is None or max_steps + 1 >= T:                # leaving out a single step saves nothing
        return T, 0
    tail = min(2, max_steps // 2)
    return max_steps - tail, tail


def _unrolled_positions(g: nx.DiGraph, head: Optional[int] = None, tail: int = 0) -> dict:
    """Positions of the drawn nodes; with ``tail > 0`` the steps ``head+1 .. T-tail-1`` are left out
    (the states ``s_head`` and ``s_{T-tail}`` stay, ``_GAP`` steps apart)."""
    T = g.graph.get("T", max(d["time"] for _, d in g.nodes(data=True)))
    pos = {}
    for n, d in g.nodes(data=True):
        t, kind = d["time"], d["kind"]
        if tail:
            state = kind in ("state", "observation")
            if (t <= head) if state else (t < head):
                x = _DX * t
            elif t >= T - tail:
                x = _DX * (t - (T - tail) + head + _GAP)
            else:
                continue                                       # elided
        else:
            x = _DX * t
        pos[n] = {"state": (x, 0.0), "action": (x + _DX / 2, 1.0), "optimality": (x + _DX / 2, 2.2),
                  "observation": (x, -1.2)}[kind]
    return pos


def draw_unrolled(T: int = 3, *, ax: Optional[Axes] = None, annotations: Optional[Mapping[str, str]] = None,
                  final_state: bool = True, action_edges: bool = False, factor_labels: bool = True,
                  title: Optional[str] = None, caption: Optional[str] = None, max_steps: Optional[int] = 6,
                  observations: bool = False) -> Axes:
    """Draw the unrolled model the way a lecture slide does.

    Time runs left to right; states on the bottom row, actions above and between them,
    optimality variables on top, shaded as observed. Edges are coloured by the factor they carry,
    with a legend. A horizon of more than ``max_steps + 1`` decisions is drawn as its first steps,
    a dotted ellipsis naming the steps left out, and its last steps (the graph itself keeps every
    node).

    Args:
        T: number of decisions, or a graph from :func:`unrolled_graph`.
        ax: matplotlib Axes (a new figure when ``None``).
        annotations: ``{node name: text}`` written next to the nodes, e.g.
            :func:`message_annotations` of a solution (nodes not drawn are skipped).
        final_state, action_edges, observations: as in :func:`unrolled_graph` (when ``T`` is a
            number); ``observations=True`` draws the POMDP's observed ``o_t`` under the states.
        factor_labels: add a legend naming the factor of each edge colour.
        title: optional title.
        caption: optional text under the legend, e.g. :func:`message_caption`.
        max_steps: when ``T > max_steps + 1`` draw only ``max_steps`` decisions (``>= 2``): the
            first ``max_steps - 2`` and the last 2 (1 when ``max_steps < 4``); ``None`` draws
            them all.

    Returns:
        The matplotlib Axes.

    Raises:
        ValueError: if ``max_steps`` is not ``None`` or an integer >= 2.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer))
                                  or max_steps < 2):
        raise ValueError(f"max_steps: expected None or an integer >= 2, got {max_steps!r}")
    g = T if isinstance(T, nx.DiGraph) else unrolled_graph(T, final_state=final_state, action_edges=action_edges,
                                                           observations=observations)
    has_obs = any(d["kind"] == "observation" for _, d in g.nodes(data=True))
    T = g.graph.get("T", max(d["time"] for _, d in g.nodes(data=True)))
    head, tail = _drawn_times(T, max_steps)
    pos = _unrolled_positions(g, head, tail)
    h = g.subgraph(pos)
    if ax is None:
        _, ax = plt.subplots(figsize=(2.0 * (head + tail + (_GAP if tail else 0)) + 2.0, 4.2))
    colours = {"dynamics": "#1f4e79", "optimality": "#b35900", "action_prior": "#7f7f7f", "observation": "#2e7d32",
               "policy": "#7f7f7f"}
    styles = {"dynamics": "solid", "optimality": "solid", "action_prior": "dashed", "observation": "solid",
              "policy": "dashed"}
    for factor in colours:
        edges = [(u, v) for u, v, d in h.edges(data=True) if d["factor"] == factor]
        if edges:
            nx.draw_networkx_edges(h, pos, edgelist=edges, ax=ax, edge_color=colours[factor], style=styles[factor],
                                   width=1.6, arrows=True, arrowstyle="-|>", arrowsize=14, node_size=1300)
    if tail:
        # the elided stretch: a dotted line from s_head to s_{T-tail}, with what is left out
        (x0, _), (x1, _) = pos[node_name("s", head)], pos[node_name("s", T - tail)]
        ax.plot([x0 + 0.35, x1 - 0.35], [0.0, 0.0], ls=(0, (1, 3)), color=colours["dynamics"], lw=2.0, zorder=0)
        gone = T - tail - head                                 # decisions head .. T-tail-1 are left out
        span = f"t = {head}" if gone == 1 else f"t = {head}..{T - tail - 1}"
        ax.text((x0 + x1) / 2, 1.1, "\u22ef", ha="center", va="center", fontsize=22, color="#555555")
        ax.text((x0 + x1) / 2, 0.62, f"{gone} step{'s' if gone > 1 else ''}\nnot drawn\n({span})",
                ha="center", va="center", fontsize=7.5, color="#555555")
    fills = {"state": "white", "action": "white", "optimality": "#c8c8c8", "observation": "#c8c8c8"}
    for kind, fill in fills.items():
        nodes = [n for n, d in h.nodes(data=True) if d["kind"] == kind]
        nx.draw_networkx_nodes(h, pos, nodelist=nodes, ax=ax, node_color=fill, edgecolors="black",
                               linewidths=1.5, node_size=1300)
    nx.draw_networkx_labels(h, pos, labels={n: d["label"] for n, d in h.nodes(data=True)}, ax=ax, font_size=13)
    if annotations:
        for n, text in annotations.items():
            if n in pos:
                x, y = pos[n]
                dx, dy, ha, va = _ANNOTATION_AT[g.nodes[n]["kind"]]
                # zorder 1.5: over the edges (1), under the nodes (2); the white box keeps it legible
                ax.text(x + dx, y + dy, text, ha=ha, va=va, fontsize=8, color="#222222", zorder=1.5,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    anchor = None
    if factor_labels:
        present = {d["factor"] for _, _, d in h.edges(data=True)}
        handles = [Line2D([0], [0], color=colours[f], ls=styles[f], lw=1.6, label=FACTORS[f])
                   for f in colours if f in present]
        handles.append(Line2D([0], [0], marker="o", ls="", markerfacecolor="#c8c8c8", markeredgecolor="black",
                              markersize=11, label=r"observed: $O_t = 1$, $o_t$" if has_obs else r"observed: $O_t = 1$"))
        anchor = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=9,
                           frameon=False)
    if caption:
        if anchor is not None:
            ax.annotate(caption, xy=(0.5, 0.0), xycoords=anchor, xytext=(0, -2), textcoords="offset points",
                        ha="center", va="top", fontsize=8, color="#333333")
        else:
            ax.text(0.5, -0.02, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8, color="#333333")
    xs = [p[0] for p in pos.values()]
    ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
    low = -1.0 if annotations else -0.5
    ax.set_ylim(low - (1.3 if has_obs else 0.0), 3.0 if annotations else 2.7)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def draw_transition_graph(mdp: TabularMDP, *, policy: Optional[ArrayLike] = None, ax: Optional[Axes] = None,
                          threshold: float = 0.01, seed: int = 0, title: Optional[str] = None) -> Axes:
    """Draw :func:`transition_graph`: grid worlds at their cells, others with a seeded spring layout.

    Edge width and opacity follow the weight ``sum_a pi(a|s) P(s'|s,a)`` (uniform ``pi`` by
    default); self-loops are omitted; the initial states are outlined in green.

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    g = transition_graph(mdp, policy, threshold=threshold)
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    pos = nx.get_node_attributes(g, "pos") or nx.spring_layout(g, seed=seed)
    w = np.array([d["weight"] for _, _, d in g.edges(data=True)])
    if len(w):
        nx.draw_networkx_edges(g, pos, ax=ax, width=0.5 + 2.5 * w, alpha=0.7, edge_color="#1f4e79",
                               arrows=True, arrowsize=8, connectionstyle="arc3,rad=0.15", node_size=420)
    init = [n for n, d in g.nodes(data=True) if d["initial"] > 0]
    nx.draw_networkx_nodes(g, pos, ax=ax, node_size=420, node_color="white", edgecolors="black")
    nx.draw_networkx_nodes(g, pos, nodelist=init, ax=ax, node_size=420, node_color="white", edgecolors="green",
                           linewidths=2.5)
    if g.number_of_nodes() <= 60:
        nx.draw_networkx_labels(g, pos, labels={n: d["name"] for n, d in g.nodes(data=True)}, ax=ax, font_size=5)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
