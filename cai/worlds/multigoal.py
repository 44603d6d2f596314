"""The multi-goal point-mass environment of Haarnoja et al. (2017), with its plot.

A point in the plane moves by its action: ``s' = clip(s + a, -7, 7)`` with ``a`` clipped to
``[-1, 1]^2``. Four goals sit at ``(±5, 0)`` and ``(0, ±5)``. The reward is

    r(s, a, s') = -(30 |a|^2 + min_g |s' - g|^2) + 10 [min_g |s' - g| <= 1]

and the episode terminates on reaching a goal (within radius 1), or is truncated after
``max_episode_steps``. The initial state is ``N(0, 0.1^2 I)``. A policy that is good from the
origin must pick a goal, and a maximum-entropy policy keeps all four: the multimodality test.

The environment follows the gymnasium API. When gymnasium is installed it subclasses
``gymnasium.Env`` and its spaces are ``gymnasium.spaces.Box``; otherwise a minimal ``Box`` with
``low``, ``high``, ``shape``, ``dtype``, ``sample()`` and ``contains()`` stands in.

References:
    Haarnoja, Tang, Abbeel, Levine (2017). Reinforcement learning with deep energy-based
    policies. ICML, §6.1 and Fig. 1.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

try:  # optional dependency
    import gymnasium as _gym
    from gymnasium.spaces import Box
    _Base = _gym.Env
except ImportError:  # pragma: no cover - exercised only without gymnasium
    _gym = None
    _Base = object

    class Box:
        """Stand-in for ``gymnasium.spaces.Box`` (a closed box ``[low, high]``)."""

        def __init__(self, low, high, shape=None, dtype=np.float32, seed=None):
            shape = tuple(shape) if shape is not None else np.shape(low)
            self.low = np.broadcast_to(np.asarray(low, dtype=dtype), shape).copy()
            self.high = np.broadcast_to(np.asarray(high, dtype=dtype), shape).copy()
            self.shape, self.dtype = shape, np.dtype(dtype)
            self._rng = np.random.default_rng(seed)

        def sample(self):
            return self._rng.uniform(self.low, self.high).astype(self.dtype)

        def contains(self, x) -> bool:
            x = np.asarray(x)
            return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

        def seed(self, seed=None):
            self._rng = np.random.default_rng(seed)


__all__ = ["MultiGoalEnv", "GOALS", "goal_hit_fractions"]

GOALS = np.array([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])


class MultiGoalEnv(_Base):
    """Multi-goal 2-D point mass (Haarnoja et al. 2017).

    Args:
        max_episode_steps: Truncation horizon (30 in the paper's experiment).
        action_cost: Coefficient of ``|a|^2`` (30).
        distance_cost: Coefficient of ``min_g |s' - g|^2`` (1).
        goal_reward: Bonus on reaching a goal (10).
        goal_radius: Distance that counts as reaching a goal (1).
        init_sigma: Standard deviation of the initial state around the origin (0.1).
        bound: Positions are clipped to ``[-bound, bound]^2`` (7).

    ``reset(seed=None, options=None)`` returns ``(obs, info)``; ``options={"state": (x, y)}`` starts
    from a given position. ``step(a)`` returns ``(obs, reward, terminated, truncated, info)`` with
    ``info["goal"]`` the index into :data:`GOALS` of the goal reached, or -1.
    """

    metadata = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 30, action_cost: float = 30.0, distance_cost: float = 1.0,
                 goal_reward: float = 10.0, goal_radius: float = 1.0, init_sigma: float = 0.1, bound: float = 7.0) -> None:
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: expected >= 1, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)
        self.action_cost, self.distance_cost = float(action_cost), float(distance_cost)
        self.goal_reward, self.goal_radius = float(goal_reward), float(goal_radius)
        self.init_sigma, self.bound = float(init_sigma), float(bound)
        self.goals = GOALS.copy()
        self.observation_space = Box(low=-self.bound, high=self.bound, shape=(2,), dtype=np.float32)
        self.action_space = Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32)
        self._rng = np.random.default_rng()
        self._state = np.zeros(2)
        self._t = 0

    def goal_cost(self, positions: np.ndarray) -> np.ndarray:
        """``distance_cost * min_g |s - g|^2`` for positions ``(..., 2)``; returns ``(...)``."""
        d2 = ((np.asarray(positions)[..., None, :] - self.goals) ** 2).sum(-1)
        return self.distance_cost * d2.min(-1)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            if _gym is not None:
                super().reset(seed=seed)
        if options is not None and "state" in options:
            self._state = np.asarray(options["state"], dtype=np.float64).reshape(2).copy()
        else:
            self._state = self.init_sigma * self._rng.standard_normal(2)
        self._t = 0
        return self._state.astype(np.float32), {}

    def step(self, action: np.ndarray) -> Tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        self._state = np.clip(self._state + a, -self.bound, self.bound)
        self._t += 1
        dist = np.sqrt(((self._state - self.goals) ** 2).sum(-1))
        at_goal = bool(dist.min() <= self.goal_radius)
        reward = -(self.action_cost * float(a @ a) + float(self.goal_cost(self._state)))
        if at_goal:
            reward += self.goal_reward
        info = {"goal": int(dist.argmin()) if at_goal else -1}
        truncated = (not at_goal) and self._t >= self.max_episode_steps
        return self._state.astype(np.float32), reward, at_goal, truncated, info


def goal_hit_fractions(env: MultiGoalEnv, act: Callable[[np.ndarray], np.ndarray], n_rollouts: int = 100,
                       start: Tuple[float, float] = (0.0, 0.0), seed: int = 0) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Roll out ``act`` (observation -> action) ``n_rollouts`` times from ``start``.

    Args:
        env: The environment.
        act: Policy, one observation ``(2,)`` -> one action ``(2,)`` (stochastic policies are sampled).
        n_rollouts: Number of rollouts.
        start: Initial position of every rollout (the origin by default).
        seed: Seed of the first reset.

    Returns:
        tuple: ``(fractions (4,), paths)``: the fraction of rollouts that reached each goal of
        :data:`GOALS`, and the list of position arrays ``(L, 2)``.
    """
    hits = np.zeros(len(env.goals))
    paths = []
    env.reset(seed=seed)
    for _ in range(n_rollouts):
        obs, _ = env.reset(options={"state": start})
        path, done, info = [obs], False, {"goal": -1}
        while not done:
            obs, _, terminated, truncated, info = env.step(act(obs))
            path.append(obs)
            done = terminated or truncated
        if info["goal"] >= 0:
            hits[info["goal"]] += 1
        paths.append(np.array(path))
    return hits / n_rollouts, paths
