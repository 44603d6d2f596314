"""A :class:`~cai.TabularMDP` as a gymnasium environment with one-hot observations.

The bridge the other way from :func:`~cai.worlds.gym.from_gymnasium`: it lets the deep learners
(:class:`~cai.DiscreteSAC`, :class:`~cai.SoftDQN`, :class:`~cai.algorithms.deep.pcl.PCL`) train on a
world whose exact answer :func:`cai.soft_value_iteration` computes, so a learned policy can be
compared with the soft-optimal one state by state.

* observation: the one-hot vector of the state, ``float32`` of shape ``(S,)``;
  action: ``Discrete(A)``; ``reset`` draws ``s_0 ~ p0``; ``step`` draws ``s' ~ P(.|s, a)`` and pays
  ``r(s, a)`` (``r(s, a, s')`` for the ``"sas"`` layout).
* stationary (``horizon=None``) MDPs never terminate: the discount is the learner's ``gamma``
  (give it ``mdp.discount``), and episodes are *truncated* after ``max_episode_steps`` (a time limit,
  not a terminal state, so a learner keeps bootstrapping and its fixed point is the
  infinite-horizon one).
* finite-horizon MDPs terminate after ``T`` steps, and the last step also pays the terminal
  reward ``r_T(s_T)``; time-varying rewards use the step count. The observation does not show
  the time, so a stationary learner sees a non-Markov problem there.

Forbidden actions (``-inf`` rewards) and batched rewards are refused: an environment pays one
finite number per step.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from cai.mdp.tabular import TabularMDP

try:  # optional dependency
    import gymnasium as _gym
    from gymnasium.spaces import Box, Discrete
    _Base = _gym.Env
except ImportError:  # pragma: no cover - exercised only without gymnasium
    _gym = None
    _Base = object
    Box = Discrete = None

__all__ = ["TabularEnv", "one_hot_states"]


def one_hot_states(n_states: int) -> np.ndarray:
    """The observation of every state, ``(S, S)`` float32 (row ``s`` is the observation of ``s``)."""
    return np.eye(int(n_states), dtype=np.float32)


class TabularEnv(_Base):
    """Gymnasium environment simulating a tabular MDP, observations one-hot.

    Args:
        mdp: an unbatched :class:`~cai.TabularMDP` without forbidden actions.
        max_episode_steps: time limit of a stationary MDP's episodes (truncation); for a
            finite-horizon MDP it must be None (the horizon ends episodes).
        seed: seed of the environment's generator, gymnasium's ``np_random`` (``reset(seed=...)`` reseeds it).

    Raises:
        ImportError: gymnasium is not installed.
        TypeError: ``mdp`` is not a TabularMDP.
        ValueError: batched rewards, a forbidden action, or a bad ``max_episode_steps``.
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: TabularMDP, max_episode_steps: Optional[int] = 100, seed: Optional[int] = None) -> None:
        if _gym is None:  # pragma: no cover - exercised only without gymnasium
            raise ImportError("TabularEnv needs gymnasium, the optional extra gym: pip install 'control-as-inference[gym]'")
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        if mdp.batch_shape != torch.Size([]):
            raise ValueError(f"mdp: expected unbatched rewards, got batch shape {tuple(mdp.batch_shape)}")
        if not bool(mdp.allowed.all()):
            s, a = (int(i) for i in torch.nonzero(~mdp.allowed)[0])
            raise ValueError(f"mdp: expected every action allowed (an environment pays a finite reward), got a "
                             f"forbidden action a={a} in state s={s}")
        if mdp.horizon is None:
            if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer)) \
                    or max_episode_steps < 1:
                raise ValueError(f"max_episode_steps: expected a positive integer time limit for a stationary MDP, "
                                 f"got {max_episode_steps!r}")
        elif max_episode_steps is not None and max_episode_steps != mdp.horizon:
            raise ValueError(f"max_episode_steps: expected None (the horizon {mdp.horizon} ends episodes) for a "
                             f"finite-horizon MDP, got {max_episode_steps!r}")
        self.mdp = mdp
        S, A = mdp.n_states, mdp.n_actions
        self.n_states, self.n_actions = S, A
        self.max_episode_steps = mdp.horizon if mdp.horizon is not None else int(max_episode_steps)
        self.observation_space = Box(0.0, 1.0, shape=(S,), dtype=np.float32)
        self.action_space = Discrete(A)
        self._P = mdp.dense_transitions().detach().cpu().numpy().astype(np.float64)
        self._r = mdp.rewards.detach().cpu().numpy().astype(np.float64)
        self._rT = mdp.terminal_rewards.detach().cpu().numpy().astype(np.float64)
        self._p0 = mdp.initial.detach().cpu().numpy().astype(np.float64)
        self._obs = one_hot_states(S)
        if seed is not None:
            super().reset(seed=int(seed))
        self.state: Optional[int] = None
        self.t = 0

    def _draw(self, p: np.ndarray) -> int:
        return int(min(np.searchsorted(np.cumsum(p), self.np_random.random() * p.sum(), side="right"), len(p) - 1))

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> Tuple[np.ndarray, dict]:
        """Start an episode in ``s_0 ~ p0``; returns ``(one-hot observation, {"state": s_0})``."""
        super().reset(seed=seed)
        self.state, self.t = self._draw(self._p0), 0
        return self._obs[self.state].copy(), {"state": self.state}

    def step(self, action: int) -> Tuple[np.ndarray, float, bool, bool, dict]:
        """Take action index ``action``; returns ``(obs, reward, terminated, truncated, {"state": s'})``.

        Raises:
            ValueError: an action outside ``0..A-1``, or a step before ``reset``.
        """
        if self.state is None:
            raise ValueError("step: expected reset() before the first step, got a step on an environment never reset")
        a = int(action)
        if a != action or not 0 <= a < self.n_actions:
            raise ValueError(f"action: expected an integer in [0, {self.n_actions - 1}], got {action!r}")
        s = self.state
        s_next = self._draw(self._P[s, a])
        layout = self.mdp.reward_layout
        if layout == "sas":
            reward = self._r[s, a, s_next]
        elif layout == "tsa":
            reward = self._r[self.t, s, a]
        else:
            reward = self._r[s, a]
        self.t += 1
        self.state = s_next
        terminated = truncated = False
        if self.mdp.horizon is not None:
            terminated = self.t >= self.mdp.horizon
            if terminated:
                reward = reward + self._rT[s_next]
        else:
            truncated = self.t >= self.max_episode_steps
        return self._obs[s_next].copy(), float(reward), bool(terminated), bool(truncated), {"state": s_next}
