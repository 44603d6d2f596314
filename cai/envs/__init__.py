"""Deprecated: the Multigoal world moved to :mod:`cai.worlds.multigoal` (its figure to
:func:`cai.viz.plot_multigoal`); this alias is removed in cai 0.3."""
from cai._compat import moved_names

__getattr__ = moved_names(__name__, {"GOALS": "cai.worlds.multigoal", "MultiGoalEnv": "cai.worlds.multigoal",
                                     "goal_hit_fractions": "cai.worlds.multigoal",
                                     "plot_multigoal": "cai.viz.multigoal"})
