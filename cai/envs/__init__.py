"""Environments for the deep MaxEnt learners (gymnasium API; gymnasium itself optional)."""

from cai.envs.multigoal import GOALS, MultiGoalEnv, goal_hit_fractions, plot_multigoal

__all__ = ["GOALS", "MultiGoalEnv", "goal_hit_fractions", "plot_multigoal"]
