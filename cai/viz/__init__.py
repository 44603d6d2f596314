"""Figures for lectures (matplotlib): every function takes ``ax=None`` and returns its Axes.

By subject: :mod:`.grid` (values, soft Q, policy arrows, exact vs variational, trajectories on a
grid; bar charts per state for worlds without a grid), :mod:`.marginals` (state marginals over time, animated), :mod:`.sweep` (the temperature
sweep), :mod:`.graph` (the unrolled graphical model and the transition graph, networkx) and
:mod:`.multigoal` (the Multigoal world) and :mod:`.why` (why MaxEnt RL). Figures compute nothing of their own: the numbers come
from the solvers and from :mod:`cai.report`.

:mod:`.styles` holds the ``paper`` and ``slides`` styles (:func:`style`) and :func:`save_figure`
(PNG, SVG, PDF).

Grid figures read the geometry that the world builders store in ``mdp.metadata`` (``"shape"``,
``"coords"``, ``"start"``, ``"goals"``, ``"lava"``); arguments that hold values or policies
accept a :class:`~cai.Solution` (the step ``t`` is taken from it) or an array.
"""
from cai.viz.common import action_moves, figure_size, number_format
from cai.viz.graph import draw_transition_graph, draw_unrolled, message_annotations, message_caption, transition_graph, unrolled_graph
from cai.viz.grid import (
    compare_solutions,
    policy_arrows,
    policy_bars,
    policy_entropy,
    soft_q_heatmap,
    trajectories_on_grid,
    trajectory_comparison,
    value_heatmap,
)
from cai.viz.marginals import marginals_animation, state_marginals
from cai.viz.multigoal import plot_multigoal
from cai.viz.styles import FORMATS, STYLES, save_figure, style
from cai.viz.sweep import temperature_sweep
from cai.viz.why import dynamics_robustness, myopic_vs_maxent, policy_iteration_progress, robust_reward_curve, temperature_dual, tie_breaking

__all__ = [
    "value_heatmap", "soft_q_heatmap", "policy_arrows", "policy_bars", "policy_entropy", "compare_solutions",
    "trajectories_on_grid", "trajectory_comparison", "number_format", "figure_size", "style", "save_figure", "STYLES", "FORMATS",
    "state_marginals", "marginals_animation", "temperature_sweep", "action_moves",
    "unrolled_graph", "transition_graph", "message_annotations", "message_caption", "draw_unrolled",
    "draw_transition_graph", "plot_multigoal",
    "policy_iteration_progress", "tie_breaking", "myopic_vs_maxent", "temperature_dual", "robust_reward_curve", "dynamics_robustness",
]
