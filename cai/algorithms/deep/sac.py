"""Soft actor-critic (Haarnoja et al. 2018), readable top to bottom.

Control-as-inference view: the actor is the variational policy of the soft Bellman backup
``Q(s, a) = r + gamma E[V(s')]``, ``V(s) = E_pi[Q(s, a) - alpha log pi(a|s)]``; the actor step
minimises ``KL(pi(.|s) || exp((Q(s, .) - V(s)) / alpha))``. Pieces:

* tanh-Gaussian actor with reparameterised samples (:class:`~cai.algorithms.deep.networks.TanhGaussianActor`);
* twin Q networks and the clipped double-Q target (Fujimoto et al. 2018);
* Polyak-averaged target critics;
* automatic temperature by dual gradient descent on ``E[-log pi] >= target_entropy``.

The loss terms are pure functions (``sac_*``) so they are tested without an environment.

References:
    Haarnoja, Zhou, Abbeel, Levine (2018). Soft actor-critic: off-policy maximum entropy deep RL
    with a stochastic actor. ICML. Haarnoja et al. (2018). Soft actor-critic algorithms and
    applications. arXiv:1812.05905 (automatic temperature, eq. 17-18).
    Fujimoto, van Hoof, Meger (2018). Addressing function approximation error in actor-critic
    methods. ICML (clipped double-Q).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from cai.algorithms.deep.base import OffPolicyLearner
from cai.algorithms.deep.loop import LoopConfig, setup_box_learner
from cai.algorithms.deep.networks import EnsembleQNetwork, TanhGaussianActor, gradient_step, polyak_update
from cai.algorithms.deep.replay import ReplayBuffer, Transition

if TYPE_CHECKING:
    pass

__all__ = [
    "SACConfig",
    "SAC",
    "sac_critic_target",
    "sac_critic_loss",
    "sac_actor_loss",
    "sac_temperature_loss",
]


# --------------------------------------------------------------------------- pure loss terms


def sac_critic_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_tp1: torch.Tensor,
                      log_pi_tp1: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Soft Bellman target with the clipped double-Q estimate.

    ``y = r_t + discount_t * (min_e Q_e(s_{t+1}, a_{t+1}) - alpha log pi(a_{t+1} | s_{t+1}))``
    with ``a_{t+1} ~ pi(.|s_{t+1})`` and ``discount_t = gamma (1 - terminated)``.

    Args:
        r_t: ``(B,)``. discount_t: ``(B,)``. q_tp1: target critics, ``(E, B)``.
        log_pi_tp1: ``(B,)``. alpha: scalar temperature.

    Returns:
        torch.Tensor: ``(B,)``.
    """
    v_tp1 = q_tp1.min(dim=0).values - alpha * log_pi_tp1
    return r_t + discount_t * v_tp1


def sac_critic_loss(q_tm1: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sum_e mean_B 1/2 (Q_e(s, a) - y)^2``; ``q_tm1 (E, B)``, ``target (B,)`` (no gradient)."""
    return 0.5 * ((q_tm1 - target.detach()) ** 2).mean(dim=-1).sum()


def sac_actor_loss(q_pi: torch.Tensor, log_pi: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``mean_B [alpha log pi(a|s) - min_e Q_e(s, a)]`` with ``a ~ pi`` reparameterised.

    Equals ``alpha KL(pi || exp((Q - V)/alpha))`` up to a constant in the policy.
    ``q_pi (E, B)``, ``log_pi (B,)``, ``alpha`` scalar (no gradient).
    """
    return (alpha.detach() * log_pi - q_pi.min(dim=0).values).mean()


def sac_temperature_loss(log_alpha: torch.Tensor, log_pi: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """Dual loss of the entropy constraint ``E[-log pi] >= target_entropy``.

    ``J(log alpha) = -log_alpha * mean(log pi + target_entropy)``. Its gradient
    ``-(target_entropy - H)`` (``H`` the sample entropy) is negative when the policy's entropy
    is below the target, so gradient descent raises ``alpha``; it is zero at ``H = target``.
    """
    return -(log_alpha * (log_pi.detach() + target_entropy)).mean()


# --------------------------------------------------------------------------- learner


@dataclass
class SACConfig(LoopConfig):
    """Hyperparameters of :class:`SAC` (defaults: Haarnoja et al. 2018b, Table 1).

    Attributes:
        hidden_sizes: Hidden layers of the actor and of each critic.
        lr: Adam learning rate of actor, critics and temperature.
        batch_size: Minibatch size.
        buffer_size: Replay capacity.
        gamma: Discount.
        tau: Polyak coefficient of the target critics.
        learning_starts: Uniform-random actions (and no updates) for this many first steps.
        init_alpha: Initial temperature.
        autotune_alpha: Learn alpha by dual descent; otherwise keep ``init_alpha``.
        target_entropy: Entropy target; None means ``-action_dim``.
        updates_per_step: Gradient steps per environment step.
        eval_every: Evaluate every this many steps (0: never).
        eval_episodes: Episodes per evaluation (deterministic policy ``tanh(mu(s))``).
        log_every: Record losses every this many updates.
        seed: Seed of torch, NumPy, the buffer and the environment.
        device: Torch device.
        progress: Show a tqdm progress bar.
    """

    hidden_sizes: Sequence[int] = (256, 256)
    lr: float = 3e-4
    batch_size: int = 256
    buffer_size: int = 1_000_000
    gamma: float = 0.99
    tau: float = 0.005
    learning_starts: int = 1000
    init_alpha: float = 1.0
    autotune_alpha: bool = True
    target_entropy: Optional[float] = None
    updates_per_step: int = 1


class SAC(OffPolicyLearner):
    """Soft actor-critic on a gymnasium-API environment with a Box action space.

    Example::

        agent = SAC(SACConfig(seed=1)).fit("Pendulum-v1", total_steps=20_000)
        agent.act(obs)                      # environment action
        agent.save("sac.pt")                # networks, optimisers, temperature, buffer, RNGs, env
        agent = SAC.load("sac.pt").fit(None, 10_000, reset_num_timesteps=False)   # 10k more steps

    Saving, loading and resuming (exact on CPU), callbacks, checkpoints and Ctrl-C are those of
    :class:`~cai.algorithms.deep.base.OffPolicyLearner`.

    Attributes (after ``fit``):
        actor_: :class:`TanhGaussianActor`. critic_, critic_target_: :class:`EnsembleQNetwork` (E=2).
        log_alpha_: learned log temperature (0-dim tensor). history_: :class:`TrainingHistory`.
    """

    config_class = SACConfig
    action_kind = "box"
    _modules = ("actor_", "critic_", "critic_target_")
    _optimizers = ("actor_opt_", "critic_opt_", "alpha_opt_")
    _tensors = ("log_alpha_",)

    def __init__(self, config: Optional[SACConfig] = None) -> None:
        super().__init__(config)

    # -- setup
    def _build(self, observation_space, action_space) -> None:
        cfg = self.config
        obs_dim, act_dim, dev = setup_box_learner(self, observation_space, action_space)
        self.actor_ = TanhGaussianActor(obs_dim, act_dim, cfg.hidden_sizes).to(dev, torch.float32)
        self.critic_ = EnsembleQNetwork(obs_dim, act_dim, cfg.hidden_sizes, ensemble_size=2).to(dev, torch.float32)
        self.critic_target_ = copy.deepcopy(self.critic_).requires_grad_(False)
        self.log_alpha_ = torch.tensor(float(np.log(cfg.init_alpha)), dtype=torch.float32, device=dev,
                                      requires_grad=True)
        self.target_entropy_ = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.actor_opt_ = torch.optim.Adam(self.actor_.parameters(), lr=cfg.lr)
        self.critic_opt_ = torch.optim.Adam(self.critic_.parameters(), lr=cfg.lr)
        self.alpha_opt_ = torch.optim.Adam([self.log_alpha_], lr=cfg.lr)
        self.buffer_ = ReplayBuffer(cfg.buffer_size, (obs_dim,), (act_dim,), device=cfg.device, seed=cfg.seed)

    # -- one gradient step on each of critic, actor, temperature
    def update(self, batch: Transition) -> dict:
        """One SAC update from a minibatch; returns the scalar losses."""
        cfg = self.config
        alpha = self.log_alpha_.exp().detach()
        with torch.no_grad():
            a_tp1, log_pi_tp1 = self.actor_(batch.next_obs)
            q_tp1 = self.critic_target_(batch.next_obs, a_tp1)
            discount = cfg.gamma * (1.0 - batch.terminated)
            target = sac_critic_target(batch.reward, discount, q_tp1, log_pi_tp1, alpha)
        critic_loss = sac_critic_loss(self.critic_(batch.obs, batch.action), target)
        gradient_step(self.critic_opt_, critic_loss)

        a_pi, log_pi = self.actor_(batch.obs)
        self.critic_.requires_grad_(False)  # the actor loss must not move the critics
        actor_loss = sac_actor_loss(self.critic_(batch.obs, a_pi), log_pi, alpha)
        self.critic_.requires_grad_(True)
        gradient_step(self.actor_opt_, actor_loss)

        alpha_loss = torch.zeros(())
        if cfg.autotune_alpha:
            alpha_loss = sac_temperature_loss(self.log_alpha_, log_pi, self.target_entropy_)
            gradient_step(self.alpha_opt_, alpha_loss)

        polyak_update(self.critic_target_, self.critic_, cfg.tau)
        self.n_updates_ += 1
        return dict(critic=critic_loss, actor=actor_loss, alpha_loss=alpha_loss, alpha=alpha,
                    entropy=-log_pi.detach().mean())

    # -- acting
    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Environment action for one observation (``deterministic``: ``tanh(mu(s))``).

        Raises:
            NotFittedError: Before ``fit`` or ``load``.
        """
        self._check_fitted("act")
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.config.device).unsqueeze(0)
        a, _ = self.actor_(o, deterministic=deterministic)
        return self.scaler_.to_env(a[0].cpu().numpy())

    @torch.no_grad()
    def _sample_action(self, obs) -> np.ndarray:
        """A sample of the stochastic policy in ``[-1, 1]^d`` (the behaviour policy after the warm-up)."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.config.device).unsqueeze(0)
        return self.actor_(o)[0][0].cpu().numpy()

    # -- training loop
    def _loop_kwargs(self) -> dict:
        """The loop: uniform actions on ``[-1, 1]^d`` for ``learning_starts`` steps, then samples of the
        policy; ``updates_per_step`` calls of :meth:`update` per step; evaluations use the deterministic
        :meth:`act`."""
        return dict(random_action=lambda: self.rng_.uniform(-1.0, 1.0, self.action_dim_).astype(np.float32),
                    policy_action=self._sample_action, to_env=self.scaler_.to_env,
                    updates_per_step=self.config.updates_per_step, desc="SAC")
