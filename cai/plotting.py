"""Deprecated: the figures moved to :mod:`cai.viz`, the sweep's numbers to :mod:`cai.report.sweeps`
(moved in 0.2; this alias is removed in 0.3)."""
import warnings

import torch

from cai.dp.visitation import policy_marginals
from cai.mdp.tabular import TabularMDP
from cai.report.sweeps import TemperatureSweep, sweep_temperature
from cai.typing import ArrayLike
from cai.viz import (
    action_moves,
    compare_solutions,
    marginals_animation,
    policy_arrows,
    soft_q_heatmap,
    state_marginals,
    temperature_sweep,
    trajectories_on_grid,
    value_heatmap,
)

warnings.warn("cai.plotting moved to cai.viz (figures) and cai.report.sweeps (sweep_temperature); "
              "the old name will be removed in cai 0.3", DeprecationWarning, stacklevel=2)

__all__ = ["value_heatmap", "soft_q_heatmap", "policy_arrows", "state_marginals", "marginals_animation",
           "compare_solutions", "trajectories_on_grid", "temperature_sweep", "sweep_temperature",
           "policy_state_marginals", "TemperatureSweep", "action_moves"]


def policy_state_marginals(mdp: TabularMDP, policy: ArrayLike) -> torch.Tensor:
    """Deprecated: ``cai.policy_marginals(mdp, policy).state``."""
    return policy_marginals(mdp, policy).state
