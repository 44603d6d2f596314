"""Path consistency learning (PCL) with function approximation, for discrete-action environments.

The deep counterpart of :func:`cai.algorithms.tabular.pcl.pcl` (whose module docstring derives
the consistency): a policy network ``pi_theta(a|s)`` (softmax of logits) and a value network
``V_phi(s)`` minimise ``1/2 mean C^2`` over sub-paths of up to ``d`` steps drawn from a replay
buffer of the agent's own past behaviour (:class:`~cai.algorithms.deep.replay.PathReplayBuffer`)::

    C = -V_phi(s_i) + gamma^k (1 - terminated) V_target(s_{i+k})
        + sum_{j<k} gamma^j (r_{i+j} - alpha log pi_theta(a_{i+j} | s_{i+j}))

with ``k <= d`` the steps left in the episode (:func:`~cai.algorithms.tabular.pcl.pcl_residual`).
Separate V and pi networks (the paper's PCL, not unified PCL), each with its own Adam optimiser.
One deviation from the paper, for stability with a neural ``V``: the bootstrap value
``V(s_{i+k})`` comes from a Polyak-averaged copy of the value network (``tau``; the paper uses the
current network, with the gradient through both ends; ``tau = 1`` is the closest setting).
Behaviour: uniform actions for ``learning_starts`` steps, then samples of ``pi_theta``.

References:
    Nachum, Norouzi, Xu, Schuurmans (2017), "Bridging the gap between value and policy based
    reinforcement learning", NeurIPS, Algorithm 1 and eq. 15-16.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from cai.algorithms.deep.base import DiscretePolicyLearner
from cai.algorithms.deep.loop import LoopConfig
from cai.algorithms.deep.networks import mlp, polyak_update
from cai.algorithms.deep.replay import PathBatch, PathReplayBuffer
from cai.algorithms.tabular.pcl import pcl_residual

__all__ = ["PCLConfig", "PCL"]


@dataclass
class PCLConfig(LoopConfig):
    """Hyperparameters of :class:`PCL`.

    Attributes:
        hidden_sizes: Hidden layers of the policy and of the value network.
        alpha: Temperature of the entropy regularisation.
        rollout: ``d``, the path length of the consistency.
        lr_pi, lr_v: Adam learning rates of the policy and of the value network.
        batch_size: Paths per minibatch.
        buffer_size: Replay capacity in steps.
        gamma: Discount.
        tau: Polyak coefficient of the bootstrap value network (1.0: the latest value network).
        learning_starts: Uniform-random actions (and no updates) for this many first steps.
        train_every: Environment steps per gradient step.
        max_grad_norm: Gradient-norm clip of each network (None: no clipping).
        eval_every, eval_episodes: Evaluation schedule; evaluations act greedily (``argmax pi``).
        log_every: Record losses every this many updates.
        seed: Seed. device: Torch device. progress: tqdm progress bar.
    """

    hidden_sizes: Sequence[int] = (64, 64)
    alpha: float = 0.05
    rollout: int = 10
    lr_pi: float = 1e-3
    lr_v: float = 1e-3
    batch_size: int = 64
    buffer_size: int = 100_000
    gamma: float = 0.99
    tau: float = 0.01
    learning_starts: int = 1000
    train_every: int = 1
    max_grad_norm: Optional[float] = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.rollout, bool) or not isinstance(self.rollout, (int, np.integer)) or self.rollout < 1:
            raise ValueError(f"rollout: expected a positive integer path length, got {self.rollout!r}")
        if not (isinstance(self.alpha, (int, float)) and np.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha: expected a finite temperature >= 0, got {self.alpha!r}")


class PCL(DiscretePolicyLearner):
    """Path consistency learning on a gymnasium-API environment with a Discrete action space.

    Example::

        agent = PCL(PCLConfig(seed=1)).fit("CartPole-v1", total_steps=50_000)

    Saving, loading and resuming (exact on CPU), callbacks, checkpoints and Ctrl-C are those of
    :class:`~cai.algorithms.deep.base.OffPolicyLearner`.

    Attributes (after ``fit``):
        pi_: ``nn.Sequential`` observations ``(B, o)`` -> logits ``(B, A)``.
        v_, v_target_: ``nn.Sequential`` observations ``(B, o)`` -> ``(B, 1)``.
    """

    loop_desc = "PCL"
    config_class = PCLConfig
    action_kind = "discrete"
    _modules = ("pi_", "v_", "v_target_")
    _optimizers = ("pi_opt_", "v_opt_")

    def __init__(self, config: Optional[PCLConfig] = None) -> None:
        super().__init__(config)

    def _build(self, observation_space, action_space) -> None:
        cfg = self.config
        obs_dim = self.obs_dim_ = self._discrete_spaces(observation_space, action_space)
        dev = torch.device(cfg.device)
        self.pi_ = mlp(obs_dim, cfg.hidden_sizes, self.n_actions_).to(dev, torch.float32)
        self.v_ = mlp(obs_dim, cfg.hidden_sizes, 1).to(dev, torch.float32)
        self.v_target_ = copy.deepcopy(self.v_).requires_grad_(False)
        self.pi_opt_ = torch.optim.Adam(self.pi_.parameters(), lr=cfg.lr_pi)
        self.v_opt_ = torch.optim.Adam(self.v_.parameters(), lr=cfg.lr_v)
        self.buffer_ = PathReplayBuffer(cfg.buffer_size, (obs_dim,), (), discrete=True, device=cfg.device,
                                        seed=cfg.seed, path_length=cfg.rollout)

    def update(self, batch: PathBatch) -> dict:
        """One gradient step of both networks on ``1/2 mean C^2``; returns the loss and ``mean |C|``."""
        cfg = self.config
        B, d = batch.reward.shape
        logits = self.pi_(batch.obs.reshape(B * d, self.obs_dim_))
        log_pi = torch.log_softmax(logits, -1).gather(-1, batch.action.reshape(B * d, 1).long()).reshape(B, d)
        v_start = self.v_(batch.obs[:, 0]).squeeze(-1)
        with torch.no_grad():
            v_end = self.v_target_(batch.end_obs).squeeze(-1)
        C = pcl_residual(v_start, v_end, batch.reward, log_pi, cfg.gamma, cfg.alpha, batch.mask, batch.terminated)
        loss = 0.5 * (C ** 2).mean()
        self.pi_opt_.zero_grad(set_to_none=True)
        self.v_opt_.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.pi_.parameters(), cfg.max_grad_norm)
            torch.nn.utils.clip_grad_norm_(self.v_.parameters(), cfg.max_grad_norm)
        self.pi_opt_.step()
        self.v_opt_.step()
        polyak_update(self.v_target_, self.v_, cfg.tau)
        self.n_updates_ += 1
        return dict(loss=loss.detach(), abs_residual=C.detach().abs().mean(), v_mean=v_start.detach().mean())

    def _policy_logits(self, o: torch.Tensor) -> torch.Tensor:
        return self.pi_(o)


