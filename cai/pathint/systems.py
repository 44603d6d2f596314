r"""Path integral control of a :class:`~cai.LinearGaussianSystem` (checked against its exact
messages) and of the Multigoal world (:class:`cai.worlds.multigoal.MultiGoalEnv`).

For a linear-Gaussian system whose reward is a state reward plus ``-1/2 u^T R u`` (no
state-control cross term, no linear control term), :func:`lg_path_integral_control` samples
control sequences ``u ~ N(ubar, alpha R^{-1})`` and dynamics noise ``w ~ N(0, W)`` from the
given state; its first control converges, as the samples grow, to the mean of the exact
posterior policy ``K_0 x_0 + k_0`` of :func:`cai.gaussian.lg_backward_messages` (with
``W = 0`` that is also soft value iteration's, i.e. the LQR gain). With ``W != 0`` the samples
weight the dynamics noise too, so the answer is exact inference's, optimistic about the noise
(``docs/design.md`` §2.7), not soft value iteration's.

References:
    Kappen (2005); Williams et al. (2017); Haarnoja et al. (2017) §6.1 (Multigoal).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from cai.gaussian.messages import lg_backward_messages
from cai.mdp.checks import as_tensor, check_positive_int
from cai.mdp.linear_gaussian import LinearGaussianSystem
from cai.pathint.core import MPPIController, PathIntegralEstimate, Rollout, path_integral_step
from cai.worlds.multigoal import MultiGoalEnv

__all__ = ["lg_rollout", "lg_control_cost", "lg_path_integral_control", "lg_exact_first_control",
           "multigoal_rollout", "multigoal_mppi"]


def lg_control_cost(system: LinearGaussianSystem) -> torch.Tensor:
    """``R = H_uu`` of a system whose reward is ``q(x) - 1/2 u^T R u``.

    Raises:
        TypeError: not a :class:`~cai.LinearGaussianSystem`.
        ValueError: a batched system, a state-control cross term ``H_xu != 0`` or a linear
            control term ``h_u != 0`` (then the control cost is not the noise's quadratic form).
    """
    if not isinstance(system, LinearGaussianSystem):
        raise TypeError(f"system: expected a cai.LinearGaussianSystem, got {type(system).__name__}")
    if len(system.batch_shape):
        raise ValueError(f"system: expected an unbatched system, got batch shape {tuple(system.batch_shape)}")
    n = system.state_dim
    if bool((system.H[:n, n:] != 0).any()) or bool((system.h[n:] != 0).any()):
        raise ValueError("system: expected a reward q(x) - 1/2 u^T R u (H_xu = 0 and h_u = 0) for path integral "
                         "control, got a state-control cross term or a linear control term")
    return system.H[n:, n:]


def lg_rollout(system: LinearGaussianSystem) -> Rollout:
    """The :data:`~cai.pathint.core.Rollout` of a linear-Gaussian system: ``x_{t+1} = A x + B u + c + w``,
    ``S = sum_t r(x_t, 0) + r_T(x_H)`` (the state part of the reward), ``w ~ N(0, W)`` sampled."""
    lg_control_cost(system)
    W = system.W
    Lw = None
    if bool((W != 0).any()):                       # a square root of W, singular W included
        lam, vec = torch.linalg.eigh(W)
        Lw = vec * lam.clamp(min=0).sqrt()

    def rollout(x0: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        K, H, m = u.shape
        x = x0.expand(K, -1).to(u.dtype)
        zero = torch.zeros(K, m, dtype=u.dtype)
        S = torch.zeros(K, dtype=u.dtype)
        for t in range(H):
            S = S + system.reward(x, zero)
            x = system.step_mean(x, u[:, t])
            if Lw is not None:
                x = x + torch.randn(K, x.shape[-1], dtype=u.dtype, generator=generator) @ Lw.T
        return S + system.terminal_reward(x)

    return rollout


def lg_path_integral_control(system: LinearGaussianSystem, x0: torch.Tensor, alpha: float = 1.0,
                             n_samples: int = 1000, *, nominal: Optional[torch.Tensor] = None,
                             seed: Optional[int] = 0) -> PathIntegralEstimate:
    """The path integral estimate of the first control of a linear-Gaussian system at ``x0``.

    Args:
        system: an unbatched :class:`~cai.LinearGaussianSystem` with reward ``q(x) - 1/2 u^T R u``.
        x0: the state ``(n,)``.
        alpha: temperature > 0; the control noise is ``alpha R^{-1}``.
        n_samples: number of sampled control sequences over the system's horizon.
        nominal: ``(T, m)`` nominal controls (default 0); any nominal gives the same limit.
        seed: seed of the sampler (``None``: the global torch generator).

    Returns:
        :class:`~cai.pathint.PathIntegralEstimate`; ``first`` tends to
        :func:`lg_exact_first_control`.

    Raises:
        TypeError, ValueError: see :func:`lg_control_cost` and :func:`~cai.pathint.path_integral_step`.
    """
    R = lg_control_cost(system)
    x0 = as_tensor("x0", x0, system.dtype)
    if tuple(x0.shape) != (system.state_dim,):
        raise ValueError(f"x0: expected shape ({system.state_dim},), got {tuple(x0.shape)}")
    T, m = system.horizon, system.action_dim
    ubar = torch.zeros(T, m, dtype=system.dtype) if nominal is None else as_tensor("nominal", nominal, system.dtype)
    if tuple(ubar.shape) != (T, m):
        raise ValueError(f"nominal: expected shape (T, m) = ({T}, {m}), got {tuple(ubar.shape)}")
    gen = None if seed is None else torch.Generator().manual_seed(int(seed))
    return path_integral_step(lg_rollout(system), x0, ubar, R, alpha, check_positive_int("n_samples", n_samples),
                              generator=gen)


def lg_exact_first_control(system: LinearGaussianSystem, x0: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``K_0 x_0 + k_0``: the mean of the exact posterior policy at ``x0`` (:func:`cai.gaussian.lg_backward_messages`)."""
    msgs = lg_backward_messages(system, alpha)
    return msgs.policy_mean(as_tensor("x0", x0, system.dtype), 0)


def multigoal_rollout(env: MultiGoalEnv) -> Rollout:
    """The :data:`~cai.pathint.core.Rollout` of the Multigoal world, vectorised in torch.

    ``x' = clip(x + clip(u, -1, 1), -bound, bound)``; the state part of the reward is
    ``-distance_cost min_g |x' - g|^2 + goal_reward [at a goal]``, and a sample that reaches a
    goal stops there (the episode terminates) and earns nothing after it. The control cost
    ``action_cost |u|^2`` is ``1/2 u^T R u`` with ``R = 2 action_cost I`` (exact while
    ``|u|_inf <= 1``, the environment's clip).
    """
    if not isinstance(env, MultiGoalEnv):
        raise TypeError(f"env: expected a cai.worlds.multigoal.MultiGoalEnv, got {type(env).__name__}")
    goals = torch.as_tensor(env.goals, dtype=torch.float64)

    def rollout(x0: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        K, H, _ = u.shape
        x = x0.to(u.dtype).expand(K, -1)
        done = torch.zeros(K, dtype=torch.bool)
        S = torch.zeros(K, dtype=u.dtype)
        for t in range(H):
            x = torch.clamp(x + torch.clamp(u[:, t], -1.0, 1.0), -env.bound, env.bound)
            d2 = ((x.unsqueeze(1) - goals) ** 2).sum(-1).min(-1).values
            at_goal = d2 <= env.goal_radius ** 2
            r = -env.distance_cost * d2 + env.goal_reward * at_goal.to(u.dtype)
            S = S + torch.where(done, torch.zeros_like(r), r)
            done = done | at_goal
        return S

    return rollout


def multigoal_mppi(env: MultiGoalEnv, alpha: float = 1.0, horizon: int = 10, n_samples: int = 256, *,
                   n_iters: int = 1, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """An MPPI policy for the Multigoal world: observation ``(2,)`` -> action ``(2,)``.

    The noise is ``alpha R^{-1}`` with ``R = 2 env.action_cost I``. Use it with
    :func:`cai.worlds.multigoal.goal_hit_fractions`; call ``policy.controller.reset()`` between
    episodes to forget the warm start (``goal_hit_fractions`` does not).

    Returns:
        A callable with the attribute ``controller`` (the :class:`~cai.pathint.MPPIController`).
    """
    ctrl = MPPIController(multigoal_rollout(env), check_positive_int("horizon", horizon), 2,
                          torch.eye(2, dtype=torch.float64) * 2 * env.action_cost, alpha, n_samples,
                          n_iters=n_iters, seed=seed)

    def act(obs: np.ndarray) -> np.ndarray:
        return ctrl.act(torch.as_tensor(np.asarray(obs, dtype=np.float64))).numpy()

    act.controller = ctrl
    return act
