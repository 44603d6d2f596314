"""Soft Q-learning with an amortised SVGD sampler (Haarnoja et al. 2017), top to bottom.

Control-as-inference view: the optimal MaxEnt policy is the energy-based model
``pi(a|s) ∝ exp(Q(s, a) / alpha)`` with ``V(s) = alpha log ∫ exp(Q(s, a) / alpha) da``. Soft
Q-learning fits ``Q`` by the soft Bellman backup with ``V`` estimated by importance sampling,
and trains a sampler network ``a = f(s, xi)``, ``xi ~ N(0, I)``, so that its samples follow the
energy-based policy, by amortised Stein variational gradient descent (SVGD): the sampler's
outputs are pushed along the SVGD direction, the steepest descent of ``KL(q || pi)`` in an RBF
kernel's RKHS.

Actions live in ``(-1, 1)^d``. The sampler draws ``u = g(s, xi)`` and acts ``a = tanh(u)``; SVGD
runs in ``u``-space on the pulled-back target ``log p(u) = Q(s, tanh u) / alpha + sum log(1 - tanh^2 u)``
(change of variables), so the actions' density is the energy-based policy on the box.

References:
    Haarnoja, Tang, Abbeel, Levine (2017). Reinforcement learning with deep energy-based
    policies. ICML (eq. 10 importance-sampled value, eq. 13 amortised SVGD).
    Liu, Wang (2016). Stein variational gradient descent. NeurIPS (eq. 8; median bandwidth).
    Wang, Liu (2016). Learning to draw samples: amortized SVGD. arXiv:1611.01722.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from cai.algorithms.deep.base import OffPolicyLearner
from cai.algorithms.deep.loop import LoopConfig, setup_box_learner
from cai.algorithms.deep.networks import EnsembleQNetwork, gradient_step, mlp, polyak_update
from cai.algorithms.deep.replay import ReplayBuffer, Transition

if TYPE_CHECKING:
    pass

__all__ = [
    "SQLConfig",
    "SQL",
    "rbf_kernel",
    "median_bandwidth",
    "svgd_direction",
    "soft_value_importance_sampling",
    "soft_q_target",
    "log_tanh_jacobian",
]


# --------------------------------------------------------------------------- pure functions


def rbf_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """RBF kernel ``k(x, y) = exp(-|x - y|^2 / h)`` and its gradient in ``x``.

    Args:
        x: ``(..., K, d)``. y: ``(..., M, d)``. bandwidth: ``h``, shape ``(...)``.

    Returns:
        tuple: ``k (..., K, M)`` and ``grad_x k (..., K, M, d) = -2 (x - y) / h * k``.
    """
    diff = x.unsqueeze(-2) - y.unsqueeze(-3)  # (..., K, M, d)
    h = bandwidth[..., None, None]
    k = torch.exp(-(diff ** 2).sum(-1) / h)
    return k, -2.0 * diff / h.unsqueeze(-1) * k.unsqueeze(-1)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Median heuristic ``h = med^2 / log K`` (Liu & Wang 2016), ``med`` the median pairwise distance.

    Args:
        x: ``(..., K, d)`` (``K >= 2``). y: ``(..., M, d)``.

    Returns:
        torch.Tensor: ``(...)``, detached, floored at a tiny positive number.
    """
    K = x.shape[-2]
    sq = ((x.unsqueeze(-2) - y.unsqueeze(-3)) ** 2).sum(-1).flatten(-2).detach()
    med2 = sq.median(dim=-1).values  # median of squared distances = (median distance)^2
    return (med2 / math.log(max(K, 2))).clamp_min(1e-8)


def svgd_direction(x_fixed: torch.Tensor, grad_log_p: torch.Tensor, x_update: torch.Tensor,
                   bandwidth: torch.Tensor) -> torch.Tensor:
    """SVGD direction at ``x_update`` from the particles ``x_fixed`` (Liu & Wang 2016, eq. 8).

    ``phi(y_j) = 1/K sum_k [k(x_k, y_j) grad log p(x_k) + grad_{x_k} k(x_k, y_j)]``: the first term
    drives particles up the target density, the second repels them from each other.

    Args:
        x_fixed: ``(..., K, d)``. grad_log_p: ``grad log p`` at ``x_fixed``, ``(..., K, d)``.
        x_update: ``(..., M, d)``. bandwidth: ``(...)``.

    Returns:
        torch.Tensor: ``phi``, ``(..., M, d)``.
    """
    k, grad_k = rbf_kernel(x_fixed, x_update, bandwidth)
    K = x_fixed.shape[-2]
    drive = torch.einsum("...km,...kd->...md", k, grad_log_p)
    repulse = grad_k.sum(-3)
    return (drive + repulse) / K


def soft_value_importance_sampling(q_samples: torch.Tensor, log_proposal: torch.Tensor, alpha: float) -> torch.Tensor:
    """``V(s) = alpha log E_{a ~ q}[exp(Q(s, a) / alpha) / q(a)]`` from ``K`` samples (SQL eq. 10).

    Estimated as ``alpha (logsumexp_k (Q_k / alpha - log q(a_k)) - log K)``; for the uniform
    proposal on ``[-1, 1]^d``, ``log q = -d log 2``.

    Args:
        q_samples: ``(..., K)``. log_proposal: ``(..., K)`` or broadcastable. alpha: temperature.

    Returns:
        torch.Tensor: ``(...)``.
    """
    K = q_samples.shape[-1]
    return alpha * (torch.logsumexp(q_samples / alpha - log_proposal, dim=-1) - math.log(K))


def soft_q_target(r_t: torch.Tensor, discount_t: torch.Tensor, v_tp1: torch.Tensor) -> torch.Tensor:
    """Soft Bellman target ``y = r_t + discount_t V(s_{t+1})``; all ``(B,)``."""
    return r_t + discount_t * v_tp1


def log_tanh_jacobian(u: torch.Tensor) -> torch.Tensor:
    """``sum_i log(1 - tanh(u_i)^2) = sum_i 2 (log 2 - u_i - softplus(-2 u_i))``; ``(..., d) -> (...)``."""
    return (2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)


# --------------------------------------------------------------------------- learner


@dataclass
class SQLConfig(LoopConfig):
    """Hyperparameters of :class:`SQL`.

    Attributes:
        hidden_sizes: Hidden layers of the Q network and the sampler.
        alpha: Temperature (the inverse reward scale of the paper).
        q_lr: Adam learning rate of Q. sampler_lr: Adam learning rate of the sampler.
        batch_size: Minibatch of states.
        buffer_size: Replay capacity.
        gamma: Discount.
        tau: Polyak coefficient of the target Q network.
        value_particles: Uniform action samples per next state for the importance-sampled value.
        kernel_particles: Sampler outputs per state for SVGD.
        kernel_update_ratio: Fraction of those particles that are updated (the rest, "fixed",
            supply the SVGD direction).
        learning_starts: Uniform-random actions (and no updates) for this many first steps.
        eval_every, eval_episodes: Evaluation schedule (stochastic sampler policy).
        log_every: Record losses every this many updates.
        seed: Seed. device: Torch device. progress: tqdm progress bar.
    """

    hidden_sizes: Sequence[int] = (128, 128)
    alpha: float = 1.0
    q_lr: float = 3e-4
    sampler_lr: float = 3e-4
    batch_size: int = 128
    buffer_size: int = 1_000_000
    gamma: float = 0.99
    tau: float = 0.01
    value_particles: int = 16
    kernel_particles: int = 32
    kernel_update_ratio: float = 0.5
    learning_starts: int = 1000


class SamplerNetwork(nn.Module):
    """``u = g(s, xi)``, ``xi ~ N(0, I_d)``; actions ``tanh(u)``. ``forward(obs (B, o), n)`` -> ``u (B, n, d)``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.action_dim = action_dim
        self.net = mlp(obs_dim + action_dim, hidden_sizes, action_dim)

    def forward(self, obs: torch.Tensor, n_samples: int) -> torch.Tensor:
        obs = obs.unsqueeze(-2).expand(*obs.shape[:-1], n_samples, obs.shape[-1])
        xi = torch.randn(*obs.shape[:-1], self.action_dim, device=obs.device, dtype=obs.dtype)
        return self.net(torch.cat([obs, xi], dim=-1))


class SQL(OffPolicyLearner):
    """Soft Q-learning (SQL) with an amortised SVGD sampler, for Box action spaces.

    Saving, loading and resuming (exact on CPU), callbacks, checkpoints and Ctrl-C are those of
    :class:`~cai.algorithms.deep.base.OffPolicyLearner`.

    Attributes (after ``fit``):
        q_, q_target_: :class:`EnsembleQNetwork` with one member; ``q_(obs, a)`` is ``(1, B)``.
        sampler_: :class:`SamplerNetwork`. history_: :class:`TrainingHistory`.
    """

    config_class = SQLConfig
    action_kind = "box"
    _modules = ("q_", "q_target_", "sampler_")
    _optimizers = ("q_opt_", "sampler_opt_")

    def __init__(self, config: Optional[SQLConfig] = None) -> None:
        super().__init__(config)

    def _build(self, observation_space, action_space) -> None:
        cfg = self.config
        obs_dim, d, dev = setup_box_learner(self, observation_space, action_space)
        self.q_ = EnsembleQNetwork(obs_dim, d, cfg.hidden_sizes, ensemble_size=1).to(dev, torch.float32)
        self.q_target_ = copy.deepcopy(self.q_).requires_grad_(False)
        self.sampler_ = SamplerNetwork(obs_dim, d, cfg.hidden_sizes).to(dev, torch.float32)
        self.q_opt_ = torch.optim.Adam(self.q_.parameters(), lr=cfg.q_lr)
        self.sampler_opt_ = torch.optim.Adam(self.sampler_.parameters(), lr=cfg.sampler_lr)
        self.buffer_ = ReplayBuffer(cfg.buffer_size, (obs_dim,), (d,), device=cfg.device, seed=cfg.seed)

    def _q(self, net, obs, actions):
        """``Q(s, a_k)`` for ``obs (B, o)`` and ``actions (B, K, d)`` -> ``(B, K)``."""
        B, K, d = actions.shape
        o = obs.unsqueeze(1).expand(B, K, obs.shape[-1]).reshape(B * K, -1)
        return net(o, actions.reshape(B * K, d))[0].reshape(B, K)

    def update(self, batch: Transition) -> dict:
        """One Q step (soft Bellman) and one sampler step (amortised SVGD); returns losses."""
        cfg = self.config
        B, d, alpha = batch.obs.shape[0], self.action_dim_, cfg.alpha
        # 1. soft Q: V(s') by importance sampling with uniform actions on [-1, 1]^d
        with torch.no_grad():
            a_v = 2.0 * torch.rand(B, cfg.value_particles, d, dtype=batch.obs.dtype, device=batch.obs.device) - 1.0
            v_tp1 = soft_value_importance_sampling(self._q(self.q_target_, batch.next_obs, a_v),
                                                   -d * math.log(2.0), alpha)
            target = soft_q_target(batch.reward, cfg.gamma * (1.0 - batch.terminated), v_tp1)
        q_loss = 0.5 * ((self.q_(batch.obs, batch.action)[0] - target) ** 2).mean()
        gradient_step(self.q_opt_, q_loss)

        # 2. sampler: push its particles along the SVGD direction of log p(u)
        u = self.sampler_(batch.obs, cfg.kernel_particles)  # (B, K, d)
        n_fixed = max(1, int(round(cfg.kernel_particles * (1.0 - cfg.kernel_update_ratio))))
        u_fixed = u[:, :n_fixed].detach().requires_grad_(True)
        u_update = u[:, n_fixed:]
        log_p = self._q(self.q_, batch.obs, torch.tanh(u_fixed)) / alpha + log_tanh_jacobian(u_fixed)
        grad_log_p = torch.autograd.grad(log_p.sum(), u_fixed)[0]
        h = median_bandwidth(u_fixed.detach(), u_update.detach())
        phi = svgd_direction(u_fixed.detach(), grad_log_p, u_update.detach(), h)
        sampler_loss = -(u_update * phi.detach()).sum(-1).mean()
        gradient_step(self.sampler_opt_, sampler_loss)
        self.q_.zero_grad(set_to_none=True)  # the autograd.grad above did not touch .grad; keep it clean

        polyak_update(self.q_target_, self.q_, cfg.tau)
        self.n_updates_ += 1
        return dict(q=q_loss, sampler=sampler_loss, svgd_norm=phi.norm(dim=-1).mean())

    @torch.no_grad()
    def sample_actions(self, obs: np.ndarray, n: int) -> np.ndarray:
        """``n`` sampler actions in ``[-1, 1]^d`` for one observation; returns ``(n, d)``.

        Raises:
            NotFittedError: Before ``fit`` or ``load``.
        """
        self._check_fitted("sample_actions")
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.config.device).unsqueeze(0)
        return torch.tanh(self.sampler_(o, n))[0].cpu().numpy()

    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Environment action for one observation (the sampler is stochastic by design)."""
        return self.scaler_.to_env(self.sample_actions(obs, 1)[0])

    def _loop_kwargs(self) -> dict:
        """The loop: uniform actions on ``[-1, 1]^d`` for ``learning_starts`` steps, then sampler draws;
        one :meth:`update` per step."""
        return dict(random_action=lambda: self.rng_.uniform(-1.0, 1.0, self.action_dim_).astype(np.float32),
                    policy_action=lambda obs: self.sample_actions(obs, 1)[0], to_env=self.scaler_.to_env,
                    desc="SQL")
