"""MDP models: the validated :class:`TabularMDP` (builders and continuous systems join here)."""
from .tabular import ROW_SUM_TOL, TabularMDP

__all__ = ["TabularMDP", "ROW_SUM_TOL"]
