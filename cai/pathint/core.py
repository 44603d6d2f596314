r"""Path integral control: the first control as an importance-weighted average of sampled controls.

The control-as-inference posterior over a control sequence ``u_{0:H-1}`` under the Lebesgue
action prior is ``p(u | x_0, O) ∝ E_w[exp(sum_t r(x_t, u_t) / alpha + r_T(x_H) / alpha)]``. When the
reward splits into a state part and a quadratic control cost,
``r(x, u) = q(x) - 1/2 u^T R u``, and the controls are sampled around a nominal sequence
``u = ubar + eps`` with ``eps ~ N(0, Sigma)``, the theory's choice of noise is

    Sigma = alpha R^{-1}        (Kappen 2005: lambda R^{-1} = Sigma with lambda = alpha)

and the importance weight of a sample then depends on the control only through the nominal::

    log w = S(x) / alpha - sum_t (ubar_t^T R eps_t + 1/2 ubar_t^T R ubar_t) / alpha
    S(x)  = sum_t q(x_{t+1}) (+ q(x_0) and r_T: any function of the sampled states)

(the ``1/2 u^T R u`` of the reward cancels against the Gaussian proposal density; Williams et
al. 2017, eq. 13). The self-normalised average ``sum_i w_i u^i / sum_i w_i`` converges to the
posterior mean of the controls, and its first entry to the mean of the exact posterior policy
``pi_0(u | x_0)`` (:func:`cai.gaussian.lg_backward_messages` for a linear-Gaussian system).
MPPI (:class:`MPPIController`) replaces the nominal by that average, acts with its first
control and shifts it by one step (receding horizon).

References:
    Kappen (2005), "Linear theory for control of nonlinear stochastic systems", Phys. Rev. Lett.
    95; Williams, Aldrich & Theodorou (2017), "Model predictive path integral control: from
    theory to parallel autonomous racing" / "Information theoretic MPC for model-based RL",
    ICRA; Theodorou, Buchli & Schaal (2010), "A generalized path integral control approach to
    reinforcement learning", JMLR 11.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from cai.mdp.checks import as_tensor, check_positive_int

__all__ = ["PathIntegralEstimate", "path_integral_step", "MPPIController", "check_control_cost", "Rollout"]

#: ``rollout(x0, u, generator) -> S``: ``u`` of shape ``(K, H, m)`` sampled controls, returns the
#: state part of the return ``(K,)`` of each sample (in reward units, without the control cost).
Rollout = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class PathIntegralEstimate:
    """Result of :func:`path_integral_step`.

    Attributes:
        controls: ``(H, m)``: the weighted average of the sampled control sequences.
        first: ``(m,)``: its first control (the path integral control at ``x_0``).
        std_error: ``(m,)``: Monte Carlo standard error of ``first`` (delta method for the
            self-normalised estimator: ``sqrt(sum_i w_i^2 (u_0^i - first)^2)`` with ``w``
            normalised).
        ess: effective sample size ``1 / sum_i w_i^2``.
        n_samples: number of samples.
    """

    controls: torch.Tensor
    first: torch.Tensor
    std_error: torch.Tensor
    ess: float
    n_samples: int


def check_control_cost(R: torch.Tensor, m: int, name: str = "control_cost") -> torch.Tensor:
    """``R`` as a symmetric positive-definite ``(m, m)`` matrix; ``ValueError`` naming ``name`` otherwise."""
    if R.dim() == 0:
        R = R * torch.eye(m, dtype=R.dtype)
    if tuple(R.shape) != (m, m):
        raise ValueError(f"{name}: expected an (m, m) = ({m}, {m}) matrix or a scalar, got shape {tuple(R.shape)}")
    if not bool(torch.isfinite(R).all()) or not torch.allclose(R, R.T, atol=1e-12 * (1 + float(R.abs().max()))):
        raise ValueError(f"{name}: expected a finite symmetric matrix, got {R.tolist()}")
    if float(torch.linalg.eigvalsh(R).min()) <= 0:
        raise ValueError(f"{name}: expected a positive-definite control cost R (the noise is alpha R^-1), got "
                         f"smallest eigenvalue {float(torch.linalg.eigvalsh(R).min()):.3g}")
    return R


def path_integral_step(rollout: Rollout, x0: torch.Tensor, nominal: torch.Tensor, control_cost: torch.Tensor,
                       alpha: float, n_samples: int, *, generator: Optional[torch.Generator] = None
                       ) -> PathIntegralEstimate:
    """One path-integral estimate of the posterior mean of the controls around ``nominal``.

    Args:
        rollout: :data:`Rollout`: simulates the samples and returns their state returns ``S``.
        x0: the current state (passed to ``rollout``).
        nominal: ``(H, m)`` nominal controls ``ubar``.
        control_cost: ``R``, ``(m, m)`` symmetric positive definite (or a scalar times ``I``); the
            reward's control part is ``-1/2 u^T R u``.
        alpha: temperature > 0; the sampling noise is ``alpha R^{-1}``.
        n_samples: number ``K`` of sampled control sequences.
        generator: a seeded ``torch.Generator`` (the global one when ``None``).

    Returns:
        :class:`PathIntegralEstimate`.

    Raises:
        ValueError: a bad temperature, sample count, nominal or cost, or a rollout returning the
            wrong shape or NaN.
    """
    if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a finite temperature > 0, got {alpha!r}")
    K = check_positive_int("n_samples", n_samples, "a positive number of samples")
    ubar = as_tensor("nominal", nominal)
    if ubar.dim() != 2 or ubar.shape[0] == 0:
        raise ValueError(f"nominal: expected shape (H, m) with H >= 1, got {tuple(ubar.shape)}")
    H, m = ubar.shape
    R = check_control_cost(as_tensor("control_cost", control_cost, ubar.dtype), m)
    cov = alpha * torch.linalg.inv(R)
    L = torch.linalg.cholesky(0.5 * (cov + cov.T))
    z = torch.randn(K, H, m, dtype=ubar.dtype, generator=generator)
    eps = z @ L.T
    u = ubar + eps
    S = rollout(x0, u, generator)
    if not isinstance(S, torch.Tensor) or tuple(S.shape) != (K,):
        raise ValueError(f"rollout: expected a tensor of shape ({K},) of returns, got "
                         f"{tuple(S.shape) if isinstance(S, torch.Tensor) else type(S).__name__}")
    if bool(torch.isnan(S).any()):
        raise ValueError("rollout: returned a NaN return")
    Rubar = ubar @ R                                                       # (H, m)
    correction = (eps * Rubar).sum((-1, -2)) + 0.5 * (ubar * Rubar).sum()
    logw = (S.to(ubar.dtype) - correction) / alpha
    w = torch.softmax(logw, 0)
    mean = torch.einsum("k,khm->hm", w, u)
    se = torch.sqrt((w.unsqueeze(-1) ** 2 * (u[:, 0, :] - mean[0]) ** 2).sum(0))
    return PathIntegralEstimate(mean, mean[0], se, float(1.0 / (w ** 2).sum()), K)


class MPPIController:
    """Model predictive path integral control (Williams et al. 2017): a receding-horizon planner.

    At each call :meth:`act` runs ``n_iters`` :func:`path_integral_step` updates of its nominal
    control sequence from the current state, returns the first control and shifts the sequence
    by one step (the last control is repeated).

    Args:
        rollout: :data:`Rollout` of the model.
        horizon: planning horizon ``H``.
        action_dim: ``m``.
        control_cost: ``R`` (the noise is ``alpha R^{-1}``).
        alpha: temperature > 0.
        n_samples: samples per update.
        n_iters: updates per decision.
        seed: seed of the controller's own ``torch.Generator``.

    Raises:
        ValueError: invalid settings.
    """

    def __init__(self, rollout: Rollout, horizon: int, action_dim: int, control_cost: torch.Tensor, alpha: float,
                 n_samples: int = 256, *, n_iters: int = 1, seed: int = 0) -> None:
        self.rollout = rollout
        self.horizon = check_positive_int("horizon", horizon)
        self.action_dim = check_positive_int("action_dim", action_dim)
        self.control_cost = check_control_cost(as_tensor("control_cost", control_cost), self.action_dim)
        if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha: expected a finite temperature > 0, got {alpha!r}")
        self.alpha = float(alpha)
        self.n_samples = check_positive_int("n_samples", n_samples)
        self.n_iters = check_positive_int("n_iters", n_iters)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.nominal = torch.zeros(self.horizon, self.action_dim, dtype=torch.float64)

    def reset(self) -> None:
        """Forget the nominal sequence (start the next episode from zero controls)."""
        self.nominal = torch.zeros(self.horizon, self.action_dim, dtype=torch.float64)

    def act(self, x: torch.Tensor) -> torch.Tensor:
        """The control to apply at state ``x`` (``(m,)``, float64)."""
        x = as_tensor("x", x)
        for _ in range(self.n_iters):
            est = path_integral_step(self.rollout, x, self.nominal, self.control_cost, self.alpha, self.n_samples,
                                     generator=self.generator)
            self.nominal = est.controls
        u = self.nominal[0].clone()
        self.nominal = torch.cat([self.nominal[1:], self.nominal[-1:]], 0)
        return u
