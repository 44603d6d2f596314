"""Uniform experience replay shared by SAC, soft Q-learning (SVGD) and soft DQN."""

from __future__ import annotations

import copy
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

__all__ = ["Transition", "ReplayBuffer", "PathBatch", "PathReplayBuffer"]


class Transition(NamedTuple):
    """A batch of transitions (``B`` = batch size), all torch tensors on the buffer's device.

    Attributes:
        obs: ``(B, *obs_shape)`` float32.
        action: ``(B, *action_shape)``; float32 for continuous actions, int64 for discrete ones.
        reward: ``(B,)`` float32.
        next_obs: ``(B, *obs_shape)`` float32.
        terminated: ``(B,)`` float32, 1.0 where ``next_obs`` is terminal (no bootstrap). Time-limit
            truncations are *not* terminal: their next state still has a value.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


class ReplayBuffer:
    """Fixed-capacity ring buffer with uniform sampling, stored in preallocated NumPy arrays.

    Args:
        capacity: Maximum number of transitions; the oldest are overwritten.
        obs_shape: Shape of one observation.
        action_shape: Shape of one action; ``()`` for a discrete action index.
        discrete: Store actions as int64 indices instead of float32 vectors.
        device: Device of the sampled tensors.
        seed: Seed of the sampling generator.

    Raises:
        ValueError: If ``capacity`` is not a positive integer.
    """

    _ARRAYS = ("obs", "action", "reward", "next_obs", "terminated")

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple = (), discrete: bool = False,
                 device: str = "cpu", seed: Optional[int] = None) -> None:
        if int(capacity) != capacity or capacity < 1:
            raise ValueError(f"capacity: expected a positive integer, got {capacity!r}")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=np.float32)
        self.action = np.zeros((self.capacity, *action_shape), dtype=np.int64 if discrete else np.float32)
        self.reward = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self._next = 0
        self._size = 0
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self._size

    def add(self, obs: np.ndarray, action: Union[np.ndarray, int], reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        """Store one transition (overwriting the oldest when full)."""
        i = self._next
        self.obs[i] = obs
        self.action[i] = action
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self._next = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def sample(self, batch_size: int) -> Transition:
        """Sample ``batch_size`` transitions uniformly with replacement.

        Raises:
            ValueError: If the buffer is empty.
        """
        if self._size == 0:
            raise ValueError("buffer: expected at least one stored transition, got an empty buffer")
        idx = self._rng.integers(0, self._size, size=batch_size)

        def t(x):
            return torch.from_numpy(x[idx]).to(self.device)

        return Transition(t(self.obs), t(self.action), t(self.reward), t(self.next_obs), t(self.terminated))

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: the stored transitions, the write position, the sampler's RNG.

        Only the filled part of the arrays is copied (a half-empty 1M buffer costs what it holds).

        Returns:
            dict: ``capacity``, ``next``, ``size``, ``rng`` (the NumPy bit generator's state) and
            the arrays ``obs``, ``action``, ``reward``, ``next_obs``, ``terminated`` (first ``size`` rows).
        """
        n = self._size
        return dict(capacity=self.capacity, next=self._next, size=n, rng=copy.deepcopy(self._rng.bit_generator.state),
                    **{k: getattr(self, k)[:n].copy() for k in self._ARRAYS})

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` into a buffer of the same capacity and shapes.

        Raises:
            ValueError: If the capacity or an array's shape or dtype differs.
        """
        if state["capacity"] != self.capacity:
            raise ValueError(f"state: expected a buffer of capacity {self.capacity}, got {state['capacity']}")
        n = int(state["size"])
        for k in self._ARRAYS:
            mine, theirs = getattr(self, k), np.asarray(state[k])
            if theirs.shape != (n, *mine.shape[1:]) or theirs.dtype != mine.dtype:
                raise ValueError(f"state: expected {k} of shape {(n, *mine.shape[1:])} and dtype {mine.dtype}, "
                                 f"got shape {theirs.shape} and dtype {theirs.dtype}")
        for k in self._ARRAYS:
            arr = getattr(self, k)
            arr[:] = 0
            arr[:n] = state[k]
        self._next, self._size = int(state["next"]), n
        self._rng.bit_generator.state = copy.deepcopy(state["rng"])


class PathBatch(NamedTuple):
    """A batch of sub-paths of up to ``d`` consecutive steps (``B`` paths), torch tensors.

    A path starts at a uniformly drawn stored step and follows the episode for ``d`` steps or until
    the episode ends (terminated, truncated or the buffer's newest step), whichever comes first:
    ``mask`` marks the valid steps (a prefix) and ``end_obs`` is the observation after the last
    valid step (to bootstrap from unless ``terminated``).

    Attributes:
        obs: ``(B, d, *obs_shape)`` float32. action: ``(B, d, *action_shape)``.
        reward: ``(B, d)`` float32. mask: ``(B, d)`` float32 (1.0 valid, 0.0 padding).
        end_obs: ``(B, *obs_shape)`` float32. terminated: ``(B,)`` float32 (1.0: the last valid step ended
            the episode in a terminal state).
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    mask: torch.Tensor
    end_obs: torch.Tensor
    terminated: torch.Tensor


class PathReplayBuffer(ReplayBuffer):
    """A :class:`ReplayBuffer` whose ``sample`` returns sub-paths of ``path_length`` steps (for PCL).

    Transitions are stored in the order the loop adds them, so a path is a run of consecutive
    slots; it stops at a terminal step, and where the next slot does not continue the episode
    (its ``obs`` differs from this slot's ``next_obs``: a reset after a time limit) or is older
    (the ring's write position). A reset that happens to land on the very observation the episode
    reached is followed through; when observations are Markov states this splice is itself a
    valid sample path (the step after it starts from that same state).

    Args:
        capacity, obs_shape, action_shape, discrete, device, seed: as :class:`ReplayBuffer`.
        path_length: ``d``, steps per sampled path.

    Raises:
        ValueError: If ``capacity`` or ``path_length`` is not a positive integer.
    """

    def __init__(self, capacity: int, obs_shape: tuple, action_shape: tuple = (), discrete: bool = False,
                 device: str = "cpu", seed: Optional[int] = None, path_length: int = 1) -> None:
        if isinstance(path_length, bool) or int(path_length) != path_length or path_length < 1:
            raise ValueError(f"path_length: expected a positive integer, got {path_length!r}")
        super().__init__(capacity, obs_shape, action_shape, discrete, device, seed)
        self.path_length = int(path_length)

    def sample(self, batch_size: int) -> PathBatch:
        """Sample ``batch_size`` paths with uniformly drawn start steps (with replacement).

        Raises:
            ValueError: If the buffer is empty.
        """
        if self._size == 0:
            raise ValueError("buffer: expected at least one stored transition, got an empty buffer")
        d, n = self.path_length, self._size
        oldest = 0 if n < self.capacity else self._next
        logical = self._rng.integers(0, n, size=batch_size)[:, None] + np.arange(d)[None, :]   # (B, d)
        idx = (oldest + np.minimum(logical, n - 1)) % self.capacity
        valid = logical < n
        for j in range(1, d):
            prev, cur = idx[:, j - 1], idx[:, j]
            same_episode = np.all((self.next_obs[prev] == self.obs[cur]).reshape(len(cur), -1), axis=-1)
            valid[:, j] &= valid[:, j - 1] & (self.terminated[prev] == 0.0) & same_episode
        last = idx[np.arange(batch_size), valid.sum(-1) - 1]

        def t(x):
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

        return PathBatch(t(self.obs[idx]), t(self.action[idx]), t(self.reward[idx]), t(valid.astype(np.float32)),
                         t(self.next_obs[last]), t(self.terminated[last]))
