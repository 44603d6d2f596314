"""Tabular algorithms: MaxEnt IRL (batched, adversarial, Bayesian), LMDPs, composable soft Q, soft Q-learning,
soft policy gradients, path consistency learning.

Each is a consumer of the core's messages and backups and is tested against the exact answer.
"""
from cai.algorithms.tabular.airl import AIRL
from cai.algorithms.tabular.bayes_irl import BayesianIRL
from cai.algorithms.tabular.composition import Composition, combined_mdp, compose
from cai.algorithms.tabular.irl import MaxEntIRL, validate_demonstrations
from cai.algorithms.tabular.irl_many import ManyIRLFit, fit_many
from cai.algorithms.tabular.lmdp import LMDP, LMDPSolution, controlled_from_policy
from cai.algorithms.tabular.pcl import PCLResult, path_residuals, pcl, pcl_residual
from cai.algorithms.tabular.policy_gradient import PGResult, reinforce_gradient, soft_reinforce
from cai.algorithms.tabular.soft_q import PolynomialStepSize, TDResult, q_learning, soft_q_learning

__all__ = [
    "MaxEntIRL", "validate_demonstrations", "fit_many", "ManyIRLFit", "AIRL", "BayesianIRL", "LMDP", "LMDPSolution", "controlled_from_policy",
    "compose", "combined_mdp", "Composition", "soft_q_learning", "q_learning", "PolynomialStepSize", "TDResult",
    "soft_reinforce", "reinforce_gradient", "PGResult", "pcl", "pcl_residual", "path_residuals", "PCLResult",
]
