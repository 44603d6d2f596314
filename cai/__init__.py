"""cai: control as inference.

An MDP becomes a graphical model with optimality variables ``p(O_t = 1 | s_t, a_t) ∝
exp(r(s_t, a_t) / alpha)``; backward messages give soft Q and V, forward messages give posterior
marginals, and every number is checked against direct soft dynamic programming.
"""
from cai._version import __version__
from cai.algorithms import (
                            LMDP,
                            PCL,
                            SAC,
                            SQL,
                            DiscreteSAC,
                            DiscreteSACConfig,
                            MaxEntIRL,
                            PCLConfig,
                            SACConfig,
                            SoftDQN,
                            SoftDQNConfig,
                            SQLConfig,
                            compose,
                            pcl,
                            q_learning,
                            soft_q_learning,
                            soft_reinforce,
)
from cai.app import explore
from cai.dp import (
                            PolicyMarginals,
                            elbo,
                            modified_policy_iteration,
                            policy_iteration,
                            policy_marginals,
                            policy_visitation,
                            soft_policy_evaluation,
                            soft_policy_iteration,
                            soft_value_iteration,
                            value_iteration,
)
from cai.exact import (
                            DivergenceError,
                            ForwardMessages,
                            Trajectories,
                            backward_messages,
                            forward_messages,
                            posterior_dynamics,
                            sample_posterior,
                            sample_trajectories,
)
from cai.mdp import LinearGaussianSystem, TabularMDP
from cai.ops.recursion import ConvergenceWarning
from cai.ppl import (
                            AmortizedPolicyGuide,
                            PolicyFit,
                            TabularPolicyGuide,
                            TrajectoryModel,
                            fit_policy_closed_form,
                            fit_policy_svi,
                            pyro_log_evidence,
                            pyro_sample_posterior,
)
from cai.report import ComparisonReport, compare_inference
from cai.solution import Solution

__all__ = [
    "__version__",
    "TabularMDP",
    "soft_value_iteration",
    "value_iteration",
    "soft_policy_evaluation",
    "soft_policy_iteration",
    "policy_iteration",
    "modified_policy_iteration",
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
    "SACConfig",
    "SQL",
    "SQLConfig",
    "SoftDQN",
    "explore",
    "SoftDQNConfig",
    "DiscreteSAC",
    "DiscreteSACConfig",
    "PCL",
    "PCLConfig",
    "pcl",
]
