r"""Exact inference with observations: belief filtering and the messages of a controller.

* :func:`filter_beliefs` — the HMM forward pass for a given action sequence:
  ``b_{t+1}(s') ∝ Z(o_{t+1} | s', a_t) sum_s P(s' | s, a_t) b_t(s)``, and the log likelihood
  ``log p(o_{1:T} | a_{0:T-1})``.
* :func:`controller_messages` — forward and backward messages of the graphical model in which a
  :class:`~cai.pomdp.FiniteStateController` chooses the actions and the observations
  ``o_{1:T}`` are given; with ``optimality=True`` the optimality factors
  ``exp(r(s_t, a_t) / alpha)`` (and ``exp(r_T(s_T) / alpha)``) are included::

      p(s, m, a, o, O) = b_0(s_0) eta_0(m_0) prod_t pi(a_t | m_t) e^{r(s_t, a_t)/alpha}
                         P(s_{t+1} | s_t, a_t) Z(o_{t+1} | s_{t+1}, a_t) eta(m_{t+1} | m_t, a_t, o_{t+1})
                         * e^{r_T(s_T)/alpha}

  Its log evidence is ``log p(O_{0:T-1} = 1, O_T = 1, o_{1:T})`` (``log p(o_{1:T})`` without
  the optimality factors: then the forward messages are the filter of a policy). The messages
  run over the product ``(s, m)`` in ``O(T S^2 M^2 A)``. The same numbers come out of Pyro's
  enumeration in :mod:`cai.pomdp.ppl`.

References:
    Rabiner (1989), "A tutorial on hidden Markov models" (forward-backward with scaling);
    Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference", §2;
    Toussaint & Storkey (2006), "Probabilistic inference for solving discrete and continuous
    state Markov decision processes" (controllers in the inference view of POMDPs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

import torch

from cai.mdp.checks import check_alpha
from cai.pomdp.model import POMDP, FiniteStateController

__all__ = ["BeliefFilter", "ControllerMessages", "filter_beliefs", "controller_messages", "check_sequence",
           "log_factor"]


@dataclass(frozen=True)
class BeliefFilter:
    """Result of :func:`filter_beliefs`.

    Attributes:
        beliefs: ``(n+1, S)``: ``b_t = p(s_t | a_{0:t-1}, o_{1:t})``, ``b_0`` the initial belief.
        step_log_likelihood: ``(n,)``: ``log p(o_{t+1} | a_{0:t}, o_{1:t})``.
        log_likelihood: 0-dim: ``log p(o_{1:n} | a_{0:n-1})`` (the sum of the steps).
    """

    beliefs: torch.Tensor
    step_log_likelihood: torch.Tensor
    log_likelihood: torch.Tensor


@dataclass(frozen=True)
class ControllerMessages:
    """Result of :func:`controller_messages` (posteriors given the observations and, with
    ``optimality=True``, the optimality variables).

    Attributes:
        log_evidence: 0-dim, ``log p(O, o_{1:T})`` (``log p(o_{1:T})`` without optimality).
        filtered: ``(T+1, S, M)``: forward messages normalised, ``p(s_t, m_t | o_{1:t}, O_{0:t-1})``.
        state_marginals: ``(T+1, S)``: ``p(s_t | o_{1:T}, O)``.
        memory_marginals: ``(T+1, M)``: ``p(m_t | o_{1:T}, O)``.
        action_marginals: ``(T, A)``: ``p(a_t | o_{1:T}, O)``.
    """

    log_evidence: torch.Tensor
    filtered: torch.Tensor
    state_marginals: torch.Tensor
    memory_marginals: torch.Tensor
    action_marginals: torch.Tensor


def check_sequence(name: str, x: Sequence[int], n: int, length: int, fn: str) -> Tuple[int, ...]:
    """``x`` as a tuple of ints in ``[0, n)`` of length ``length`` (``None``: any length)."""
    try:
        seq = tuple(int(v) for v in (x.tolist() if isinstance(x, torch.Tensor) else x))
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name}: expected a sequence of integers, got {type(x).__name__}") from None
    if length is not None and len(seq) != length:
        raise ValueError(f"{fn}: {name}: expected {length} entries, got {len(seq)}")
    bad = [v for v in seq if not 0 <= v < n]
    if bad:
        raise ValueError(f"{fn}: {name}: expected integers in [0, {n}), got {bad[0]}")
    return seq


def log_factor(pomdp: POMDP, t: int, alpha: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(K, c)`` with ``K[s, a, s'] = P(s'|s,a) exp((r_t - c) / alpha)``, ``c`` the largest finite reward of step ``t``."""
    mdp = pomdp.mdp
    P = mdp.dense_transitions()
    r = mdp.reward_at(t)
    if mdp.reward_layout != "sas":
        r = r.unsqueeze(-1)
    finite = r[torch.isfinite(r)]
    c = finite.max() if finite.numel() else torch.zeros((), dtype=r.dtype, device=r.device)
    return P * torch.exp((r - c) / alpha), c


def filter_beliefs(pomdp: POMDP, actions: Sequence[int], observations: Sequence[int]) -> BeliefFilter:
    """The belief filter (HMM forward pass) for a given action sequence.

    Args:
        pomdp: a :class:`~cai.pomdp.POMDP`.
        actions: ``a_0 .. a_{n-1}`` (any length ``n >= 0``; not limited by the horizon).
        observations: ``o_1 .. o_n``, one after each action.

    Returns:
        :class:`BeliefFilter` with ``beliefs (n+1, S)``.

    Raises:
        TypeError: ``pomdp`` is not a POMDP, or the sequences are not integers.
        ValueError: sequences of different lengths or out of range, or an observation sequence of
            probability 0 under the given actions (naming the step).
    """
    fn = "filter_beliefs"
    if not isinstance(pomdp, POMDP):
        raise TypeError(f"{fn}: pomdp: expected a cai.pomdp.POMDP, got {type(pomdp).__name__}")
    pomdp.check_unchanged(fn)
    acts = check_sequence("actions", actions, pomdp.n_actions, None, fn)
    obs = check_sequence("observations", observations, pomdp.n_observations, len(acts), fn)
    P, Z = pomdp.mdp.dense_transitions(), pomdp.observations
    b = pomdp.initial_belief
    beliefs, steps = [b], []
    for t, (a, o) in enumerate(zip(acts, obs)):
        joint = (b @ P[:, a, :]) * Z[:, a, o]
        p_o = joint.sum()
        if float(p_o) <= 0:
            raise ValueError(f"{fn}: observations: o_{t + 1} = {o} has probability 0 after the actions and "
                             f"observations before it")
        b = joint / p_o
        beliefs.append(b)
        steps.append(torch.log(p_o))
    step_ll = torch.stack(steps) if steps else torch.zeros(0, dtype=b.dtype, device=b.device)
    return BeliefFilter(torch.stack(beliefs), step_ll, step_ll.sum())


def controller_messages(pomdp: POMDP, controller: FiniteStateController, observations: Sequence[int],
                        alpha: float = 1.0, *, optimality: bool = True) -> ControllerMessages:
    """Forward-backward messages of a finite-state controller in the POMDP, given ``o_{1:T}``.

    Args:
        pomdp: a :class:`~cai.pomdp.POMDP` with horizon ``T``.
        controller: a :class:`~cai.pomdp.FiniteStateController` with the POMDP's ``A`` and ``O``.
        observations: ``o_1 .. o_T`` (``T`` integers).
        alpha: temperature > 0 of the optimality factors (a scalar).
        optimality: include the factors ``exp(r / alpha)``; ``False`` gives the plain filter and
            smoother of the controlled process and ``log p(o_{1:T})``.

    Returns:
        :class:`ControllerMessages`.

    Raises:
        TypeError: wrong argument types.
        ValueError: mismatched controller, bad observations, a non-scalar or non-positive
            ``alpha``, or observations of probability 0 under the controller.
    """
    fn = "controller_messages"
    if not isinstance(pomdp, POMDP):
        raise TypeError(f"{fn}: pomdp: expected a cai.pomdp.POMDP, got {type(pomdp).__name__}")
    if not isinstance(controller, FiniteStateController):
        raise TypeError(f"{fn}: controller: expected a cai.pomdp.FiniteStateController, got {type(controller).__name__}")
    pomdp.check_unchanged(fn)
    controller.check_for(pomdp, fn)
    mdp = pomdp.mdp
    T = pomdp.horizon
    obs = check_sequence("observations", observations, pomdp.n_observations, T, fn)
    a = check_alpha(alpha, mdp.dtype, mdp.device)
    if a.dim() != 0:
        raise ValueError(f"{fn}: alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
    dt, dev = mdp.dtype, mdp.device
    pi = controller.action_probs.to(dt, dev)
    eta = controller.memory_update.to(dt, dev)
    Z = pomdp.observations
    kernels, shift = [], torch.zeros((), dtype=dt, device=dev)
    for t in range(T):
        if optimality:
            K, c = log_factor(pomdp, t, a)
            shift = shift + c / a
        else:
            K = mdp.dense_transitions()
        kernels.append(K)
    if optimality:
        rT = mdp.terminal_rewards
        cT = rT.max()
        term = torch.exp((rT - cT) / a)
        shift = shift + cT / a
    else:
        term = torch.ones(pomdp.n_states, dtype=dt, device=dev)

    def step(t):
        # W[s, m, a, s', m'] = pi(a|m) K_t(s, a, s') Z(o|s', a) eta(m'|m, a, o)
        o = obs[t]
        return torch.einsum("ma,sap,pa,man->smapn", pi, kernels[t], Z[:, :, o], eta[:, :, o, :])

    W = [step(t) for t in range(T)]
    f = torch.outer(pomdp.initial_belief, controller.initial_memory.to(dt, dev))
    filtered, log_z = [f], shift.clone()
    for t in range(T):
        g = torch.einsum("sm,smapn->pn", f, W[t])
        c = g.sum()
        if float(c) <= 0:
            raise ValueError(f"{fn}: observations: o_{t + 1} = {obs[t]} has probability 0 under the controller "
                             f"given the observations before it")
        log_z = log_z + torch.log(c)
        f = g / c
        filtered.append(f)
    end = (f * term.unsqueeze(-1)).sum()
    if float(end) <= 0:
        raise ValueError(f"{fn}: observations: the sequence has probability 0 under the controller")
    log_z = log_z + torch.log(end)
    beta = term.unsqueeze(-1).expand_as(f)
    backs = [None] * (T + 1)
    backs[T] = beta / beta.sum()
    for t in range(T - 1, -1, -1):
        beta = torch.einsum("smapn,pn->sm", W[t], backs[t + 1])
        backs[t] = beta / beta.sum()
    post = torch.stack([filtered[t] * backs[t] for t in range(T + 1)])
    post = post / post.sum((-2, -1), keepdim=True)
    acts = torch.stack([torch.einsum("sm,smapn,pn->a", filtered[t], W[t], backs[t + 1]) for t in range(T)]) \
        if T else torch.zeros(0, pomdp.n_actions, dtype=dt, device=dev)
    acts = acts / acts.sum(-1, keepdim=True)
    if not math.isfinite(float(log_z)):
        raise ValueError(f"{fn}: the evidence is not finite (alpha={float(a):g} too small for the rewards?)")
    return ControllerMessages(log_z, torch.stack(filtered), post.sum(-1), post.sum(-2), acts)
