"""Algorithms that control as inference leads to, each a consumer of the core's messages and backups.

Tabular: maximum-entropy inverse RL, linearly solvable MDPs, composable soft Q, soft Q-learning
and soft policy gradients. Deep (torch): soft Q-learning with amortised SVGD (SQL), soft
actor-critic (SAC) and discrete soft Q-learning (soft DQN), sharing one replay buffer.
"""
from .composition import Composition, combined_mdp, compose
from .irl import MaxEntIRL, validate_demonstrations
from .lmdp import LMDP, LMDPSolution, controlled_from_policy
from .policy_gradient import PGResult, reinforce_gradient, soft_reinforce
from .replay import ReplayBuffer, Transition
from .sac import SAC, SACConfig
from .soft_dqn import SoftDQN, SoftDQNConfig
from .sql import SQL, SQLConfig
from .tabular_soft_q import PolynomialStepSize, TDResult, q_learning, soft_q_learning

__all__ = [
    "MaxEntIRL", "validate_demonstrations",
    "LMDP", "LMDPSolution", "controlled_from_policy",
    "compose", "combined_mdp", "Composition",
    "soft_q_learning", "q_learning", "PolynomialStepSize", "TDResult",
    "soft_reinforce", "reinforce_gradient", "PGResult",
    "SAC", "SACConfig", "SQL", "SQLConfig", "SoftDQN", "SoftDQNConfig", "ReplayBuffer", "Transition",
]
