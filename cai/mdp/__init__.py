"""Models: the validated :class:`TabularMDP` and :class:`LinearGaussianSystem`, with their input checks.

Named worlds (grids, the cliff, chain, lottery, Garnet, gymnasium imports) live in :mod:`cai.worlds`.
"""
from cai._compat import moved_names
from cai.mdp.linear_gaussian import LinearGaussianSystem
from cai.mdp.tabular import ROW_SUM_TOL, TabularMDP

__all__ = ["TabularMDP", "LinearGaussianSystem", "ROW_SUM_TOL"]

__getattr__ = moved_names(__name__, dict.fromkeys(
    ["gridworld", "parse_layout", "chain", "cliff", "random_mdp", "lottery", "two_route", "from_gymnasium",
     "GYM_WORLDS", "GRID_ACTIONS", "TWO_ROUTE_LAYOUT", "CLIFF_LAYOUT"], "cai.worlds"))
