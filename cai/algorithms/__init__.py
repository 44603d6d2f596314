"""Algorithms that control as inference leads to, each a consumer of the core's messages and backups.

:mod:`cai.algorithms.tabular`: maximum-entropy inverse RL, linearly solvable MDPs, composable soft
Q, soft Q-learning and soft policy gradients. :mod:`cai.algorithms.deep` (torch): soft Q-learning
with amortised SVGD (SQL), soft actor-critic (SAC) and discrete soft Q-learning (soft DQN).
"""
from cai.algorithms.deep import PCL, SAC, SQL, DiscreteSAC, DiscreteSACConfig, PCLConfig, ReplayBuffer, SACConfig, SoftDQN, SoftDQNConfig, SQLConfig, Transition
from cai.algorithms.tabular import (
                                    LMDP,
                                    Composition,
                                    LMDPSolution,
                                    MaxEntIRL,
                                    PGResult,
                                    PolynomialStepSize,
                                    TDResult,
                                    combined_mdp,
                                    compose,
                                    controlled_from_policy,
                                    pcl,
                                    q_learning,
                                    reinforce_gradient,
                                    soft_q_learning,
                                    soft_reinforce,
                                    validate_demonstrations,
)

__all__ = [
    "MaxEntIRL", "validate_demonstrations",
    "LMDP", "LMDPSolution", "controlled_from_policy",
    "compose", "combined_mdp", "Composition",
    "soft_q_learning", "q_learning", "PolynomialStepSize", "TDResult",
    "soft_reinforce", "reinforce_gradient", "PGResult",
    "pcl", "DiscreteSAC", "DiscreteSACConfig", "PCL", "PCLConfig",
    "SAC", "SACConfig", "SQL", "SQLConfig", "SoftDQN", "SoftDQNConfig", "ReplayBuffer", "Transition",
]
