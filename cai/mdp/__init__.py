"""MDP models: the validated :class:`TabularMDP`, ready-made worlds, gymnasium import, linear-Gaussian systems."""
from .builders import (CLIFF_LAYOUT, GRID_ACTIONS, TWO_ROUTE_LAYOUT, chain, cliff, gridworld, lottery,
                       parse_layout, random_mdp, two_route)
from .gym import GYM_WORLDS, from_gymnasium
from .linear_gaussian import LinearGaussianSystem
from .tabular import ROW_SUM_TOL, TabularMDP

__all__ = ["TabularMDP", "ROW_SUM_TOL", "gridworld", "parse_layout", "chain", "cliff", "random_mdp", "lottery",
           "two_route", "from_gymnasium", "LinearGaussianSystem", "GYM_WORLDS", "GRID_ACTIONS", "TWO_ROUTE_LAYOUT", "CLIFF_LAYOUT"]
