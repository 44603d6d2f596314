r"""The control-as-inference graphical model as a Pyro probabilistic program.

:class:`TrajectoryModel` writes ``p(tau, O_{0:T-1})`` for a finite-horizon
:class:`~cai.TabularMDP` literally, one site per random variable, inside a ``pyro.plate`` over
``n`` independent trajectories and a ``pyro.markov`` loop over time (so that enumeration costs
``O(T S^2 A)``, not ``O((S A)^T)``)::

    s_0      ~ Categorical(p0)
    a_t      ~ Categorical(rho(. | s_t))                       # the action prior
    s_{t+1}  ~ Categorical(P(. | s_t, a_t))                    # the dynamics
    O_t      :  pyro.factor(r_t(s_t, a_t) / alpha)             # log p(O_t = 1 | s_t, a_t)
    O_T      :  pyro.factor(r_T(s_T) / alpha)                  # terminal reward

Two details make the model's evidence *equal* to :func:`cai.backward_messages`' (docs/design.md §2.6):

* **The counting action prior** (``action_prior=None``, ``rho(a|s) = 1``) is not a probability
  distribution. It is written as the uniform distribution ``1/A`` plus ``pyro.factor(log A)``
  at every step: ``sum_a 1 * f(a) = sum_a (1/A) * A * f(a)``. The factor is a constant, so
  posteriors are those of the uniform prior, while the evidence is that of the counting measure
  (the entropy-regularised objective). A normalised ``(S, A)`` prior is used as it is.
* **A discount is death.** With ``gamma < 1`` a binary site ``alive_{t+1}`` (a two-way
  categorical, ``P(alive_{t+1} = 1 | alive_t) = gamma * alive_t``) follows each transition;
  the reward of step ``t`` is earned while ``alive_t`` (death comes *after* the reward, as in
  :func:`cai.ops.backup.q_backup`), and a dead trajectory earns
  nothing and pays no ``log A``. After death the state and action sites keep running with the
  (normalised) dynamics and prior, which integrate to one and so leave the evidence unchanged;
  the exact recursion is then ``Q = r + alpha log(gamma sum_s' P exp(V/alpha) + 1 - gamma)``.

With ``r(s, a, s')`` rewards the factor ``O_t`` sits after ``s_{t+1}`` and reads
``r(s_t, a_t, s_{t+1}) / alpha``; time-varying rewards ``r_t`` are read at step ``t``.

Exact inference through Pyro:

* :func:`pyro_log_evidence` — ``log p(O)`` by enumerating every latent site
  (``TraceEnum_ELBO`` with an empty guide);
* :func:`pyro_sample_posterior` — trajectories from ``p(tau | O)`` by ``infer_discrete``.

Both agree with :func:`cai.backward_messages` / :func:`cai.forward_messages` /
:func:`cai.sample_posterior` (see ``tests/ppl/test_model.py``).

References:
    Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference: Tutorial and
    Review", §2; Obermeyer et al. (2019), "Tensor Variable Elimination for Plated Factor Graphs"
    (the enumeration behind ``TraceEnum_ELBO`` and ``infer_discrete``).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO, config_enumerate, infer_discrete
from pyro.ops.indexing import Vindex

from cai.exact.sampling import Trajectories
from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP, check_model
from cai.ops.backup import EXPECTATION, q_backup
from cai.typing import Alpha, ArrayLike

__all__ = ["TrajectoryModel", "pyro_log_evidence", "pyro_sample_posterior", "MAX_PLATE_NESTING"]

#: The model's only plate is the trajectory plate at ``dim=-1``.
MAX_PLATE_NESTING = 1


def _empty_guide(*args, **kwargs):
    """A guide with no latent sites: every latent of the model is enumerated."""


class TrajectoryModel:
    r"""``p(tau, O_{0:T-1})`` of a finite-horizon MDP as a Pyro model.

    Calling the instance runs the model: ``model(n)`` samples (or, under enumeration, sums
    over) ``n`` trajectories in a ``pyro.plate("trajectories", n, dim=-1)``. Sites are named
    ``s_0 .. s_T`` (states), ``a_0 .. a_{T-1}`` (actions), ``alive_1 .. alive_T`` (only when
    ``gamma < 1``; ``alive_0 = 1``), and the factors ``O_0 .. O_{T-1}``, ``O_T``. Latent sites
    carry ``infer={"enumerate": "parallel"}``.

    Guides that keep the dynamics and swap the action distribution (the variational family of
    docs/design.md §2.2) reuse the same code path through :meth:`trajectory`.

    Args:
        mdp: a finite-horizon, unbatched :class:`~cai.TabularMDP` (dense or sparse; sparse
            transitions are densified, ``S * A * S`` numbers).
        alpha: temperature > 0 (a scalar).
        action_prior: ``None`` for the counting measure (see the module docstring for its
            representation) or a normalised ``(S, A)`` / ``(A,)`` prior.

    Attributes:
        mdp: the model's :class:`~cai.TabularMDP`.
        alpha: the temperature, a 0-dim tensor.
        log_prior: ``(S, A)`` log action prior, or ``None`` for the counting measure.
        log_action: ``(S, A)`` logits of the *normalised* action distribution the model samples
            from (``log rho`` or ``-log A``).
        log_count: ``log A`` for the counting measure, else 0: the per-step factor.
        transitions: dense ``(S, A, S)``.
        allowed: ``(T, S, A)`` bool: actions with finite expected reward and positive prior
            (the only ones a policy with a finite ELBO may take).

    Raises:
        ValueError: for a stationary MDP, a batched MDP or alpha, or invalid inputs.
    """

    def __init__(self, mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None) -> None:
        a, log_prior = check_model(mdp, alpha, action_prior, "TrajectoryModel")
        if mdp.horizon is None:
            raise ValueError("TrajectoryModel: mdp: expected a finite horizon, got horizon=None")
        if a.dim() != 0:
            raise ValueError(f"TrajectoryModel: alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
        if len(mdp.batch_shape) or mdp.terminal_rewards.dim() != 1:
            raise ValueError(
                f"TrajectoryModel: mdp: expected unbatched rewards, got batch shape {tuple(mdp.batch_shape)}"
            )
        S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
        self.mdp = mdp
        self.alpha = a
        self.log_prior = log_prior
        self.counting = log_prior is None
        self.log_action = torch.full((S, A), -math.log(A), dtype=mdp.dtype, device=mdp.device) \
            if log_prior is None else log_prior
        self.log_count = math.log(A) if log_prior is None else 0.0
        self.transitions = mdp.dense_transitions()
        # Log-space parameters throughout: torch's ``probs`` route clamps 0 to machine epsilon,
        # which puts ~1e-16 mass on impossible transitions and shows up in the evidence at 1e-9.
        self.log_transitions = torch.log(self.transitions)
        self.log_initial = torch.log(mdp.initial)
        g = mdp.gamma
        lg = torch.tensor([math.log1p(-g) if g < 1 else -math.inf, math.log(g)], dtype=mdp.dtype, device=mdp.device)
        self.log_survival = lg                                             # alive_1 | alive_0 = 1
        self.log_survival_from = torch.stack([torch.tensor([0.0, -math.inf], dtype=mdp.dtype, device=mdp.device),
                                              lg])                         # alive_{t+1} | alive_t
        # expected immediate reward (r, or sum_s' P r for r(s,a,s')); -inf marks a forbidden action
        zero = torch.zeros(S, dtype=mdp.dtype, device=mdp.device)
        self.expected_rewards = torch.stack([q_backup(mdp, t, zero, a, EXPECTATION) for t in range(T)])
        allowed = ~torch.isneginf(self.expected_rewards)
        if log_prior is not None:
            allowed = allowed & ~torch.isneginf(log_prior)
        self.allowed = allowed

    # ------------------------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        return self.mdp.horizon

    def __repr__(self) -> str:
        prior = "counting" if self.counting else "normalised"
        return f"TrajectoryModel({self.mdp!r}, alpha={self.alpha.item():g}, action_prior={prior})"

    def __call__(self, n: int = 1):
        """Run the model over ``n`` trajectories; returns the trajectory (see :meth:`trajectory`)."""
        return self.trajectory(n)

    def trajectory(self, n: int = 1, log_policy: Optional[torch.Tensor] = None, observe: bool = True,
                   enumerate: bool = True) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[Optional[torch.Tensor]]]:
        r"""The generative process, shared by the model and by policy guides.

        Args:
            n: number of trajectories (the plate size).
            log_policy: ``(T, S, A)`` log action probabilities to use *instead of* the prior
                while alive (a guide); ``None`` samples actions from the model's prior.
            observe: emit the optimality factors (the model); ``False`` for a guide.
            enumerate: mark latent sites for parallel enumeration (otherwise a guide's sites
                carry a decaying-average baseline for ``TraceGraph_ELBO``). For a guide
                (``observe=False``) this is guide-side enumeration: the loop then runs without
                ``pyro.markov`` because the guide's enumerated values must all stay alive for
                the model's factors (cost ``O((S A)^T)``).

        Returns:
            ``(states, actions, alive)``: lists of the sampled site values (``alive`` holds
            ``None`` for ``alive_0`` and every step when ``gamma == 1``).
        """
        mdp = self.mdp
        T, gamma = mdp.horizon, mdp.gamma
        if enumerate:
            infer = {"enumerate": "parallel"}
        elif not observe:
            # a sampled guide: score-function gradients (TraceGraph_ELBO) with a baseline
            infer = {"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}}
        else:
            infer = {}
        alpha = self.alpha
        log_P = self.log_transitions
        states, actions, alives = [], [], [None]
        with pyro.plate("trajectories", n, dim=-1):
            s = pyro.sample("s_0", dist.Categorical(logits=self.log_initial), infer=infer)
            states.append(s)
            alive = None                                       # alive_0 = 1 (a constant)
            # a guide that enumerates its own sites must keep every dimension (no recycling)
            steps = range(T) if (enumerate and not observe) else pyro.markov(range(T))
            for t in steps:
                logits = self.log_action if log_policy is None else log_policy[t]
                a_logits = Vindex(logits)[s]
                if log_policy is not None and alive is not None:
                    # a dead trajectory acts from the prior in the model and the guide alike
                    a_logits = torch.where(alive.bool().unsqueeze(-1), a_logits, Vindex(self.log_action)[s])
                a = pyro.sample(f"a_{t}", dist.Categorical(logits=a_logits), infer=infer)
                s_next = pyro.sample(f"s_{t + 1}", dist.Categorical(logits=Vindex(log_P)[s, a]), infer=infer)
                if observe:
                    r = mdp.reward_at(t)
                    r_t = Vindex(r)[s, a, s_next] if mdp.reward_layout == "sas" else Vindex(r)[s, a]
                    log_o = r_t / alpha + self.log_count
                    if alive is not None:
                        log_o = torch.where(alive.bool(), log_o, torch.zeros((), dtype=log_o.dtype))
                    pyro.factor(f"O_{t}", log_o)
                if gamma < 1:
                    live = self.log_survival if alive is None else Vindex(self.log_survival_from)[alive]
                    alive = pyro.sample(f"alive_{t + 1}", dist.Categorical(logits=live), infer=infer)
                if observe and t == T - 1:
                    # inside the last markov step, where s_T's enumeration dim is still live
                    log_o = Vindex(mdp.terminal_rewards)[s_next] / alpha
                    if alive is not None:
                        log_o = torch.where(alive.bool(), log_o, torch.zeros((), dtype=log_o.dtype))
                    pyro.factor("O_T", log_o)
                s = s_next
                actions.append(a)
                states.append(s)
                alives.append(alive)
        return states, actions, alives


def _as_model(model, alpha, action_prior) -> TrajectoryModel:
    if isinstance(model, TrajectoryModel):
        if alpha is not None or action_prior is not None:
            raise ValueError("alpha/action_prior: give them with an MDP, not with a TrajectoryModel")
        return model
    return TrajectoryModel(model, 1.0 if alpha is None else alpha, action_prior)


def pyro_log_evidence(model: Union[TrajectoryModel, TabularMDP], alpha: Optional[Alpha] = None, action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""``log p(O_{0:T-1})`` by Pyro's exact enumeration of every latent site.

    Runs ``TraceEnum_ELBO`` with an empty guide on one trajectory: the ELBO of a guide with no
    latents is the log marginal likelihood of the observed factors, computed by tensor variable
    elimination along the ``pyro.markov`` chain (``O(T S^2 A)``).

    Args:
        model: a :class:`TrajectoryModel`, or a :class:`~cai.TabularMDP` (then ``alpha`` and
            ``action_prior`` build the model).

    Returns:
        0-dim tensor, differentiable in the MDP's rewards; equal to
        ``cai.backward_messages(mdp, alpha, action_prior).log_evidence``.
    """
    m = _as_model(model, alpha, action_prior)
    elbo = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
    mdp = m.mdp
    if mdp.rewards.requires_grad or mdp.terminal_rewards.requires_grad or m.alpha.requires_grad:
        return -elbo.differentiable_loss(m, _empty_guide, 1)
    return torch.tensor(-elbo.loss(m, _empty_guide, 1), dtype=mdp.dtype, device=mdp.device)


def pyro_sample_posterior(model: Union[TrajectoryModel, TabularMDP], n: int, alpha: Optional[Alpha] = None,
                          action_prior: Optional[ArrayLike] = None, *, seed: Optional[int] = None) -> Trajectories:
    r"""Sample ``n`` trajectories from the exact posterior ``p(tau | O)`` with ``infer_discrete``.

    ``infer_discrete`` runs the forward-filter backward-sample algorithm on the enumerated
    model (temperature 1), vectorised over the trajectory plate.

    Args:
        model: a :class:`TrajectoryModel` or a :class:`~cai.TabularMDP` (with ``alpha``,
            ``action_prior``).
        n: number of trajectories.
        seed: if given, sampling runs under ``torch.random.fork_rng`` seeded with it (the global
            RNG is left untouched); otherwise the global torch RNG is used.

    Returns:
        :class:`~cai.Trajectories` with ``states (n, T+1)`` and ``actions (n, T)``; ``-1`` after
        death (``gamma < 1``), as :func:`cai.sample_posterior`.
    """
    m = _as_model(model, alpha, action_prior)
    n = check_positive_int("n", n, "a positive integer number of trajectories")

    def run():
        sampler = infer_discrete(config_enumerate(m.trajectory, "parallel"),
                                 first_available_dim=-1 - MAX_PLATE_NESTING, temperature=1)
        tr = poutine.trace(sampler).get_trace(n)
        T = m.horizon
        states = torch.stack([tr.nodes[f"s_{t}"]["value"] for t in range(T + 1)], -1).long()
        actions = torch.stack([tr.nodes[f"a_{t}"]["value"] for t in range(T)], -1).long()
        if m.mdp.gamma < 1:
            alive = torch.stack([torch.ones(n, dtype=torch.bool)]
                                + [tr.nodes[f"alive_{t}"]["value"].bool() for t in range(1, T + 1)], -1)
            states = torch.where(alive, states, torch.full_like(states, -1))
            actions = torch.where(alive[:, :-1], actions, torch.full_like(actions, -1))
        return Trajectories(states, actions)

    if seed is None:
        return run()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return run()
