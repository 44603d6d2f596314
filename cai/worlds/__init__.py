"""Every named world, and the one registry (:data:`WORLDS`, :func:`make_world`) that the command
line, the report, the tutorials and the benchmarks use.

Builders (each returns a validated :class:`~cai.TabularMDP` with names and grid geometry):
:func:`gridworld` (a text layout), :func:`cliff`, :func:`two_route`, :func:`square`,
:func:`chain`, :func:`lottery`, :func:`random_mdp` (Garnet), :func:`bandit` and :func:`goal_lattice`
(goal reaching, for :mod:`cai.why.meta_pomdp`); gymnasium's toy-text worlds
(:func:`from_gymnasium`, needs the ``gym`` extra: ``control-as-inference[gym]``); and the continuous Multigoal world
(:class:`MultiGoalEnv`) for the deep learners.
"""
from cai.worlds.builders import (
                                 CLIFF_LAYOUT,
                                 GRID_ACTIONS,
                                 TWO_ROUTE_LAYOUT,
                                 bandit,
                                 chain,
                                 cliff,
                                 goal_lattice,
                                 gridworld,
                                 lottery,
                                 options_fork,
                                 parse_layout,
                                 random_mdp,
                                 square,
                                 square_layout,
                                 two_route,
)
from cai.worlds.gym import GYM_WORLDS, from_gymnasium
from cai.worlds.multigoal import GOALS, MultiGoalEnv, goal_hit_fractions
from cai.worlds.registry import WORLDS, World, load_layout, make_world, world_names
from cai.worlds.tabular_env import TabularEnv, one_hot_states

__all__ = [
    "TabularEnv", "one_hot_states",
    "gridworld", "parse_layout", "cliff", "two_route", "square", "square_layout", "chain", "lottery", "options_fork", "random_mdp", "bandit", "goal_lattice",
    "GRID_ACTIONS", "TWO_ROUTE_LAYOUT", "CLIFF_LAYOUT", "from_gymnasium", "GYM_WORLDS",
    "MultiGoalEnv", "GOALS", "goal_hit_fractions", "WORLDS", "World", "make_world", "world_names", "load_layout",
]
