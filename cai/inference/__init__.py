"""Inference in the control-as-inference graphical model.

Exact message passing (:mod:`.messages`), trajectory sampling (:mod:`.sampling`), the MDP as a
Pyro program with exact enumeration (:mod:`.pyro_model`), variational trajectory inference
(:mod:`.svi`) and the side-by-side comparison (:mod:`.compare`).
"""
from .compare import ComparisonReport, compare_inference
from .linear_gaussian import (LinearGaussianMarginals, LinearGaussianMessages, lg_backward_messages,
                              lg_forward_messages, lg_soft_value_iteration)
from .messages import (DivergenceError, ForwardMessages, backward_messages, forward_messages,
                       posterior_dynamics)
from .pyro_model import TrajectoryModel, pyro_log_evidence, pyro_sample_posterior
from .sampling import Trajectories, sample_posterior, sample_trajectories, transition_rows
from .svi import (AmortizedPolicyGuide, PolicyFit, TabularPolicyGuide, fit_policy_closed_form, fit_policy_svi,
                  guide_elbo, state_marginals)

__all__ = [
    "backward_messages", "forward_messages", "posterior_dynamics", "ForwardMessages",
    "DivergenceError", "Trajectories", "sample_trajectories", "sample_posterior", "transition_rows",
    "TrajectoryModel", "pyro_log_evidence", "pyro_sample_posterior",
    "fit_policy_svi", "fit_policy_closed_form", "TabularPolicyGuide", "AmortizedPolicyGuide", "PolicyFit",
    "guide_elbo", "state_marginals", "compare_inference", "ComparisonReport",
    "lg_soft_value_iteration", "lg_backward_messages", "lg_forward_messages", "LinearGaussianMessages",
    "LinearGaussianMarginals",
]
