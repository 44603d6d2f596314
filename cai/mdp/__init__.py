"""MDP models: the validated :class:`TabularMDP` and ready-made worlds."""
from .builders import (CLIFF_LAYOUT, GRID_ACTIONS, TWO_ROUTE_LAYOUT, chain, gridworld, lottery,
                       parse_layout, random_mdp, two_route)
from .tabular import ROW_SUM_TOL, TabularMDP

__all__ = ["TabularMDP", "ROW_SUM_TOL", "gridworld", "parse_layout", "chain", "random_mdp", "lottery",
           "two_route", "GRID_ACTIONS", "TWO_ROUTE_LAYOUT", "CLIFF_LAYOUT"]
