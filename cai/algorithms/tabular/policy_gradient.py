r"""Soft policy gradient: REINFORCE with an entropy bonus and a baseline, on a tabular softmax policy.

The policy ``pi_theta(a|s) = softmax_a theta(s, a)`` (time-indexed ``theta_t`` for a finite
horizon; forbidden actions masked) maximises the entropy-regularised objective that soft value
iteration maximises in closed form (Levine 2018, §4.1)::

    J(theta) = E_pi[ sum_t gamma^t (r_t(s_t,a_t) - alpha log(pi_t(a_t|s_t) / rho(a_t|s_t))) + gamma^T r_T(s_T) ]
             = alpha * ELBO(pi_theta)                                   (see :func:`cai.elbo`)

Its gradient, estimated from sampled trajectories (the score-function or likelihood-ratio
estimator; the entropy term's own derivative ``-alpha E[grad log pi]`` has mean zero)::

    grad J ≈ (1/n) sum_i sum_t gamma^t grad log pi_t(a_t^i|s_t^i) (G_t^i - b_t(s_t^i))
    G_t    = sum_{t' >= t} gamma^{t'-t} (r_t' - alpha log(pi_t'/rho)) + gamma^{T-t} r_T(s_T)

with the tabular score ``grad_{theta_t(s,.)} log pi_t(a|s) = onehot(a) - pi_t(.|s)``. The
baseline ``b`` reduces variance without bias: ``"loo"`` is the leave-one-out mean of ``G_t``
over the batch's other visits to ``(t, s)``; ``"running"`` an exponential average from earlier
batches. The maximiser is the soft-optimal policy of :func:`cai.soft_value_iteration`.

References:
    Williams (1992), "Simple statistical gradient-following algorithms for connectionist
    reinforcement learning", Machine Learning 8.
    Levine (2018), "Reinforcement learning and control as probabilistic inference", §4.1.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Tuple

import torch
from tqdm.auto import tqdm

from cai.dp.soft_vi import elbo
from cai.exact.sampling import Trajectories, sample_trajectories
from cai.mdp.checks import as_tensor
from cai.mdp.tabular import TabularMDP, check_model
from cai.typing import Alpha, ArrayLike

__all__ = ["PGStep", "PGResult", "softmax_policy", "reinforce_gradient", "soft_reinforce"]

BASELINES = (None, "loo", "running")


class PGStep(NamedTuple):
    """One entry of :attr:`PGResult.history`.

    Attributes:
        iteration: 0-based.
        sampled_return: mean sampled ``G_0`` of the batch (an estimate of ``J``).
        objective: exact ``J = alpha * ELBO`` of the current policy (``nan`` when not tracked).
        policy_error: ``max |pi - reference|`` (``nan`` without a reference).
    """

    iteration: int
    sampled_return: float
    objective: float
    policy_error: float


class PGResult(NamedTuple):
    """The result of :func:`soft_reinforce`.

    Attributes:
        logits: ``(T, S, A)`` or ``(S, A)`` learned ``theta`` (``-inf`` at forbidden actions).
        policy: the softmax policy of ``logits``.
        history: list of :class:`PGStep` (the training curve).
        n_trajectories: trajectories sampled in total.
    """

    logits: torch.Tensor
    policy: torch.Tensor
    history: List[PGStep]
    n_trajectories: int


def _forbidden(mdp: TabularMDP, log_prior) -> torch.Tensor:
    f = ~mdp.allowed
    if log_prior is not None:
        f = f | torch.isneginf(log_prior)
    return f


def softmax_policy(logits: torch.Tensor, forbidden: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``softmax`` over the last axis with ``forbidden`` actions masked to probability 0."""
    if forbidden is not None:
        logits = torch.where(forbidden, torch.full_like(logits, -float("inf")), logits)
    m = logits.amax(-1, keepdim=True)
    e = torch.exp(logits - m)
    return e / e.sum(-1, keepdim=True)


def _soft_returns(mdp: TabularMDP, traj: Trajectories, log_pi: torch.Tensor, log_prior, alpha: float
                  ) -> torch.Tensor:
    """Soft rewards-to-go ``G_t``, ``(n, L)``."""
    s, a = traj.states, traj.actions
    n, L = a.shape
    T = mdp.horizon
    g = mdp.gamma
    t_idx = torch.arange(L, device=s.device).unsqueeze(0).expand(n, L)
    st = s[:, :L]
    if mdp.reward_layout == "tsa":
        r = mdp.rewards[t_idx, st, a]
    elif mdp.reward_layout == "sas":
        r = mdp.rewards[st, a, s[:, 1:]]
    else:
        r = mdp.rewards[st, a]
    lp = log_pi[t_idx, st, a] if log_pi.dim() == 3 else log_pi[st, a]
    if log_prior is not None:
        lp = lp - log_prior[st, a]
    soft_r = r - alpha * lp
    G = torch.zeros(n, L + 1, dtype=soft_r.dtype, device=soft_r.device)
    if T is not None:
        G[:, L] = mdp.terminal_rewards[s[:, L]]
    for t in range(L - 1, -1, -1):
        G[:, t] = soft_r[:, t] + g * G[:, t + 1]
    return G[:, :L]


def reinforce_gradient(mdp: TabularMDP, logits: torch.Tensor, trajectories: Trajectories, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *,
                       baseline: Optional[str] = "loo", baseline_table: Optional[torch.Tensor] = None
                       ) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""The REINFORCE estimate of ``grad_theta J`` from trajectories sampled from ``softmax(logits)``.

    Args:
        mdp: :class:`~cai.TabularMDP` (unbatched).
        logits: ``(T, S, A)`` time-indexed or ``(S, A)`` stationary ``theta``.
        trajectories: sampled from the policy of ``logits`` (:func:`cai.sample_trajectories`).
        alpha: temperature (> 0).
        action_prior: ``None`` or a normalised ``(S, A)`` prior (the KL-regularised objective).
        baseline: ``None``, ``"loo"`` (leave-one-out batch mean of ``G_t`` per ``(t, s)``) or
            ``"running"`` (use ``baseline_table``).
        baseline_table: ``(L, S)`` baseline values for ``"running"``.

    Returns:
        ``(grad, G)``: the gradient estimate, shaped like ``logits``, and the soft returns-to-go
        ``G (n, L)``.
    """
    a_t, log_prior = check_model(mdp, alpha, action_prior, "reinforce_gradient")
    alpha = float(a_t)
    if baseline not in BASELINES:
        raise ValueError(f"baseline: expected None, 'loo' or 'running', got {baseline!r}")
    theta = as_tensor("logits", logits, mdp.dtype, mdp.device)
    S, A = mdp.n_states, mdp.n_actions
    if not (tuple(theta.shape[-2:]) == (S, A) and (theta.dim() == 2 or (theta.dim() == 3 and
                                                                         theta.shape[0] == mdp.horizon))):
        raise ValueError(f"logits: expected (T, S, A) = ({mdp.horizon}, {S}, {A}) or (S, A) = ({S}, {A}), "
                         f"got {tuple(theta.shape)}")
    if not isinstance(trajectories, Trajectories):
        raise TypeError(f"trajectories: expected a cai.Trajectories, got {type(trajectories).__name__}")
    forb = _forbidden(mdp, log_prior)
    if forb.dim() == 3 and theta.dim() == 2:
        raise ValueError("logits: time-varying forbidden actions need time-indexed (T, S, A) logits")
    pi = softmax_policy(theta, forb)
    log_pi = torch.log(pi)
    s, act = trajectories.states, trajectories.actions
    if not (isinstance(s, torch.Tensor) and isinstance(act, torch.Tensor)) or s.is_floating_point() \
            or act.is_floating_point() or s.dtype == torch.bool or act.dtype == torch.bool:
        raise TypeError("trajectories: expected integer tensors states (n, L+1) and actions (n, L)")
    if s.dim() != 2 or act.dim() != 2 or s.shape[0] != act.shape[0] or s.shape[1] != act.shape[1] + 1:
        raise ValueError(f"trajectories: expected states (n, L+1) and actions (n, L), got states "
                         f"{tuple(s.shape)} and actions {tuple(act.shape)}")
    if bool((s < 0).any()) or bool((act < 0).any()):
        raise ValueError("trajectories: expected no dead (-1) entries; sample with cai.sample_trajectories")
    if bool((s >= S).any()) or bool((act >= A).any()):
        raise ValueError(f"trajectories: expected states in [0, {S - 1}] and actions in [0, {A - 1}], got a "
                         f"state up to {int(s.max())} and an action up to {int(act.max())}")
    n, L = act.shape
    if mdp.horizon is not None and mdp.horizon != L:
        raise ValueError(f"trajectories: expected {mdp.horizon} actions per trajectory (the MDP's horizon), got {L}")
    if n < 1 or L < 1:
        raise ValueError(f"trajectories: expected at least one trajectory of at least one step, got actions {tuple(act.shape)}")
    G = _soft_returns(mdp, trajectories, log_pi, log_prior, alpha)         # (n, L)
    st = s[:, :L]
    t_idx = torch.arange(L, device=s.device).unsqueeze(0).expand(n, L)
    key = (t_idx * S + st).reshape(-1)                                       # (t, s) cells
    Gf = G.reshape(-1)
    if baseline == "loo":
        tot = torch.zeros(L * S, dtype=G.dtype, device=G.device).index_add_(0, key, Gf)
        cnt = torch.zeros(L * S, dtype=G.dtype, device=G.device).index_add_(0, key, torch.ones_like(Gf))
        c = cnt[key]
        b = torch.where(c > 1, (tot[key] - Gf) / torch.where(c > 1, c - 1, torch.ones_like(c)), torch.zeros_like(Gf))
    elif baseline == "running":
        if baseline_table is None or tuple(baseline_table.shape) != (L, S):
            raise ValueError(f"baseline_table: expected shape ({L}, {S}) for baseline='running', got "
                             f"{None if baseline_table is None else tuple(baseline_table.shape)}")
        b = baseline_table.reshape(-1)[key]
    else:
        b = torch.zeros_like(Gf)
    w = (mdp.gamma ** t_idx.to(G.dtype)).reshape(-1) * (Gf - b) / n          # (n*L,)
    # score of a tabular softmax: onehot(a) - pi(.|s) in the row of (t, s)
    pi_rows = (pi[t_idx, st] if pi.dim() == 3 else pi[st]).reshape(-1, A)
    score = torch.nn.functional.one_hot(act.reshape(-1), A).to(G.dtype) - pi_rows
    contrib = w.unsqueeze(-1) * score
    if theta.dim() == 3:
        grad = torch.zeros(L * S, A, dtype=G.dtype, device=G.device).index_add_(0, key, contrib).reshape(L, S, A)
    else:
        grad = torch.zeros(S, A, dtype=G.dtype, device=G.device).index_add_(0, st.reshape(-1), contrib)
    grad = torch.where(forb.expand(grad.shape), torch.zeros_like(grad), grad)
    return grad, G


def soft_reinforce(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, n_iter: int = 300, batch_size: int = 256,
                   lr: float = 0.1, lr_decay: float = 0.0, optimizer: str = "adam", baseline: Optional[str] = "loo",
                   baseline_rate: float = 0.1, length: Optional[int] = None, init_logits: Optional[ArrayLike] = None,
                   reference_policy: Optional[ArrayLike] = None, track_objective: bool = True,
                   generator: Optional[torch.Generator] = None, progress: bool = False) -> PGResult:
    r"""Train a tabular softmax policy by REINFORCE on the entropy-regularised objective.

    Args:
        mdp: :class:`~cai.TabularMDP` (unbatched). Finite horizon: time-indexed logits
            ``(T, S, A)``; stationary: one ``(S, A)`` table and trajectories of ``length`` steps
            (the objective is truncated there: bias ``O(gamma^length)``).
        alpha: temperature > 0.
        action_prior: ``None`` or a normalised ``(S, A)`` prior.
        n_iter: gradient steps; ``batch_size`` trajectories each.
        lr: learning rate; ``lr_decay``: the step ``k`` uses ``lr / (1 + lr_decay * k)``.
        optimizer: ``"adam"`` or ``"sgd"`` (gradient ascent).
        baseline: ``None``, ``"loo"`` or ``"running"`` (see :func:`reinforce_gradient`);
            ``baseline_rate`` is the running average's rate.
        length: trajectory length for a stationary MDP (required there).
        init_logits: starting ``theta`` (default 0: the uniform policy over allowed actions).
        reference_policy: policy to track ``max |pi - reference|`` against (e.g. soft VI's).
        track_objective: record the exact ``J = alpha * ELBO`` (:func:`cai.elbo`) every step.
        generator: ``torch.Generator`` for reproducibility.
        progress: show a tqdm progress bar.

    Returns:
        :class:`PGResult`.
    """
    a_t, log_prior = check_model(mdp, alpha, action_prior, "soft_reinforce")
    if mdp.batch_shape != torch.Size([]) or a_t.dim() != 0:
        raise ValueError(f"mdp: expected an unbatched MDP and a scalar alpha, got reward batch "
                         f"{tuple(mdp.batch_shape)} and alpha of shape {tuple(a_t.shape)}")
    for nm, v in (("n_iter", n_iter), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm}: expected a positive integer, got {v!r}")
    if batch_size < 2 and baseline == "loo":
        raise ValueError(f"batch_size: the leave-one-out baseline needs at least 2 trajectories, got {batch_size}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if not (isinstance(lr_decay, (int, float)) and lr_decay >= 0):
        raise ValueError(f"lr_decay: expected a non-negative number, got {lr_decay!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {optimizer!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline: expected None, 'loo' or 'running', got {baseline!r}")
    if not (0 < baseline_rate <= 1):
        raise ValueError(f"baseline_rate: expected a number in (0, 1], got {baseline_rate!r}")
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    if T is None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length: expected a positive integer for a stationary MDP, got {length!r}")
        shape, L = (S, A), length
    else:
        if length is not None and length != T:
            raise ValueError(f"length: a finite-horizon MDP uses its horizon {T}, got {length!r}")
        shape, L = (T, S, A), T
    forb = _forbidden(mdp, log_prior)
    theta = torch.zeros(shape, dtype=mdp.dtype, device=mdp.device)
    if init_logits is not None:
        theta = as_tensor("init_logits", init_logits, mdp.dtype, mdp.device).clone()
        if tuple(theta.shape) != shape:
            raise ValueError(f"init_logits: expected shape {shape}, got {tuple(theta.shape)}")
    ref = None
    if reference_policy is not None:
        ref = as_tensor("reference_policy", reference_policy, mdp.dtype, mdp.device)
        if tuple(ref.shape) != shape:
            raise ValueError(f"reference_policy: expected shape {shape}, got {tuple(ref.shape)}")
    theta.requires_grad_(False)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)([theta], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1.0 + lr_decay * k))
    table = torch.zeros(L, S, dtype=mdp.dtype, device=mdp.device) if baseline == "running" else None
    history: List[PGStep] = []
    alpha_f = float(a_t)
    bar = tqdm(range(n_iter), disable=not progress, desc="soft REINFORCE")
    for k in bar:
        pi = softmax_policy(theta, forb)
        traj = sample_trajectories(mdp, pi, batch_size, generator=generator, length=L if T is None else None)
        grad, G = reinforce_gradient(mdp, theta, traj, a_t, action_prior, baseline=baseline, baseline_table=table)
        obj = float(elbo(mdp, pi, a_t, action_prior)) * alpha_f if track_objective else float("nan")
        err = float((pi - ref).abs().max()) if ref is not None else float("nan")
        history.append(PGStep(k, float(G[:, 0].mean()), obj, err))
        bar.set_postfix(J=f"{obj:.4g}", err=f"{err:.3g}")
        if baseline == "running":
            key = (torch.arange(L).unsqueeze(0) * S + traj.states[:, :L]).reshape(-1)
            tot = torch.zeros(L * S, dtype=G.dtype).index_add_(0, key, G.reshape(-1))
            cnt = torch.zeros(L * S, dtype=G.dtype).index_add_(0, key, torch.ones_like(G.reshape(-1)))
            seen = cnt > 0
            flat = table.reshape(-1)
            flat.copy_(torch.where(seen, flat + baseline_rate * (tot / cnt.clamp_min(1) - flat), flat))
        theta.grad = -grad                                          # ascent
        opt.step()
        sched.step()
    bar.close()
    pi = softmax_policy(theta, forb)
    return PGResult(torch.where(forb.expand(shape), torch.full_like(theta, -float("inf")), theta.detach()),
                    pi, history, n_iter * batch_size)
