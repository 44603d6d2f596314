"""Small torch networks shared by the deep MaxEnt learners (float32, any device)."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mlp", "EnsembleLinear", "EnsembleQNetwork", "TanhGaussianActor", "tanh_gaussian_log_prob", "polyak_update",
           "gradient_step"]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> nn.Sequential:
    """ReLU multilayer perceptron ``in_dim -> hidden_sizes... -> out_dim`` (linear output)."""
    layers, d = [], in_dim
    for hsize in hidden_sizes:
        layers += [nn.Linear(d, hsize), nn.ReLU()]
        d = hsize
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied in one batched matmul.

    Input ``(E, B, in)`` or ``(B, in)`` (shared across members); output ``(E, B, out)``.
    Initialised like ``nn.Linear``: uniform in ``±1/sqrt(in)``.
    """

    def __init__(self, ensemble_size: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleQNetwork(nn.Module):
    """``E`` Q networks ``Q_e(s, a)`` (the twin critics of SAC when ``E = 2``) evaluated together.

    Args:
        obs_dim: Observation size. action_dim: Action size (0 for a discrete-action Q network
            ``Q(s, .)`` with ``n_outputs`` heads). hidden_sizes: Hidden layer sizes.
        ensemble_size: Number of members ``E``. n_outputs: Outputs per member.

    Shapes:
        ``forward(obs (B, obs_dim), action (B, action_dim))`` returns ``(E, B)`` when
        ``n_outputs == 1``, else ``(E, B, n_outputs)``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256),
                 ensemble_size: int = 2, n_outputs: int = 1) -> None:
        super().__init__()
        layers, d = [], obs_dim + action_dim
        for hsize in hidden_sizes:
            layers += [EnsembleLinear(ensemble_size, d, hsize), nn.ReLU()]
            d = hsize
        layers.append(EnsembleLinear(ensemble_size, d, n_outputs))
        self.net = nn.Sequential(*layers)
        self.n_outputs = n_outputs

    def forward(self, obs: torch.Tensor, action: torch.Tensor = None) -> torch.Tensor:
        x = obs if action is None else torch.cat([obs, action], dim=-1)
        out = self.net(x)
        return out.squeeze(-1) if self.n_outputs == 1 else out


def tanh_gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, pre_tanh: torch.Tensor) -> torch.Tensor:
    """Log density of ``a = tanh(u)``, ``u ~ N(mean, diag(exp(log_std))^2)``, at ``a = tanh(pre_tanh)``.

    Change of variables: ``log p(a) = log N(u) - sum_i log(1 - tanh(u_i)^2)``, with the stable
    form ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` (Haarnoja et al. 2018, App. C).

    Args:
        mean, log_std, pre_tanh: ``(..., d)``.

    Returns:
        torch.Tensor: ``(...)``.
    """
    var = torch.exp(2 * log_std)
    log_normal = -0.5 * ((pre_tanh - mean) ** 2 / var + 2 * log_std + math.log(2 * math.pi))
    log_det = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (log_normal - log_det).sum(-1)


class TanhGaussianActor(nn.Module):
    """Policy ``a = tanh(mu(s) + sigma(s) * eps)``, ``eps ~ N(0, I)``, actions in ``(-1, 1)^d``.

    ``forward(obs (B, obs_dim))`` returns ``(action (B, d), log_prob (B,))`` by reparameterisation
    (gradients flow through the sample); ``deterministic=True`` returns ``tanh(mu(s))``.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_sizes[:-1], hidden_sizes[-1]) if hidden_sizes else nn.Identity()
        d = hidden_sizes[-1] if hidden_sizes else obs_dim
        self.head = nn.Linear(d, 2 * action_dim)

    def distribution_params(self, obs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)`` of the pre-tanh Gaussian, each ``(B, d)``; log_std clamped to [-20, 2]."""
        h = F.relu(self.trunk(obs)) if not isinstance(self.trunk, nn.Identity) else obs
        mean, log_std = self.head(h).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.distribution_params(obs)
        u = mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(u), tanh_gaussian_log_prob(mean, log_std, u)


@torch.no_grad()
def polyak_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    """``theta_target <- (1 - tau) theta_target + tau theta_source`` in place."""
    t_params, s_params = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``: clear the gradients (to ``None``), backpropagate, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
