"""cai: control as inference.

An MDP becomes a graphical model with optimality variables ``p(O_t = 1 | s_t, a_t) ∝
exp(r(s_t, a_t) / alpha)``; backward messages give soft Q and V, forward messages give posterior
marginals, and every number is checked against direct soft dynamic programming.
"""
from .dp import (PolicyMarginals, elbo, policy_marginals, policy_visitation, soft_policy_evaluation,
                 soft_value_iteration, value_iteration)
from .inference import (AmortizedPolicyGuide, ComparisonReport, DivergenceError, ForwardMessages, PolicyFit,
                        TabularPolicyGuide, Trajectories, TrajectoryModel, backward_messages, compare_inference,
                        fit_policy_closed_form, fit_policy_svi, forward_messages, posterior_dynamics,
                        pyro_log_evidence, pyro_sample_posterior, sample_posterior, sample_trajectories)
from .mdp import LinearGaussianSystem, TabularMDP
from .ops.recursion import ConvergenceWarning
from .solution import Solution
from .algorithms import (LMDP, SAC, SQL, MaxEntIRL, SoftDQN, compose, q_learning, soft_q_learning,
                         soft_reinforce)

__version__ = "0.1.0"

__all__ = [
    "TabularMDP",
    "soft_value_iteration",
    "value_iteration",
    "soft_policy_evaluation",
    "elbo",
    "policy_visitation",
    "policy_marginals",
    "PolicyMarginals",
    "backward_messages",
    "forward_messages",
    "posterior_dynamics",
    "sample_trajectories",
    "sample_posterior",
    "TrajectoryModel",
    "pyro_log_evidence",
    "pyro_sample_posterior",
    "fit_policy_svi",
    "fit_policy_closed_form",
    "TabularPolicyGuide",
    "AmortizedPolicyGuide",
    "PolicyFit",
    "compare_inference",
    "ComparisonReport",
    "Solution",
    "ForwardMessages",
    "Trajectories",
    "DivergenceError",
    "ConvergenceWarning",
    "MaxEntIRL",
    "LMDP",
    "compose",
    "soft_q_learning",
    "q_learning",
    "soft_reinforce",
    "LinearGaussianSystem",
    "SAC",
    "SQL",
    "SoftDQN",
]
