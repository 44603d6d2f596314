"""Discrete soft Q-learning (soft DQN) for discrete-action environments, top to bottom.

The tabular soft Bellman backup of ``docs/design.md`` §2.2 (soft value iteration with the counting action
prior) with a Q network, a replay buffer and a target network:

    y = r + gamma (1 - terminated) V(s'),     V(s') = alpha log sum_a exp(Q_target(s', a) / alpha)
    pi(a | s) = exp((Q(s, a) - V(s)) / alpha)                      (Boltzmann policy)

As ``alpha -> 0`` the target becomes DQN's ``max_a Q`` and the policy greedy.

References:
    Haarnoja, Tang, Abbeel, Levine (2017). Reinforcement learning with deep energy-based policies,
    eq. 3-5 (the discrete case). Mnih et al. (2015). Human-level control through deep RL (DQN).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch
import torch.nn.functional as F

from cai.algorithms.deep.base import DiscretePolicyLearner
from cai.algorithms.deep.loop import LoopConfig
from cai.algorithms.deep.networks import mlp, polyak_update
from cai.algorithms.deep.replay import ReplayBuffer, Transition

if TYPE_CHECKING:
    pass

__all__ = ["SoftDQNConfig", "SoftDQN", "soft_dqn_target", "soft_dqn_loss", "boltzmann_log_policy", "discrete_soft_value"]


# --------------------------------------------------------------------------- pure functions


def discrete_soft_value(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """``V = alpha logsumexp(Q / alpha)`` over the last axis; ``(..., A) -> (...)``."""
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def boltzmann_log_policy(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """``log pi(a|s) = (Q(s, a) - V(s)) / alpha``; ``(..., A) -> (..., A)``."""
    return torch.log_softmax(q / alpha, dim=-1)


def soft_dqn_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_tp1: torch.Tensor, alpha: float) -> torch.Tensor:
    """``y = r_t + discount_t * alpha logsumexp_a(q_tp1[:, a] / alpha)``.

    Args:
        r_t: ``(B,)``. discount_t: ``gamma (1 - terminated)``, ``(B,)``.
        q_tp1: target-network values at ``s_{t+1}``, ``(B, A)``. alpha: temperature > 0.

    Returns:
        torch.Tensor: ``(B,)``.
    """
    return r_t + discount_t * discrete_soft_value(q_tp1, alpha)


def soft_dqn_loss(q_tm1: torch.Tensor, a_tm1: torch.Tensor, target: torch.Tensor, huber: bool = True) -> torch.Tensor:
    """Regression of ``Q(s, a)`` (``q_tm1 (B, A)`` gathered at ``a_tm1 (B,)``) onto ``target (B,)``.

    Huber (smooth L1) loss by default, else ``1/2`` squared error; mean over the batch.
    """
    q = q_tm1.gather(-1, a_tm1.long().unsqueeze(-1)).squeeze(-1)
    if huber:
        return F.smooth_l1_loss(q, target.detach())
    return 0.5 * ((q - target.detach()) ** 2).mean()


# --------------------------------------------------------------------------- learner


@dataclass
class SoftDQNConfig(LoopConfig):
    """Hyperparameters of :class:`SoftDQN` (defaults: the CartPole-v1 benchmark setting).

    Attributes:
        hidden_sizes: Hidden layers of the Q network.
        alpha: Temperature of the soft backup and of the Boltzmann behaviour policy.
        lr: Adam learning rate.
        batch_size: Minibatch size.
        buffer_size: Replay capacity.
        gamma: Discount.
        tau: Polyak coefficient of the target network (1.0 with ``target_every`` gives hard copies).
        target_every: Update the target network every this many gradient steps.
        train_every: Environment steps per gradient step.
        learning_starts: Uniform-random actions (and no updates) for this many first steps.
        huber: Huber loss instead of squared error.
        max_grad_norm: Gradient-norm clip (None: no clipping).
        eval_every, eval_episodes: Evaluation schedule; evaluations act greedily (``argmax Q``).
        log_every: Record losses every this many updates.
        seed: Seed. device: Torch device. progress: tqdm progress bar.
    """

    hidden_sizes: Sequence[int] = (256, 256)
    alpha: float = 0.01
    lr: float = 5e-4
    batch_size: int = 128
    buffer_size: int = 100_000
    gamma: float = 0.99
    tau: float = 0.005
    target_every: int = 1
    train_every: int = 1
    learning_starts: int = 1000
    huber: bool = True
    max_grad_norm: float = 10.0


class SoftDQN(DiscretePolicyLearner):
    """Soft DQN on a gymnasium-API environment with a Discrete action space.

    Actions are indices ``0..n-1`` inside the learner (buffer, Q heads) and ``start + index`` for the
    environment (gymnasium's ``Discrete(n, start)``). Saving, loading and resuming (exact on CPU),
    callbacks, checkpoints and Ctrl-C are those of :class:`~cai.algorithms.deep.base.OffPolicyLearner`.

    Attributes (after ``fit``):
        q_, q_target_: ``nn.Sequential`` mapping observations ``(B, o)`` to ``Q (B, A)``.
        history_: :class:`TrainingHistory`.
    """

    loop_desc = "SoftDQN"
    config_class = SoftDQNConfig
    action_kind = "discrete"
    _modules = ("q_", "q_target_")
    _optimizers = ("opt_",)

    def __init__(self, config: Optional[SoftDQNConfig] = None) -> None:
        super().__init__(config)

    def _build(self, observation_space, action_space) -> None:
        cfg = self.config
        obs_dim = self._discrete_spaces(observation_space, action_space)
        self.q_ = mlp(obs_dim, cfg.hidden_sizes, self.n_actions_).to(cfg.device, torch.float32)
        self.q_target_ = copy.deepcopy(self.q_).requires_grad_(False)
        self.opt_ = torch.optim.Adam(self.q_.parameters(), lr=cfg.lr)
        self.buffer_ = ReplayBuffer(cfg.buffer_size, (obs_dim,), (), discrete=True, device=cfg.device, seed=cfg.seed)

    def update(self, batch: Transition) -> dict:
        """One gradient step on the soft Bellman error; returns losses."""
        cfg = self.config
        with torch.no_grad():
            target = soft_dqn_target(batch.reward, cfg.gamma * (1.0 - batch.terminated),
                                     self.q_target_(batch.next_obs), cfg.alpha)
        loss = soft_dqn_loss(self.q_(batch.obs), batch.action, target, cfg.huber)
        self.opt_.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.q_.parameters(), cfg.max_grad_norm)
        self.opt_.step()
        self.n_updates_ += 1
        if self.n_updates_ % cfg.target_every == 0:
            polyak_update(self.q_target_, self.q_, cfg.tau)
        return dict(loss=loss, q_mean=target.mean())

    def _policy_logits(self, o: torch.Tensor) -> torch.Tensor:
        """The Boltzmann policy's logits ``Q / alpha`` (in float64, as its samples are drawn)."""
        return self.q_(o).double() / self.config.alpha


