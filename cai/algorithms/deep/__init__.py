"""Deep MaxEnt RL in torch: SQL (amortised SVGD), SAC (twin Q, automatic temperature) and soft DQN.

The three share one off-policy loop (:mod:`.loop`), one learner base with resumable ``fit``,
callbacks and ``save`` / ``load`` (:mod:`.base`), one replay buffer (:mod:`.replay`) and the
networks and target updates of :mod:`.networks`. Reusable callbacks (evaluation, checkpoints, early
stopping, TensorBoard) are in :mod:`.callbacks`; :func:`train` (``config -> metrics``, for
:func:`cai.sweep.sweep`) and the Ray Tune trainable in :mod:`.experiment`.
"""
from cai.algorithms.deep.base import NotFittedError, OffPolicyLearner
from cai.algorithms.deep.callbacks import BaseCallback, CallbackList, CheckpointCallback, EarlyStopping, EvalCallback, TensorBoardCallback
from cai.algorithms.deep.experiment import train, tune_trainable
from cai.algorithms.deep.loop import LoopConfig, TrainingHistory
from cai.algorithms.deep.replay import ReplayBuffer, Transition
from cai.algorithms.deep.sac import SAC, SACConfig
from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig
from cai.algorithms.deep.sql import SQL, SQLConfig

__all__ = ["SAC", "SACConfig", "SQL", "SQLConfig", "SoftDQN", "SoftDQNConfig", "ReplayBuffer", "Transition",
           "LoopConfig", "TrainingHistory", "OffPolicyLearner", "NotFittedError", "BaseCallback", "CallbackList",
           "EvalCallback", "CheckpointCallback", "EarlyStopping", "TensorBoardCallback", "train", "tune_trainable"]
