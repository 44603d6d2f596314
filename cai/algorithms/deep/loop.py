"""Pieces shared by the deep learners: seeding, the training-curve record, evaluation, the off-policy loop.

Environments follow the gymnasium API (``reset(seed=...) -> (obs, info)``,
``step(a) -> (obs, reward, terminated, truncated, info)``, ``observation_space.shape``,
``action_space.shape/low/high`` or ``action_space.n``). gymnasium itself is not imported here.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import gymnasium

__all__ = ["seed_everything", "LoopConfig", "TrainingHistory", "evaluate_policy", "ActionScaler", "setup_box_learner",
           "run_off_policy"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the learner's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@dataclass
class LoopConfig:
    """Settings every deep learner's config shares (its own fields follow these).

    Attributes:
        eval_every: Evaluate every this many environment steps (0: never).
        eval_episodes: Episodes per evaluation.
        log_every: Record losses every this many updates.
        seed: Seed of torch, NumPy, the replay buffer and the environment.
        device: Torch device.
        progress: Show a tqdm progress bar.
    """

    eval_every: int = 0
    eval_episodes: int = 10
    log_every: int = 100
    seed: int = 0
    device: str = "cpu"
    progress: bool = True


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


def evaluate_policy(env: gymnasium.Env, act: Callable[[np.ndarray], np.ndarray], n_episodes: int, seed: Optional[int] = None,
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

    def __init__(self, action_space: gymnasium.spaces.Box) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ValueError(f"action_space: expected finite bounds, got low={self.low}, high={self.high}")

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]^d -> [low, high]``."""
        return (self.low + 0.5 * (np.asarray(action, dtype=np.float64) + 1.0) * (self.high - self.low)).astype(np.float32)


def setup_box_learner(learner: Any, env: gymnasium.Env) -> Tuple[int, int, torch.device]:
    """Seed and size a learner for an environment with a Box action space.

    Sets ``learner.rng_`` (from ``learner.config.seed``), ``learner.action_dim_`` and
    ``learner.scaler_``; returns ``(obs_dim, action_dim, device)``.
    """
    learner.rng_ = seed_everything(learner.config.seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    learner.action_dim_ = int(np.prod(env.action_space.shape))
    learner.scaler_ = ActionScaler(env.action_space)
    return obs_dim, learner.action_dim_, torch.device(learner.config.device)


def run_off_policy(agent: Any, env: gymnasium.Env, total_steps: int, eval_env: Optional[gymnasium.Env] = None, *, random_action: Callable[[], Any],
                   policy_action: Callable[[np.ndarray], Any], to_env: Optional[Callable[[Any], Any]] = None,
                   updates_per_step: int = 1, train_every: int = 1, desc: str = "") -> TrainingHistory:
    """The off-policy training loop shared by SAC, SQL and soft DQN; fills ``agent.history_``.

    Each environment step:

    1. act: ``random_action()`` for the first ``config.learning_starts`` steps, then
       ``policy_action(obs)``; the environment gets ``to_env(action)``, the replay buffer ``action``;
    2. store the transition and record finished episodes (step count, undiscounted return);
    3. learn: from step ``learning_starts`` on, every ``train_every`` steps, ``updates_per_step`` calls of
       ``agent.update(agent.buffer_.sample(config.batch_size))``; losses are logged whenever
       ``agent.n_updates_`` is a multiple of ``config.log_every``;
    4. every ``config.eval_every`` steps, run ``config.eval_episodes`` episodes of ``agent.act`` on
       ``eval_env`` (this time is excluded from ``history_.wall_time``).

    Args:
        agent: A built learner with ``config`` (``learning_starts``, ``batch_size``, ``log_every``,
            ``eval_every``, ``eval_episodes``, ``seed``, ``progress``), ``buffer_``, ``history_``,
            ``n_updates_``, ``update(batch) -> dict of 0-dim tensors`` and ``act(obs)``.
        env: Training environment (gymnasium API); reset with ``config.seed``.
        total_steps: Environment steps.
        eval_env: Evaluation environment; None means a deep copy of ``env`` taken before its reset.
        random_action: Warm-up action (draws from the learner's own generator).
        policy_action: Behaviour action for an observation after the warm-up.
        to_env: Map from the buffer's action to the environment's; None means identity.
        updates_per_step: Gradient updates per training step.
        train_every: Environment steps between training steps.
        desc: Progress-bar label.

    Returns:
        TrainingHistory: ``agent.history_``.
    """
    cfg = agent.config
    eval_env = copy.deepcopy(env) if eval_env is None else eval_env
    hist = agent.history_
    obs, _ = env.reset(seed=cfg.seed)
    ep_return, t_start = 0.0, time.perf_counter()
    for step in tqdm(range(total_steps), disable=not cfg.progress, desc=desc, mininterval=1.0):
        # 1. act: uniform at first, then the behaviour policy
        action = random_action() if step < cfg.learning_starts else policy_action(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action if to_env is None else to_env(action))
        # 2. store, episode bookkeeping
        agent.buffer_.add(obs, action, reward, next_obs, terminated)
        ep_return += float(reward)
        obs = next_obs
        if terminated or truncated:
            hist.episode_steps.append(step + 1)
            hist.episode_returns.append(ep_return)
            obs, _ = env.reset()
            ep_return = 0.0
        # 3. learn
        if step + 1 >= cfg.learning_starts and (step + 1) % train_every == 0:
            for _ in range(updates_per_step):
                losses = agent.update(agent.buffer_.sample(cfg.batch_size))
                if agent.n_updates_ % cfg.log_every == 0:
                    hist.log(step + 1, **{k: v.item() for k, v in losses.items()})
        # 4. evaluate (not timed)
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            hist.wall_time += time.perf_counter() - t_start
            hist.eval_steps.append(step + 1)
            hist.eval_returns.append(evaluate_policy(eval_env, agent.act, cfg.eval_episodes,
                                                     seed=cfg.seed + 10_000 + step))
            t_start = time.perf_counter()
    hist.wall_time += time.perf_counter() - t_start
    hist.env_steps = total_steps
    return hist
