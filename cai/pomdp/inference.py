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

import numbers
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from cai.mdp.checks import check_alpha
from cai.pomdp.model import POMDP, FiniteStateController

__all__ = ["BeliefFilter", "ControllerMessages", "filter_beliefs", "controller_messages", "check_sequence",
           "check_controller_inputs",
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


def check_sequence(name: str, x: Sequence[int], n: int, length: Optional[int], fn: str) -> Tuple[int, ...]:
    """``x`` as a tuple of ints in ``[0, n)`` of length ``length`` (``None``: any length)."""
    try:
        items = list(x.tolist() if isinstance(x, torch.Tensor) else x)
    except TypeError:
        raise TypeError(f"{fn}: {name}: expected a sequence of integers, got {type(x).__name__}") from None
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
    if bad:
        raise TypeError(f"{fn}: {name}: expected a sequence of integers, got {bad[0]!r}")
    seq = tuple(int(v) for v in items)
    if length is not None and len(seq) != length:
        raise ValueError(f"{fn}: {name}: expected {length} entries, got {len(seq)}")
    bad = [v for v in seq if not 0 <= v < n]
    if bad:
        raise ValueError(f"{fn}: {name}: expected integers in [0, {n}), got {bad[0]}")
    return seq


def check_controller_inputs(pomdp: POMDP, controller: FiniteStateController, observations: Sequence[int],
                            alpha: float, fn: str) -> Tuple[Tuple[int, ...], torch.Tensor]:
    """The checks every controller inference shares (messages and the Pyro model alike).

    Returns:
        ``(observations, alpha)``: the observations ``o_1..o_T`` as a tuple of ints and ``alpha``
        as a 0-dim tensor.

    Raises:
        TypeError: ``pomdp`` or ``controller`` of the wrong type.
        ValueError: a changed model, a controller for another POMDP, bad observations, or a
            non-scalar or non-positive ``alpha``.
    """
    if not isinstance(pomdp, POMDP):
        raise TypeError(f"{fn}: pomdp: expected a cai.pomdp.POMDP, got {type(pomdp).__name__}")
    if not isinstance(controller, FiniteStateController):
        raise TypeError(f"{fn}: controller: expected a cai.pomdp.FiniteStateController, got {type(controller).__name__}")
    pomdp.check_unchanged(fn)
    controller.check_for(pomdp, fn)
    obs = check_sequence("observations", observations, pomdp.n_observations, pomdp.horizon, fn)
    a = check_alpha(alpha, pomdp.mdp.dtype, pomdp.mdp.device)
    if a.dim() != 0:
        raise ValueError(f"{fn}: alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
    return obs, a


def log_factor(pomdp: POMDP, t: int, alpha: torch.Tensor) -> torch.Tensor:
    """``r_t(s, a, s') / alpha`` as an ``(S, A, S')`` tensor (``(S, A, 1)`` for ``r(s, a)`` rewards)."""
    mdp = pomdp.mdp
    r = mdp.reward_at(t)
    if mdp.reward_layout != "sas":
        r = r.unsqueeze(-1)
    return r / alpha


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
    obs, a = check_controller_inputs(pomdp, controller, observations, alpha, fn)
    mdp = pomdp.mdp
    T = pomdp.horizon
    dt, dev = mdp.dtype, mdp.device
    # log space throughout: a small alpha sends exp(r / alpha) far below the smallest double
    log_pi = torch.log(controller.action_probs.to(dtype=dt, device=dev))
    log_eta = torch.log(controller.memory_update.to(dtype=dt, device=dev))
    log_Z = torch.log(pomdp.observations)
    log_P = torch.log(mdp.dense_transitions())
    term = mdp.terminal_rewards / a if optimality else torch.zeros(pomdp.n_states, dtype=dt, device=dev)

    def log_w(t):
        # log W[s, m, a, s', m'] = log pi(a|m) + log P(s'|s,a) [+ r_t / alpha] + log Z(o|s',a) + log eta(m'|m,a,o)
        o = obs[t]
        log_k = log_P + (log_factor(pomdp, t, a) if optimality else 0.0)          # (S, A, S')
        return (log_pi[None, :, :, None, None] + log_k[:, None, :, :, None]
                + log_Z[:, :, o].T[None, None, :, :, None] + log_eta[:, :, o, :][None, :, :, None, :])

    W = [log_w(t) for t in range(T)]
    f = torch.log(pomdp.initial_belief)[:, None] + torch.log(controller.initial_memory.to(dtype=dt, device=dev))[None]
    filtered, log_z = [f], torch.zeros((), dtype=dt, device=dev)
    for t in range(T):
        g = torch.logsumexp((f[:, :, None, None, None] + W[t]).flatten(0, 2), 0)
        c = torch.logsumexp(g.flatten(), 0)
        if not bool(torch.isfinite(c)):
            raise ValueError(f"{fn}: observations: o_{t + 1} = {obs[t]} has probability 0 under the controller "
                             f"given the observations before it")
        log_z = log_z + c
        f = g - c
        filtered.append(f)
    end = torch.logsumexp((f + term[:, None]).flatten(), 0)
    if not bool(torch.isfinite(end)):
        raise ValueError(f"{fn}: observations: the sequence has probability 0 under the controller")
    log_z = log_z + end
    backs = [None] * (T + 1)
    backs[T] = term[:, None].expand_as(f)
    for t in range(T - 1, -1, -1):
        beta = torch.logsumexp((W[t] + backs[t + 1][None, None, None]).flatten(2), -1)
        backs[t] = beta - torch.logsumexp(beta.flatten(), 0)
    post = torch.stack([filtered[t] + backs[t] for t in range(T + 1)])
    post = torch.exp(post - torch.logsumexp(post.flatten(1), -1)[:, None, None])
    if T:
        acts = torch.stack([torch.logsumexp((filtered[t][:, :, None, None, None] + W[t] + backs[t + 1][None, None, None])
                                            .permute(2, 0, 1, 3, 4).flatten(1), -1) for t in range(T)])
        acts = torch.exp(acts - torch.logsumexp(acts, -1, keepdim=True))
    else:
        acts = torch.zeros(0, pomdp.n_actions, dtype=dt, device=dev)
    filtered_p = torch.exp(torch.stack(filtered))
    return ControllerMessages(log_z, filtered_p, post.sum(-1), post.sum(-2), acts)
