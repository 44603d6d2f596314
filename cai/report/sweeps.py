"""Sweeps behind figures: one batched solve over temperatures, and what each soft policy does."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from cai.dp.soft_vi import soft_value_iteration
from cai.dp.visitation import expected_rewards, policy_marginals
from cai.exact.messages import backward_messages
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["TemperatureSweep", "sweep_temperature"]


class TemperatureSweep(NamedTuple):
    """What :func:`sweep_temperature` measures, one entry per temperature.

    Attributes:
        alpha: ``(K,)`` temperatures.
        entropy: ``(K,)`` expected policy entropy per decision along the policy's own
            trajectories, ``sum_t E_{s_t}[H(pi_t(.|s_t)) 1{s_t decides}] / sum_t P(s_t decides)``
            (nats). States without two allowed actions that differ in dynamics or reward (a
            terminal cell, an exit state) decide nothing and are left out.
        soft_value: ``(K,)`` ``sum_s p0(s) V_0(s)`` of soft value iteration (reward + alpha * entropy).
        expected_return: ``(K,)`` the soft policy's expected (discounted) return
            ``E[sum_t gamma^t r_t + gamma^T r_T]``.
        log_evidence: ``(K,)`` ``alpha * log p(O)`` from exact inference (reward units), or ``None``.
    """

    alpha: torch.Tensor
    entropy: torch.Tensor
    soft_value: torch.Tensor
    expected_return: torch.Tensor
    log_evidence: Optional[torch.Tensor]


def sweep_temperature(mdp: TabularMDP, alphas: ArrayLike, *, exact: bool = True) -> TemperatureSweep:
    """Solve ``mdp`` at many temperatures in one batched call and measure each soft policy.

    Uses ``cai.soft_value_iteration(mdp, alpha=torch.tensor(alphas))`` (batch-first results)
    and :func:`cai.policy_marginals` for the on-policy state distribution. The identity
    The soft value is the expected return plus ``alpha`` times the expected entropy of all steps
    (counting prior); the tests hold the three to that identity.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch.
        alphas: ``(K,)`` positive temperatures.
        exact: also compute the exact log evidence (scaled by ``alpha``, in reward units).

    Returns:
        :class:`TemperatureSweep`.
    """
    if mdp.horizon is None:
        raise ValueError("mdp: sweep_temperature needs a finite horizon, got horizon=None")
    if len(mdp.batch_shape):
        raise ValueError(f"mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    a = torch.as_tensor(alphas, dtype=mdp.dtype, device=mdp.device).reshape(-1)
    sol = soft_value_iteration(mdp, alpha=a)
    pi = sol.policy                                        # (K, T, S, A)
    d = policy_marginals(mdp, pi).state                    # (K, T+1, S)
    log_pi = sol.log_policy
    H = -(torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi))).sum(-1)      # (K, T, S)
    w = d[:, :-1] * _decision_states(mdp).to(d.dtype)
    ent = (w * H).sum((-1, -2)) / w.sum((-1, -2)).clamp_min(torch.finfo(d.dtype).tiny)
    r_sa = expected_rewards(mdp)                            # (T, S, A)
    ret = (d[:, :-1].unsqueeze(-1) * pi * r_sa).sum((-1, -2, -3)) + (d[:, -1] * mdp.terminal_rewards).sum(-1)
    le = None
    if exact:
        le = a * backward_messages(mdp, alpha=a, keep="V0").log_evidence
    return TemperatureSweep(a, ent, sol.value, ret, le)


def _decision_states(mdp) -> torch.Tensor:
    """``(S,)`` bool: states with two allowed actions that differ (in dynamics or reward). In the
    others (a terminal cell or an exit with its single action, a state whose actions all do the
    same) the choice changes nothing."""
    P = mdp.dense_transitions()
    allowed = mdp.allowed                                      # (S, A) or (T, S, A)
    r = mdp.rewards
    if mdp.reward_layout == "tsa":
        allowed = allowed.any(0)
        r = r.permute(1, 2, 0)                                 # (S, A, T)
    r = r.reshape(mdp.n_states, mdp.n_actions, -1)
    r = torch.where(torch.isneginf(r), torch.full_like(r, -torch.finfo(r.dtype).max), r)   # compare -inf as equal
    first = allowed.to(torch.int8).argmax(-1)                  # the first allowed action of each state
    idx = torch.arange(mdp.n_states, device=P.device)
    differs_P = (P - P[idx, first].unsqueeze(1)).abs().amax(-1) > 0
    differs_r = (r - r[idx, first].unsqueeze(1)).abs().amax(-1) > 0
    return ((differs_P | differs_r) & allowed).any(-1)
