r"""The POMDP's graphical model with a finite-state controller, as a Pyro program.

One site per random variable, in a ``pyro.markov`` chain so that enumeration sums over the
hidden states, memories and actions in ``O(T (S M)^2 A)``::

    s_0 ~ Categorical(b_0);  m_0 ~ Categorical(eta_0)
    a_t ~ Categorical(pi(. | m_t))
    s_{t+1} ~ Categorical(P(. | s_t, a_t))
    O_t : pyro.factor(r_t(s_t, a_t[, s_{t+1}]) / alpha)            (with optimality=True)
    o_{t+1} ~ Categorical(Z(. | s_{t+1}, a_t)),  observed
    m_{t+1} ~ Categorical(eta(. | m_t, a_t, o_{t+1}))
    O_T : pyro.factor(r_T(s_T) / alpha)

:func:`pyro_pomdp_log_evidence` is ``TraceEnum_ELBO`` with an empty guide (every latent site
enumerated): ``log p(O, o_{1:T})``; :func:`pyro_pomdp_marginals` uses
``TraceEnum_ELBO.compute_marginals``. Both agree with :func:`cai.pomdp.controller_messages`
(``tests/pomdp/test_inference.py``), as :mod:`cai.ppl.model` agrees with the MDP's messages.

References:
    Obermeyer et al. (2019), "Tensor Variable Elimination for Plated Factor Graphs".
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import TraceEnum_ELBO
from pyro.ops.indexing import Vindex

from cai.pomdp.inference import check_controller_inputs
from cai.pomdp.model import POMDP, FiniteStateController

__all__ = ["pomdp_model", "pyro_pomdp_log_evidence", "pyro_pomdp_marginals"]


def _empty_guide(*args, **kwargs):
    """No latent sites: the model's latents are all enumerated."""


def pomdp_model(pomdp: POMDP, controller: FiniteStateController, observations: Sequence[int], alpha: float = 1.0, *,
                optimality: bool = True) -> Callable[[], None]:
    """The Pyro model (a callable with no arguments) of the POMDP under ``controller`` given ``o_{1:T}``.

    Sites: ``s_0 .. s_T``, ``m_0 .. m_T``, ``a_0 .. a_{T-1}`` (enumerated), ``o_1 .. o_T``
    (observed), factors ``O_0 .. O_{T-1}``, ``O_T`` (when ``optimality``).

    Raises:
        TypeError, ValueError: as :func:`cai.pomdp.controller_messages`.
    """
    fn = "pomdp_model"
    obs, a = check_controller_inputs(pomdp, controller, observations, alpha, fn)
    mdp = pomdp.mdp
    T = pomdp.horizon
    dt = mdp.dtype
    # log-space parameters: torch's probs route clamps 0 to machine epsilon
    log_b0 = torch.log(pomdp.initial_belief)
    log_m0 = torch.log(controller.initial_memory.to(dt))
    log_pi = torch.log(controller.action_probs.to(dt))
    log_eta = torch.log(controller.memory_update.to(dt))
    log_P = torch.log(mdp.dense_transitions())
    log_Z = torch.log(pomdp.observations)
    obs_t = [torch.tensor(o) for o in obs]
    enum = {"enumerate": "parallel"}

    def model():
        s = pyro.sample("s_0", dist.Categorical(logits=log_b0), infer=enum)
        m = pyro.sample("m_0", dist.Categorical(logits=log_m0), infer=enum)
        for t in pyro.markov(range(T)):
            act = pyro.sample(f"a_{t}", dist.Categorical(logits=Vindex(log_pi)[m]), infer=enum)
            s_next = pyro.sample(f"s_{t + 1}", dist.Categorical(logits=Vindex(log_P)[s, act]), infer=enum)
            if optimality:
                r = mdp.reward_at(t)
                r_t = Vindex(r)[s, act, s_next] if mdp.reward_layout == "sas" else Vindex(r)[s, act]
                pyro.factor(f"O_{t}", r_t / a)
            pyro.sample(f"o_{t + 1}", dist.Categorical(logits=Vindex(log_Z)[s_next, act]), obs=obs_t[t])
            m_next = pyro.sample(f"m_{t + 1}", dist.Categorical(logits=Vindex(log_eta)[m, act, obs_t[t]]), infer=enum)
            if optimality and t == T - 1:
                pyro.factor("O_T", Vindex(mdp.terminal_rewards)[s_next] / a)
            s, m = s_next, m_next

    return model


def pyro_pomdp_log_evidence(pomdp: POMDP, controller: FiniteStateController, observations: Sequence[int],
                            alpha: float = 1.0, *, optimality: bool = True) -> torch.Tensor:
    """``log p(O, o_{1:T})`` (``log p(o_{1:T})`` without optimality) by Pyro's exact enumeration.

    Returns:
        0-dim tensor of the POMDP's dtype; equal to ``controller_messages(...).log_evidence``.
    """
    model = pomdp_model(pomdp, controller, observations, alpha, optimality=optimality)
    loss = TraceEnum_ELBO(max_plate_nesting=0).loss(model, _empty_guide)
    return torch.tensor(-loss, dtype=pomdp.mdp.dtype)


def pyro_pomdp_marginals(pomdp: POMDP, controller: FiniteStateController, observations: Sequence[int],
                         alpha: float = 1.0, *, optimality: bool = True) -> Dict[str, torch.Tensor]:
    """Posterior marginals of every latent site by ``TraceEnum_ELBO.compute_marginals``.

    Returns:
        ``{"states": (T+1, S), "memory": (T+1, M), "actions": (T, A)}``; equal to the
        marginals of :func:`cai.pomdp.controller_messages`.
    """
    model = pomdp_model(pomdp, controller, observations, alpha, optimality=optimality)
    marg = TraceEnum_ELBO(max_plate_nesting=0).compute_marginals(model, _empty_guide)
    T = pomdp.horizon

    def probs(name, n):
        d = marg[name]
        return torch.exp(d.logits - torch.logsumexp(d.logits, -1, keepdim=True)).reshape(n)

    S, A, M = pomdp.n_states, pomdp.n_actions, controller.n_memory
    return {"states": torch.stack([probs(f"s_{t}", S) for t in range(T + 1)]),
            "memory": torch.stack([probs(f"m_{t}", M) for t in range(T + 1)]),
            "actions": torch.stack([probs(f"a_{t}", A) for t in range(T)])}
