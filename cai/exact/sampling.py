"""Trajectory sampling: under a policy and the true dynamics, or from the exact posterior."""
from __future__ import annotations

import numbers
from typing import NamedTuple, Optional

import torch

from cai.exact.messages import log_normaliser
from cai.mdp.checks import as_tensor, check_policy, check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.methods import EXACT
from cai.solution import Solution
from cai.typing import ArrayLike

__all__ = ["Trajectories", "sample_trajectories", "sample_posterior", "transition_rows"]


class Trajectories(NamedTuple):
    """A batch of sampled trajectories.

    Attributes:
        states: ``(n, T+1)`` long tensor of state indices; ``-1`` after death (posterior
            sampling with a discount < 1).
        actions: ``(n, T)`` long tensor of action indices; ``-1`` after death.
    """

    states: torch.Tensor
    actions: torch.Tensor


def _check_generator(generator):
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")


def _categorical(probs: torch.Tensor, generator) -> torch.Tensor:
    """One draw per row of ``probs (n, k)`` (rows need not be normalised)."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def transition_rows(mdp: TabularMDP, rows: torch.Tensor) -> torch.Tensor:
    """Dense ``P[s, a, :]`` for flat row indices ``rows = s * A + a``: ``(n, S)``."""
    if not mdp.is_sparse:
        return mdp.transition_matrix[rows]
    P = mdp.transitions
    crow, col, val = P.crow_indices(), P.col_indices(), P.values()
    start, stop = crow[rows], crow[rows + 1]
    counts = stop - start
    which = torch.repeat_interleave(torch.arange(rows.numel(), device=val.device), counts)
    offsets = torch.arange(int(counts.sum()), device=val.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts)
    src = torch.repeat_interleave(start, counts) + offsets
    out = torch.zeros(rows.numel(), mdp.n_states, dtype=val.dtype, device=val.device)
    out[which, col[src]] = val[src]
    return out


def sample_trajectories(mdp: TabularMDP, policy: ArrayLike, n: int, *, generator: Optional[torch.Generator] = None,
                        length: Optional[int] = None) -> Trajectories:
    """Sample ``n`` trajectories from ``p0``, a policy and the MDP's own dynamics.

    Args:
        mdp: :class:`~cai.TabularMDP`.
        policy: ``(T, S, A)`` time-indexed or ``(S, A)`` stationary (unbatched).
        n: number of trajectories.
        generator: a ``torch.Generator`` for reproducibility.
        length: number of decisions for a stationary MDP (default: ``mdp.horizon``).

    Returns:
        :class:`Trajectories` with ``states (n, T+1)`` and ``actions (n, T)``.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"sample_trajectories: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    mdp.check_unchanged("sample_trajectories")
    n = check_positive_int("n", n, "a positive integer number of trajectories")
    _check_generator(generator)
    S, A = mdp.n_states, mdp.n_actions
    T = length if length is not None else mdp.horizon
    if T is None or isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"length: expected a positive integer (needed for a stationary MDP), got {T!r}")
    T = int(T)
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    if p.dim() == 3:
        p = check_policy(p, (T, S, A), mdp.dtype, mdp.device)
    else:
        p = check_policy(p, (S, A), mdp.dtype, mdp.device)
        if p.dim() != 2:
            raise ValueError(f"policy: expected (T, S, A) or (S, A), got {tuple(p.shape)}")
        p = p.expand(T, S, A)
    dev = mdp.device
    states = torch.empty(n, T + 1, dtype=torch.long, device=dev)
    actions = torch.empty(n, T, dtype=torch.long, device=dev)
    s = _categorical(mdp.initial.expand(n, S), generator)
    states[:, 0] = s
    for t in range(T):
        a = _categorical(p[t][s], generator)
        s = _categorical(transition_rows(mdp, s * A + a), generator)
        actions[:, t], states[:, t + 1] = a, s
    return Trajectories(states, actions)


def sample_posterior(mdp: TabularMDP, messages: Solution, n: int, *,
                     generator: Optional[torch.Generator] = None) -> Trajectories:
    """Sample ``n`` trajectories from the exact posterior ``p(tau | O_{0:T-1})``.

    Uses ``p(s_0|O)``, the posterior policy and the posterior dynamics
    ``p(s'|s,a,O)`` (see :func:`cai.posterior_dynamics`), not the MDP's dynamics. With a
    discount < 1 a trajectory may die (``-1`` from then on).

    Args:
        messages: an unbatched result of :func:`cai.backward_messages` on ``mdp`` (finite horizon).

    Returns:
        :class:`Trajectories`.
    """
    if not isinstance(messages, Solution) or messages.method != EXACT:
        raise TypeError("sample_posterior: messages: expected the result of cai.backward_messages")
    if messages.mdp is not mdp:
        raise ValueError("sample_posterior: messages: were computed for a different MDP object")
    mdp.check_unchanged("sample_posterior")
    if mdp.horizon is None:
        raise ValueError("sample_posterior: mdp: expected a finite horizon, got horizon=None")
    if messages.V.dim() != 2:
        raise ValueError(f"sample_posterior: messages: expected an unbatched solution, got V of shape {tuple(messages.V.shape)}")
    n = check_positive_int("n", n, "a positive integer number of trajectories")
    _check_generator(generator)
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    alpha = messages.alpha
    g = mdp.gamma
    dev = mdp.device
    log_mu0 = torch.log(mdp.initial) + messages.V[0] / alpha
    states = torch.full((n, T + 1), -1, dtype=torch.long, device=dev)
    actions = torch.full((n, T), -1, dtype=torch.long, device=dev)
    s = _categorical(torch.exp(log_mu0 - log_mu0.max()).expand(n, S), generator)
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    states[:, 0] = s
    for t in range(T):
        idx = alive.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        st = s[idx]
        a = _categorical(messages.policy_at(t)[st], generator)
        v_next = messages.V[t + 1]
        D = log_normaliser(messages, t, v_next)[st, a]
        rows = transition_rows(mdp, st * A + a)
        extra = mdp.rewards[st, a] if mdp.reward_layout == "sas" else 0.0
        live = g * rows * torch.exp((extra + v_next) / alpha - D.unsqueeze(-1))
        if g < 1:
            dead = (1 - live.sum(-1)).clamp_min(0).unsqueeze(-1)
            nxt = _categorical(torch.cat([live, dead], -1), generator)
        else:
            nxt = _categorical(live, generator)
        actions[idx, t] = a
        died = nxt == S
        nxt = torch.where(died, torch.full_like(nxt, -1), nxt)
        states[idx, t + 1] = nxt
        s = s.clone()
        s[idx] = nxt.clamp_min(0)
        alive[idx[died]] = False
    return Trajectories(states, actions)
