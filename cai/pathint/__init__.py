"""Path integral control (Kappen 2005) and MPPI (Williams et al. 2017): sampling-based control as
inference, with the control noise tied to the temperature (``Sigma = alpha R^{-1}``), checked
against the exact linear-Gaussian messages and run on the Multigoal world."""
from cai.pathint.core import MPPIController, PathIntegralEstimate, path_integral_step
from cai.pathint.systems import (
    lg_control_cost,
    lg_exact_first_control,
    lg_path_integral_control,
    lg_rollout,
    multigoal_mppi,
    multigoal_rollout,
)

__all__ = ["PathIntegralEstimate", "path_integral_step", "MPPIController", "lg_rollout", "lg_control_cost",
           "lg_path_integral_control", "lg_exact_first_control", "multigoal_rollout", "multigoal_mppi"]
