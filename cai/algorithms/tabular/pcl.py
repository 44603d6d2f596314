r"""Path consistency learning (PCL), tabular: a value table and policy logits fit to the soft consistency.

For the entropy-regularised discounted objective, the soft-optimal ``(V*, pi*)`` of
:func:`cai.soft_value_iteration` satisfies, along **every** path ``s_i, a_i, ..., s_{i+d}`` of a
deterministic MDP and for every length ``d``, the *d-step path consistency*::

    C(s_{i:i+d}) = -V(s_i) + gamma^d V(s_{i+d}) + sum_{j<d} gamma^j (r_j - alpha log pi(a_j|s_j)) = 0

(with an action prior ``rho``: ``alpha log(pi / rho)``). Proof: ``alpha log pi*(a|s) = Q*(s,a) - V*(s)``
and ``Q*(s,a) = r(s,a) + gamma E[V*(s')]``, so one step's term is
``gamma (V*(s_{j+1}) - E[V*(s') | s_j, a_j])``, and the d-step residual is the discounted sum of
these. It is therefore exactly zero for deterministic dynamics, whatever actions the path takes
(the consistency is *off-policy*); for stochastic dynamics it is the sum of those zero-mean
noise terms. Conversely (Nachum et al. 2017, Theorem 1 and Corollary 2), a ``(V, pi)`` consistent
on every one-step transition of a deterministic MDP is the soft optimum.

PCL turns this into a learning rule: from a replay buffer of trajectories of any behaviour policy
it minimises ``1/2 sum C^2`` over sub-paths of length ``d`` by gradient descent on the ``V`` table
and the policy logits together (:func:`pcl`). On stochastic MDPs the minimiser of the squared
residual is *biased* (the double-sampling problem of residual methods: ``E[C^2]`` includes the
variance of ``V(s')``), so the test of convergence to soft value iteration uses deterministic
MDPs, where the paper's theory holds.

Only the stationary discounted problem (``horizon=None``) is covered: a finite horizon needs
time-indexed values, which the path consistency of the paper does not have.

References:
    Nachum, Norouzi, Xu, Schuurmans (2017), "Bridging the gap between value and policy based
    reinforcement learning", NeurIPS, eq. 10-16 (consistency, PCL gradients), Theorem 1.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

import torch

from cai.exact.sampling import Trajectories, sample_trajectories
from cai.mdp.checks import as_tensor, check_policy, check_positive_int
from cai.mdp.tabular import TabularMDP, check_model
from cai.typing import Alpha, ArrayLike

__all__ = ["pcl_residual", "path_residuals", "PCLResult", "pcl"]


def pcl_residual(v_start: torch.Tensor, v_end: torch.Tensor, rewards: torch.Tensor, log_pi: torch.Tensor,
                 gamma: float, alpha: float, mask: Optional[torch.Tensor] = None,
                 terminated: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""The d-step soft path consistency residual of a batch of paths (rlax style, pure).

    ``C = -v_start + gamma^k (1 - terminated) v_end + sum_{j<k} gamma^j (r_j - alpha log_pi_j)``
    with ``k = sum_j mask_j`` the number of valid steps of each path (``mask`` must be a prefix:
    ones then zeros; default all ``d`` steps), ``v_end`` the value of the state *after* the last
    valid step, and ``terminated`` marking paths whose last valid step ended the episode (no
    bootstrap). With an action prior pass ``log_pi - log rho`` as ``log_pi``.

    Args:
        v_start: ``V(s_i)``, ``(B,)``.
        v_end: ``V(s_{i+k})``, ``(B,)``.
        rewards: ``r_j``, ``(B, d)``.
        log_pi: ``log pi(a_j | s_j)``, ``(B, d)``.
        gamma: discount in (0, 1].
        alpha: temperature >= 0.
        mask: ``(B, d)`` prefix mask of valid steps (bool or 0/1); None: all valid.
        terminated: ``(B,)`` bool or 0/1; None: no path terminated.

    Returns:
        torch.Tensor: ``C``, ``(B,)``.

    Raises:
        ValueError: shapes that do not match.

    References:
        Nachum et al. (2017), eq. 10 and 15.
    """
    if rewards.dim() != 2 or log_pi.shape != rewards.shape:
        raise ValueError(f"rewards, log_pi: expected equal shapes (B, d), got {tuple(rewards.shape)} and "
                         f"{tuple(log_pi.shape)}")
    B, d = rewards.shape
    if v_start.shape != (B,) or v_end.shape != (B,):
        raise ValueError(f"v_start, v_end: expected shape ({B},), got {tuple(v_start.shape)} and {tuple(v_end.shape)}")
    disc = gamma ** torch.arange(d, dtype=rewards.dtype, device=rewards.device)
    soft = rewards - alpha * log_pi
    if mask is None:
        k = torch.full((B,), d, dtype=rewards.dtype, device=rewards.device)
    else:
        if mask.shape != (B, d):
            raise ValueError(f"mask: expected shape {(B, d)}, got {tuple(mask.shape)}")
        m = mask.to(rewards.dtype)
        soft = torch.where(m > 0, soft, torch.zeros_like(soft))  # no NaN leaks from padded steps
        k = m.sum(-1)
    end = gamma ** k * v_end
    if terminated is not None:
        end = torch.where(terminated.to(torch.bool), torch.zeros_like(end), end)
    return -v_start + end + (soft * disc).sum(-1)


def _check_stationary(mdp: TabularMDP, fn: str) -> None:
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"{fn}: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    if mdp.horizon is not None:
        raise ValueError(f"{fn}: mdp: expected a stationary discounted MDP (horizon=None), got horizon={mdp.horizon}")
    if mdp.batch_shape != torch.Size([]):
        raise ValueError(f"{fn}: mdp: expected unbatched rewards, got batch shape {tuple(mdp.batch_shape)}")


def _step_rewards(mdp: TabularMDP, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``r(s_j, a_j[, s_{j+1}])`` along trajectories: states ``(n, L+1)``, actions ``(n, L)`` -> ``(n, L)``."""
    L = actions.shape[1]
    if mdp.reward_layout == "sas":
        return mdp.rewards[states[:, :L], actions, states[:, 1:]]
    return mdp.rewards[states[:, :L], actions]


def _subpaths(states: torch.Tensor, actions: torch.Tensor, d: int, starts: torch.Tensor, rows: torch.Tensor):
    """States ``(B, d)``, actions ``(B, d)`` and end states ``(B,)`` of the paths starting at ``(rows, starts)``."""
    j = starts.unsqueeze(-1) + torch.arange(d, device=starts.device)
    r = rows.unsqueeze(-1)
    return states[r, j], actions[r, j], states[rows, starts + d]


def path_residuals(mdp: TabularMDP, values: ArrayLike, policy: ArrayLike, trajectories: Trajectories, d: int,
                   alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    """The d-step path consistency residual of a tabular ``(V, pi)`` on every sub-path of some trajectories.

    Args:
        mdp: a stationary discounted :class:`~cai.TabularMDP` (``horizon=None``).
        values: ``V``, ``(S,)``.
        policy: ``pi``, ``(S, A)`` (rows are distributions).
        trajectories: :class:`~cai.exact.sampling.Trajectories` with ``states (n, L+1)``,
            ``actions (n, L)``.
        d: path length, ``1 <= d <= L``.
        alpha: temperature > 0 (scalar).
        action_prior: None (counting measure) or an ``(S, A)`` prior ``rho``.

    Returns:
        torch.Tensor: ``C``, ``(n, L - d + 1)``: entry ``[k, i]`` is the residual of the path
        ``s_i .. s_{i+d}`` of trajectory ``k``.

    Raises:
        ValueError: a finite-horizon or batched MDP, wrong shapes, ``d`` out of range.
        TypeError: ``mdp`` not a TabularMDP.
    """
    _check_stationary(mdp, "path_residuals")
    a, log_prior = check_model(mdp, alpha, action_prior, "path_residuals")
    if a.dim() != 0:
        raise ValueError(f"alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
    S, A = mdp.n_states, mdp.n_actions
    V = as_tensor("values", values, mdp.dtype, mdp.device)
    if V.shape != (S,):
        raise ValueError(f"values: expected shape ({S},), got {tuple(V.shape)}")
    pi = check_policy(policy, (S, A), mdp.dtype, mdp.device)
    states, actions = trajectories.states, trajectories.actions
    n, L = actions.shape
    d = check_positive_int("d", d, f"a path length between 1 and the trajectory length {L}")
    if d > L:
        raise ValueError(f"d: expected a path length between 1 and the trajectory length {L}, got {d}")
    with torch.no_grad():
        log_pi = torch.log(pi)
        if log_prior is not None:
            log_pi = log_pi - log_prior
        r_all = _step_rewards(mdp, states, actions)
        starts = torch.arange(L - d + 1, device=states.device).repeat(n)
        rows = torch.arange(n, device=states.device).repeat_interleave(L - d + 1)
        s, act, s_end = _subpaths(states, actions, d, starts, rows)
        r = r_all[rows.unsqueeze(-1), starts.unsqueeze(-1) + torch.arange(d, device=states.device)]
        C = pcl_residual(V[s[:, 0]], V[s_end], r, log_pi[s, act], mdp.gamma, float(a))
    return C.reshape(n, L - d + 1)


class PCLResult(NamedTuple):
    """What :func:`pcl` learned.

    Attributes:
        V: value table, ``(S,)``.
        logits: policy logits, ``(S, A)`` (``-inf`` on forbidden actions).
        policy: ``softmax(logits)``, ``(S, A)``.
        losses: ``1/2 mean C^2`` of each minibatch, one per iteration.
        trajectories: the replay buffer of behaviour trajectories the updates sampled from.
    """

    V: torch.Tensor
    logits: torch.Tensor
    policy: torch.Tensor
    losses: List[float]
    trajectories: Trajectories


def pcl(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, d: int = 4,
        n_iter: int = 3000, batch_size: int = 256, lr: float = 0.05, behaviour: Optional[ArrayLike] = None,
        n_trajectories: int = 64, trajectory_length: int = 20, seed: int = 0) -> PCLResult:
    r"""Tabular path consistency learning from off-policy trajectories.

    A replay buffer of ``n_trajectories`` trajectories of length ``trajectory_length`` is sampled
    once from ``behaviour``; each iteration draws ``batch_size`` sub-paths of length ``d`` from it
    uniformly and takes an Adam step on ``1/2 mean C^2`` (:func:`pcl_residual`) with respect to the
    value table ``V (S,)`` and the logits ``(S, A)`` of ``pi = softmax(logits)`` together; the
    gradient of ``C^2`` is PCL's (Nachum et al. 2017, eq. 15-16): ``C grad V`` for the values and
    ``-alpha C sum_j gamma^j grad log pi(a_j|s_j)`` for the policy. Its fixed point on a
    deterministic MDP whose ``(s, a)`` pairs the buffer covers is soft value iteration's
    ``(V*, pi*)`` (see the module docstring for stochastic MDPs).

    Args:
        mdp: stationary discounted :class:`~cai.TabularMDP` (``horizon=None``), unbatched.
        alpha: temperature > 0 (scalar).
        action_prior: None (counting measure) or ``(S, A)`` prior ``rho``.
        d: path length (rollout) of the consistency.
        n_iter: gradient steps.
        batch_size: sub-paths per step.
        lr: Adam learning rate.
        behaviour: ``(S, A)`` behaviour policy; None: uniform over the allowed actions.
        n_trajectories, trajectory_length: the replay buffer (``trajectory_length >= d``).
        seed: seed of the trajectories and of the minibatches.

    Returns:
        :class:`PCLResult`.

    Raises:
        ValueError: a finite-horizon or batched MDP, a non-scalar ``alpha``, non-positive sizes,
            ``trajectory_length < d``, an invalid behaviour policy.
        TypeError: ``mdp`` not a TabularMDP.

    References:
        Nachum, Norouzi, Xu, Schuurmans (2017), "Bridging the gap between value and policy based
        reinforcement learning", NeurIPS, Algorithm 1 (PCL).
    """
    _check_stationary(mdp, "pcl")
    a, log_prior = check_model(mdp, alpha, action_prior, "pcl")
    if a.dim() != 0:
        raise ValueError(f"alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
    d = check_positive_int("d", d, "a positive integer path length")
    n_iter = check_positive_int("n_iter", n_iter)
    batch_size = check_positive_int("batch_size", batch_size)
    n_trajectories = check_positive_int("n_trajectories", n_trajectories)
    L = check_positive_int("trajectory_length", trajectory_length)
    if d > L:
        raise ValueError(f"trajectory_length: expected at least the path length d = {d}, got {L}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive finite learning rate, got {lr!r}")
    S, A = mdp.n_states, mdp.n_actions
    forbidden = ~mdp.allowed
    if log_prior is not None:
        forbidden = forbidden | torch.isneginf(log_prior)
    if behaviour is None:
        b = (~forbidden).to(mdp.dtype)
        b = b / b.sum(-1, keepdim=True)
    else:
        b = check_policy(behaviour, (S, A), mdp.dtype, mdp.device, name="behaviour")
        if bool((b[forbidden] > 0).any()):
            raise ValueError("behaviour: expected zero probability on forbidden actions (reward -inf or prior 0), "
                             "got a positive one")
    gen = torch.Generator(device=mdp.device).manual_seed(int(seed))
    traj = sample_trajectories(mdp, b, n_trajectories, generator=gen, length=L)
    states, actions = traj.states, traj.actions
    r_all = _step_rewards(mdp, states, actions)
    lp = torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device) if log_prior is None else \
        torch.where(forbidden, torch.zeros_like(log_prior), log_prior)
    V = torch.zeros(S, dtype=mdp.dtype, device=mdp.device, requires_grad=True)
    logits = torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device, requires_grad=True)
    opt = torch.optim.Adam([V, logits], lr=lr)
    neg_inf = torch.full((S, A), -math.inf, dtype=mdp.dtype, device=mdp.device)
    n_starts = L - d + 1
    offs = torch.arange(d, device=states.device)
    losses: List[float] = []
    for _ in range(n_iter):
        rows = torch.randint(n_trajectories, (batch_size,), generator=gen, device=states.device)
        starts = torch.randint(n_starts, (batch_size,), generator=gen, device=states.device)
        s, act, s_end = _subpaths(states, actions, d, starts, rows)
        r = r_all[rows.unsqueeze(-1), starts.unsqueeze(-1) + offs]
        log_pi = torch.log_softmax(torch.where(forbidden, neg_inf, logits), -1) - lp
        C = pcl_residual(V[s[:, 0]], V[s_end], r, log_pi[s, act], mdp.gamma, float(a))
        loss = 0.5 * (C ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        final_logits = torch.where(forbidden, neg_inf, logits.detach())
        policy = torch.softmax(final_logits, -1)
    return PCLResult(V.detach().clone(), final_logits, policy, losses, traj)
