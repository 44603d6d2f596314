"""Pieces shared by the deep learners: seeding, the training-curve record, evaluation.

Environments follow the gymnasium API (``reset(seed=...) -> (obs, info)``,
``step(a) -> (obs, reward, terminated, truncated, info)``, ``observation_space.shape``,
``action_space.shape/low/high`` or ``action_space.n``). gymnasium itself is not imported here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

__all__ = ["seed_everything", "TrainingHistory", "evaluate_policy", "ActionScaler"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the learner's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@dataclass
class TrainingHistory:
    """Training-curve record, appended to while a learner trains.

    Attributes:
        episode_steps: Environment step at which each training episode ended.
        episode_returns: Undiscounted return of each training episode.
        eval_steps: Environment step of each evaluation.
        eval_returns: Returns of the evaluation episodes at that step (one list per evaluation).
        losses: Name -> list of ``(step, value)`` pairs, logged every ``log_every`` updates.
        wall_time: Seconds spent in ``fit`` (environment steps and updates, evaluations excluded).
        env_steps: Total environment steps taken in ``fit``.
    """

    episode_steps: List[int] = field(default_factory=list)
    episode_returns: List[float] = field(default_factory=list)
    eval_steps: List[int] = field(default_factory=list)
    eval_returns: List[List[float]] = field(default_factory=list)
    losses: dict = field(default_factory=dict)
    wall_time: float = 0.0
    env_steps: int = 0

    def log(self, step: int, **values: float) -> None:
        """Append ``(step, value)`` to each named loss curve."""
        for key, value in values.items():
            self.losses.setdefault(key, []).append((step, float(value)))

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second of training wall time."""
        return self.env_steps / self.wall_time if self.wall_time > 0 else float("nan")


def evaluate_policy(env, act: Callable[[np.ndarray], np.ndarray], n_episodes: int, seed: Optional[int] = None,
                    max_steps: int = 100_000) -> List[float]:
    """Run ``n_episodes`` full episodes of ``act`` (observation -> environment action); return their returns."""
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + i)
        total, done, steps = 0.0, False, 0
        while not done and steps < max_steps:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
            steps += 1
        returns.append(total)
    return returns


class ActionScaler:
    """Affine map between the learner's ``[-1, 1]^d`` and a Box action space ``[low, high]``."""

    def __init__(self, action_space):
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ValueError(f"action_space: expected finite bounds, got low={self.low}, high={self.high}")

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]^d -> [low, high]``."""
        return (self.low + 0.5 * (np.asarray(action, dtype=np.float64) + 1.0) * (self.high - self.low)).astype(np.float32)
