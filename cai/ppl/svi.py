r"""Variational trajectory inference: learn the policy, keep the dynamics.

The variational family of control as inference (docs/design.md §2.2) is

    q(tau) = p0(s_0) prod_t q_t(a_t | s_t) P(s_{t+1} | s_t, a_t)

so a guide for :class:`~cai.ppl.model.TrajectoryModel` is the model's own generative
process (:meth:`TrajectoryModel.trajectory`) with the action distribution replaced by a learned
policy and the optimality factors dropped. Two guides:

* :class:`TabularPolicyGuide` — free time-indexed logits ``(T, S, A)``;
* :class:`AmortizedPolicyGuide` — a small torch network from state features (one-hot by
  default) and, optionally, a one-hot encoding of ``t`` to action logits.

Three estimators of the ELBO (all maximised by the soft value iteration policy, where the ELBO
equals ``cai.soft_value_iteration(...).max_elbo``):

* ``"exact"`` (default) — enumerate the guide's own trajectory distribution exactly, forward in
  time (:func:`guide_elbo`, on the state marginals of :func:`cai.policy_marginals`): ``d_0 = p0``, ``d_{t+1}(s') = gamma sum_{s,a} d_t(s) q_t(a|s)
  P(s'|s,a)`` and ``ELBO = (1/alpha) [sum_t sum_s d_t(s) sum_a q_t(a|s) (r_t(s,a) - alpha log
  (q_t(a|s) / rho(a|s))) + sum_s d_T(s) r_T(s)]``. Linear in ``T``, zero variance, and it is the
  forward (occupancy) form of the closed-form :func:`cai.elbo`, which evaluates the same
  quantity backward; the tests hold the two, and Pyro's guide-side enumeration, equal.
* ``"enum"`` — Pyro's ``TraceEnum_ELBO`` with every guide site enumerated in parallel. Exact,
  but the guide's sequential sites cannot share enumeration dimensions, so the cost is
  ``O((S A)^T)``: tiny problems only (the lottery, unit tests).
* ``"sample"`` — Pyro's ``TraceGraph_ELBO`` on ``num_particles`` trajectories drawn in one
  vectorised plate (score-function gradients, Rao-Blackwellised along the dependency graph,
  with a decaying-average baseline per site).

:func:`fit_policy_svi` runs ``pyro.infer.SVI`` with ``pyro.optim.Adam`` on any of them;
:func:`fit_policy_closed_form` is the deterministic reference: gradient ascent on the
closed-form ELBO :func:`cai.elbo` (the core's backward policy evaluation).

References:
    Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference: Tutorial and
    Review", §2.4 (the variational family), §3 (soft optimality).
    Schulman et al. (2015), "Gradient Estimation Using Stochastic Computation Graphs" (the
    estimator behind ``TraceGraph_ELBO``).
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple, Union

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import ELBO, SVI, TraceEnum_ELBO, TraceGraph_ELBO
from tqdm.auto import tqdm

from cai.dp.soft_vi import elbo
from cai.dp.visitation import policy_marginals
from cai.mdp.checks import as_tensor, check_policy, check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.ops.backup import policy_expectation
from cai.ppl.model import MAX_PLATE_NESTING, TrajectoryModel
from cai.typing import Alpha, ArrayLike

__all__ = [
    "TabularPolicyGuide",
    "AmortizedPolicyGuide",
    "PolicyFit",
    "ExactPolicyELBO",
    "guide_elbo",
    "closed_form_elbo",
    "state_marginals",
    "elbo_samples",
    "fit_policy_svi",
    "fit_policy_closed_form",
    "ENUM_MAX_SIZE",
]

#: Largest number of enumerated joint guide configurations ``S (S A c)^T`` (``c = 2`` with a
#: discount) that ``estimator="enum"`` accepts.
ENUM_MAX_SIZE = 2_000_000


# ---------------------------------------------------------------------------------------------
# guides

def _masked_log_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over actions with disallowed actions at exactly ``-inf`` (zero gradient)."""
    return torch.log_softmax(logits.masked_fill(~allowed, -math.inf), -1)


class TabularPolicyGuide(torch.nn.Module):
    r"""Guide with free, time-indexed policy logits: ``q_t(a|s) = softmax(theta[t, s])``.

    Calling it runs the model's generative process with ``q`` in place of the action prior
    and no optimality factors (the dynamics are kept). It is an ``nn.Module``; the logits are
    registered in Pyro's parameter store through ``pyro.module`` and updated in place, so the
    guide keeps what it learned after fitting.

    Args:
        model: the :class:`~cai.ppl.model.TrajectoryModel` it approximates.
        init: optional initial policy ``(T, S, A)`` (or stationary ``(S, A)``); default uniform
            over the allowed actions.
        name: the ``pyro.module`` name.

    Attributes:
        logits: ``(T, S, A)`` parameter; disallowed actions (``model.allowed``) are masked.
    """

    def __init__(self, model: TrajectoryModel, init: Optional[ArrayLike] = None, name: str = "tabular_policy") -> None:
        super().__init__()
        if not isinstance(model, TrajectoryModel):
            raise TypeError(f"model: expected a TrajectoryModel, got {type(model).__name__}")
        mdp = model.mdp
        T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
        if init is None:
            theta = torch.zeros(T, S, A, dtype=mdp.dtype, device=mdp.device)
        else:
            p = as_tensor("init", init, mdp.dtype, mdp.device)
            p = check_policy(p, (S, A) if p.dim() == 2 else (T, S, A), mdp.dtype, mdp.device, "init")
            theta = torch.log(p.expand(T, S, A)).clamp_min(-1e3).clone()  # finite logits
        self.model = model
        self.name = name
        self.logits = torch.nn.Parameter(theta)

    def log_policy(self) -> torch.Tensor:
        """``log q_t(a|s)``, ``(T, S, A)`` (``-inf`` at disallowed actions)."""
        pyro.module(self.name, self)
        return _masked_log_softmax(self.logits, self.model.allowed)

    def policy(self) -> torch.Tensor:
        """``q_t(a|s)``, ``(T, S, A)``, detached."""
        return torch.exp(self.log_policy()).detach()

    def forward(self, n: int = 1, enumerate: bool = False
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[Optional[torch.Tensor]]]:
        """The Pyro guide: ``n`` trajectories from ``q`` (sites as in the model)."""
        return self.model.trajectory(n, log_policy=self.log_policy(), observe=False, enumerate=enumerate)


class AmortizedPolicyGuide(torch.nn.Module):
    r"""Guide with a policy network: ``q_t(a|s) = softmax(f_theta(phi(s), e_t))``.

    ``f_theta`` is a one-hidden-layer MLP (``tanh``); ``phi(s)`` are state features (one-hot
    by default); ``e_t`` is a one-hot encoding of the decision index when
    ``time_conditioned`` (otherwise the policy is stationary). The output layer starts at
    zero, so the initial policy is uniform over allowed actions, like the tabular guide's.

    Args:
        model: the :class:`~cai.ppl.model.TrajectoryModel`.
        features: ``(S, F)`` state features; default the identity (one-hot).
        hidden: hidden width.
        time_conditioned: feed ``e_t`` to the network (a time-varying policy).
        name: the ``pyro.module`` name.
    """

    def __init__(self, model: TrajectoryModel, features: Optional[ArrayLike] = None, hidden: int = 64, time_conditioned: bool = True,
                 name: str = "amortized_policy") -> None:
        super().__init__()
        if not isinstance(model, TrajectoryModel):
            raise TypeError(f"model: expected a TrajectoryModel, got {type(model).__name__}")
        check_positive_int("hidden", hidden, "a positive integer width")
        mdp = model.mdp
        T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
        dt = mdp.dtype
        if features is None:
            phi = torch.eye(S, dtype=dt, device=mdp.device)
        else:
            phi = as_tensor("features", features, dt, mdp.device)
            if phi.dim() != 2 or phi.shape[0] != S:
                raise ValueError(f"features: expected shape (S, F) with S={S}, got {tuple(phi.shape)}")
        if time_conditioned:
            e = torch.eye(T, dtype=dt, device=mdp.device)
            x = torch.cat([phi.expand(T, S, -1), e.unsqueeze(1).expand(T, S, T)], -1)   # (T, S, F+T)
        else:
            x = phi                                                                    # (S, F)
        self.model = model
        self.name = name
        self.time_conditioned = time_conditioned
        self.register_buffer("inputs", x)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[-1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, A),
        ).to(dtype=dt, device=mdp.device)
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def log_policy(self) -> torch.Tensor:
        """``log q_t(a|s)``, ``(T, S, A)``."""
        pyro.module(self.name, self)
        logits = self.net(self.inputs)
        T = self.model.horizon
        if not self.time_conditioned:
            logits = logits.expand(T, *logits.shape)
        return _masked_log_softmax(logits, self.model.allowed)

    def policy(self) -> torch.Tensor:
        """``q_t(a|s)``, ``(T, S, A)``, detached."""
        return torch.exp(self.log_policy()).detach()

    def forward(self, n: int = 1, enumerate: bool = False
                ) -> Tuple[List[torch.Tensor], List[torch.Tensor], List[Optional[torch.Tensor]]]:
        """The Pyro guide: ``n`` trajectories from ``q``."""
        return self.model.trajectory(n, log_policy=self.log_policy(), observe=False, enumerate=enumerate)


# ---------------------------------------------------------------------------------------------
# exact ELBOs

def _forward_elbo(model: TrajectoryModel, log_policy: torch.Tensor) -> torch.Tensor:
    """The ELBO of ``q`` summed forward over its alive-state marginals (:func:`cai.policy_marginals`)."""
    mdp = model.mdp
    d = policy_marginals(mdp, torch.exp(log_policy)).state                                 # (T+1, S)
    total = torch.zeros((), dtype=mdp.dtype, device=mdp.device)
    for t in range(mdp.horizon):
        g = policy_expectation(model.expected_rewards[t], log_policy[t], model.alpha, model.log_prior)  # (S,)
        total = total + torch.where(d[t] > 0, d[t] * g, torch.zeros_like(g)).sum()
    total = total + (d[-1] * mdp.terminal_rewards).sum()
    return total / model.alpha


def _closed_form(model: TrajectoryModel, log_policy: torch.Tensor) -> torch.Tensor:
    """:func:`cai.elbo` of ``exp(log_policy)`` under the model's MDP, temperature and prior: 0-dim."""
    prior = None if model.log_prior is None else torch.exp(model.log_prior)
    return elbo(model.mdp, alpha=model.alpha, action_prior=prior, log_policy=log_policy)


def _model_and_log_policy(model, policy, alpha, action_prior) -> Tuple[TrajectoryModel, torch.Tensor]:
    if not isinstance(model, TrajectoryModel):
        model = TrajectoryModel(model, 1.0 if alpha is None else alpha, action_prior)
    elif alpha is not None or action_prior is not None:
        raise ValueError("alpha/action_prior: give them with an MDP, not with a TrajectoryModel")
    mdp = model.mdp
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    if isinstance(policy, torch.nn.Module) and hasattr(policy, "log_policy"):
        return model, policy.log_policy()
    p = as_tensor("policy", policy, mdp.dtype, mdp.device)
    p = check_policy(p, (S, A) if p.dim() == 2 else (T, S, A), mdp.dtype, mdp.device)
    return model, torch.log(p.expand(T, S, A))


def guide_elbo(model: Union[TrajectoryModel, TabularMDP], policy: Union[ArrayLike, torch.nn.Module],
               alpha: Optional[Alpha] = None, action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""The ELBO of a guide's policy as Pyro's SVI sees it (:class:`ExactPolicyELBO`): the
    forward, occupancy form of :func:`cai.elbo`, to which it is tested equal.

    ::

        d_t = cai.policy_marginals(mdp, q).state[t]    (d_0 = p0, d_{t+1} = gamma sum d_t q_t P)
        ELBO = (1/alpha) [ sum_t sum_s d_t(s) sum_a q_t(a|s) (rbar_t(s,a) - alpha log(q_t/rho))
                           + sum_s d_T(s) r_T(s) ]

    with ``rbar = r`` (or ``sum_s' P r`` for ``r(s,a,s')``). ``O(T S A)`` per step beyond the
    transition product; differentiable in the policy (or the guide's parameters).

    Args:
        model: a :class:`~cai.ppl.model.TrajectoryModel`, or a
            :class:`~cai.TabularMDP` with ``alpha`` and ``action_prior``.
        policy: ``(T, S, A)`` or ``(S, A)`` policy, or a guide (its ``log_policy()`` is used).
        alpha, action_prior: with an MDP only (as for :func:`cai.elbo`).

    Returns:
        0-dim tensor; equal to ``cai.elbo(mdp, policy, alpha, action_prior)``.

    Raises:
        ValueError: for ``alpha``/``action_prior`` given with a model, or an invalid policy.
    """
    m, log_pi = _model_and_log_policy(model, policy, alpha, action_prior)
    return _forward_elbo(m, log_pi)


def state_marginals(model: Union[TrajectoryModel, TabularMDP], policy: Union[ArrayLike, torch.nn.Module],
                    alpha: Optional[Alpha] = None, action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""Deprecated (0.2; removed in 0.3): ``cai.policy_marginals(mdp, policy).state``.

    ``q(s_t = s, alive)`` under a policy and the true dynamics, ``(T+1, S)``, detached.
    """
    warnings.warn("cai.ppl.svi.state_marginals is deprecated: use cai.policy_marginals(mdp, policy).state",
                  DeprecationWarning, stacklevel=2)
    m, log_pi = _model_and_log_policy(model, policy, alpha, action_prior)
    return policy_marginals(m.mdp, torch.exp(log_pi.detach())).state


def closed_form_elbo(model: TrajectoryModel, log_policy: torch.Tensor) -> torch.Tensor:
    r"""Deprecated (0.2; removed in 0.3): ``cai.elbo(model.mdp, alpha=model.alpha, action_prior=...,
    log_policy=log_policy)``, the one closed-form ELBO.

    Args:
        model: a :class:`~cai.ppl.model.TrajectoryModel`.
        log_policy: ``(T, S, A)``.

    Returns:
        0-dim tensor.
    """
    warnings.warn("cai.ppl.svi.closed_form_elbo is deprecated: use cai.elbo(mdp, alpha=..., action_prior=..., "
                  "log_policy=...)", DeprecationWarning, stacklevel=2)
    return _closed_form(model, log_policy)


class ExactPolicyELBO(ELBO):
    """A Pyro ``ELBO`` whose value is :func:`guide_elbo` of the guide's policy (zero variance).

    The guide must expose ``log_policy()`` (:class:`TabularPolicyGuide`,
    :class:`AmortizedPolicyGuide`); the model must be a ``TrajectoryModel``. Use it with
    ``pyro.infer.SVI`` like any other ELBO.
    """

    def _get_trace(self, model, guide, args, kwargs):  # pragma: no cover - no traces are drawn
        raise NotImplementedError("ExactPolicyELBO enumerates the guide exactly; it draws no traces")

    def differentiable_loss(self, model: TrajectoryModel, guide: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not isinstance(model, TrajectoryModel) or not hasattr(guide, "log_policy"):
            raise TypeError("ExactPolicyELBO: expected a TrajectoryModel and a guide with log_policy()")
        return -_forward_elbo(model, guide.log_policy())

    def loss(self, model: TrajectoryModel, guide: torch.nn.Module, *args: Any, **kwargs: Any) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model: TrajectoryModel, guide: torch.nn.Module, *args: Any, **kwargs: Any) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()


def elbo_samples(model: TrajectoryModel, guide: Callable[..., Any], n: int) -> torch.Tensor:
    r"""Per-trajectory Monte Carlo terms ``log p(tau, O) - log q(tau)``, ``tau ~ q``: ``(n,)``.

    Drawn in one vectorised plate by tracing the guide and replaying the model on it (the
    terms Pyro's ``Trace_ELBO`` averages). Their mean estimates the ELBO, their standard
    deviation over ``sqrt(n)`` its standard error. Uses the global torch RNG.
    """
    guide_tr = poutine.trace(guide).get_trace(n)
    model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(n)
    total = 0.0
    for tr, sign in ((model_tr, 1.0), (guide_tr, -1.0)):
        tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample":
                total = total + sign * site["log_prob"].expand(n)
    return total.detach()


# ---------------------------------------------------------------------------------------------
# fitting

@dataclass(frozen=True)
class PolicyFit:
    """The result of :func:`fit_policy_svi` / :func:`fit_policy_closed_form`.

    Attributes:
        policy: ``(T, S, A)`` the fitted ``q_t(a|s)``.
        elbo: its exact ELBO (closed form; for every estimator).
        elbo_trace: ``(steps,)`` the objective at each step (the estimator's value: exact for
            ``"exact"``/``"enum"``/closed form, a Monte Carlo estimate for ``"sample"``).
        times: ``(steps,)`` cumulative wall-clock seconds after each step (callbacks excluded).
        wall_time: total seconds (setup and the final evaluation included, callbacks excluded).
        steps: optimisation steps taken.
        converged: whether the early-stopping rule (or the callback) stopped it.
        method: e.g. ``"svi/tabular/exact"`` or ``"closed_form/adam"``.
        guide: the fitted guide (``None`` for the closed form).
    """

    policy: torch.Tensor
    elbo: float
    elbo_trace: torch.Tensor
    times: torch.Tensor
    wall_time: float
    steps: int
    converged: bool
    method: str
    guide: Optional[torch.nn.Module] = field(default=None, repr=False, compare=False)

    @property
    def log_policy(self) -> torch.Tensor:
        return torch.log(self.policy)

    def __repr__(self) -> str:
        return (f"PolicyFit(method={self.method!r}, elbo={self.elbo:.8g}, steps={self.steps}, "
                f"converged={self.converged}, wall_time={self.wall_time:.3g}s)")


@contextlib.contextmanager
def _intra_op_threads(n: Optional[int]):
    """Run with ``n`` torch intra-op threads, restoring the previous setting (``None``: leave it)."""
    if n is None:
        yield
        return
    check_positive_int("num_threads", n)
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_fit_args(steps, lr, tol, patience, callback_every):
    check_positive_int("steps", steps)
    check_positive_int("patience", patience)
    check_positive_int("callback_every", callback_every)
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a finite learning rate > 0, got {lr!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol: expected a number >= 0 or None, got {tol!r}")


def _stalled(trace, tol, patience) -> bool:
    """The last ``patience`` objective values span at most ``tol * max(1, |last|)``."""
    if tol is None or len(trace) <= patience:
        return False
    w = trace[-patience - 1:]
    return (max(w) - min(w)) <= tol * max(1.0, abs(w[-1]))


def _as_model_for_fit(mdp, alpha, action_prior, fn) -> TrajectoryModel:
    if isinstance(mdp, TrajectoryModel):
        return mdp
    try:
        return TrajectoryModel(mdp, alpha, action_prior)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{fn}: {exc}") from exc


def _run_loop(step_fn, policy_fn, steps, tol, patience, progress, callback, callback_every, desc, t0):
    trace, times = [], []
    spent = 0.0                                        # seconds spent in callbacks
    converged = False
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    try:
        for k in range(steps):
            value = step_fn()
            trace.append(value)
            times.append(time.perf_counter() - t0 - spent)
            bar.update(1)
            if k % 25 == 0:
                bar.set_postfix(elbo=f"{value:.6g}")
            if _stalled(trace, tol, patience):
                converged = True
                break
            if callback is not None and (k + 1) % callback_every == 0:
                c0 = time.perf_counter()
                stop = callback(k + 1, value, policy_fn())
                spent += time.perf_counter() - c0
                if stop:
                    converged = True
                    break
    finally:
        bar.close()
    return trace, times, converged, spent


def fit_policy_svi(
    mdp: TabularMDP,
    alpha: Alpha = 1.0,
    action_prior: Optional[ArrayLike] = None,
    *,
    guide: Union[str, torch.nn.Module] = "tabular",
    estimator: str = "exact",
    steps: int = 3000,
    lr: Optional[float] = None,
    num_particles: int = 256,
    tol: Optional[float] = 1e-6,
    patience: int = 20,
    seed: Optional[int] = 0,
    progress: bool = True,
    callback: Optional[Callable] = None,
    callback_every: int = 10,
    guide_kwargs: Optional[dict] = None,
    num_threads: Optional[int] = 1,
) -> PolicyFit:
    r"""Variational trajectory inference with Pyro's SVI: learn ``q_t(a|s)``, keep the dynamics.

    Runs ``pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": lr}), loss)`` in a private
    parameter-store scope and a forked, seeded torch RNG (the global state is left as it was),
    so two calls with the same seed return the same policy.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` (or a ready
            :class:`~cai.ppl.model.TrajectoryModel`, then ``alpha``/``action_prior``
            are ignored).
        alpha: temperature > 0.
        action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        guide: ``"tabular"``, ``"amortized"``, or a guide module built on the same model (it is
            trained further in place).
        estimator: ``"exact"`` (forward enumeration, :class:`ExactPolicyELBO`), ``"enum"``
            (Pyro ``TraceEnum_ELBO`` with guide-side enumeration; tiny problems) or
            ``"sample"`` (Pyro ``TraceGraph_ELBO`` on ``num_particles`` vectorised trajectories).
        steps: maximum optimisation steps.
        lr: Adam learning rate; default 0.1 for the tabular guide, 0.01 for the network
            (which oscillates at higher rates).
        num_particles: trajectories per step for ``"sample"``.
        tol, patience: stop when the last ``patience`` objective values span at most
            ``tol * max(1, |ELBO|)`` (with the exact estimator the remaining gap to the optimum
            is then about ``10 * tol``); ``None`` never stops early. With ``"sample"`` the trace
            is noisy and early stopping is off unless ``tol`` is passed explicitly.
        seed: RNG seed (network initialisation and sampling); ``None`` uses the global RNG.
        progress: show a tqdm progress bar.
        callback: ``callback(step, elbo, policy) -> bool`` every ``callback_every`` steps;
            returning True stops. Its time is excluded from ``times``/``wall_time``.
        guide_kwargs: extra arguments for the guide built from a string (e.g. ``hidden=``,
            ``features=``, ``time_conditioned=``, ``init=``).
        num_threads: torch intra-op threads during the fit, restored afterwards; ``None`` keeps
            torch's setting. The default 1 is deliberate: every step is thousands of operations
            on tensors of a few thousand numbers, and on a busy 2-core machine intra-op threads
            made the same fit several times slower (measured in ``benchmarks/RESULTS_svi.md``).

    Returns:
        :class:`PolicyFit` (``policy (T,S,A)``, ``elbo``, ``elbo_trace (steps,)``, ``times``).

    Raises:
        ValueError: unknown guide/estimator, non-positive steps/lr, an ``"enum"`` problem too
            large to enumerate, or invalid model inputs.
    """
    t0 = time.perf_counter()
    fn = "fit_policy_svi"
    if lr is None:
        lr = 0.01 if (guide == "amortized" or isinstance(guide, AmortizedPolicyGuide)) else 0.1
    _check_fit_args(steps, lr, tol, patience, callback_every)
    check_positive_int("num_particles", num_particles)
    if estimator not in ("exact", "enum", "sample"):
        raise ValueError(f"estimator: expected 'exact', 'enum' or 'sample', got {estimator!r}")
    if isinstance(guide, torch.nn.Module):
        if not isinstance(getattr(guide, "model", None), TrajectoryModel) or not hasattr(guide, "log_policy"):
            raise TypeError("guide: expected a guide module with .model (a TrajectoryModel) and .log_policy()")
        model = guide.model
        if not isinstance(mdp, TrajectoryModel) and mdp is not model.mdp:
            raise ValueError("guide: was built for a different MDP object than mdp")
    elif guide not in ("tabular", "amortized"):
        raise ValueError(f"guide: expected 'tabular', 'amortized' or a guide module, got {guide!r}")
    else:
        model = _as_model_for_fit(mdp, alpha, action_prior, fn)
    if estimator == "enum":
        S, A, T = model.mdp.n_states, model.mdp.n_actions, model.horizon
        c = 2 if model.mdp.gamma < 1 else 1
        if math.log(S) + T * math.log(S * A * c) > math.log(ENUM_MAX_SIZE):
            raise ValueError(
                f"estimator: 'enum' enumerates S (S A c)^T = {S}*({S}*{A}*{c})^{T} joint guide "
                f"configurations, more than ENUM_MAX_SIZE={ENUM_MAX_SIZE}; use estimator='exact'"
            )
    if estimator == "sample" and tol == 1e-6:
        tol = None

    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with rng, pyro.get_param_store().scope(), _intra_op_threads(num_threads):
        if seed is not None:
            torch.manual_seed(seed)
        kw = dict(guide_kwargs or {})
        if guide == "tabular":
            g = TabularPolicyGuide(model, **kw)
        elif guide == "amortized":
            g = AmortizedPolicyGuide(model, **kw)
        else:
            g = guide
        name = "tabular" if isinstance(g, TabularPolicyGuide) else (
            "amortized" if isinstance(g, AmortizedPolicyGuide) else type(g).__name__)
        if estimator == "exact":
            loss, m_fn, g_fn, args = ExactPolicyELBO(), model, g, (1,)
        elif estimator == "enum":
            loss = TraceEnum_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
            m_fn, args = model, (1,)

            def g_fn(n):
                return g(n, enumerate=True)
        else:
            loss = TraceGraph_ELBO(max_plate_nesting=MAX_PLATE_NESTING)
            scale = 1.0 / num_particles
            m_fn = poutine.scale(model, scale)
            args = (num_particles,)

            def g_fn(n):
                with poutine.scale(scale=scale):
                    return g(n)

        svi = SVI(m_fn, g_fn, pyro.optim.Adam({"lr": lr}), loss)

        def step():
            return -svi.step(*args)

        trace, times, converged, spent = _run_loop(
            step, g.policy, steps, tol, patience, progress, callback, callback_every,
            f"SVI {name}/{estimator}", t0)
        with torch.no_grad():
            lp = g.log_policy()
            final = _closed_form(model, lp).item()
            policy = torch.exp(lp)
    return PolicyFit(policy=policy, elbo=final, elbo_trace=torch.tensor(trace, dtype=torch.float64),
                     times=torch.tensor(times, dtype=torch.float64),
                     wall_time=time.perf_counter() - t0 - spent, steps=len(trace), converged=converged,
                     method=f"svi/{name}/{estimator}", guide=g)


def fit_policy_closed_form(
    mdp: TabularMDP,
    alpha: Alpha = 1.0,
    action_prior: Optional[ArrayLike] = None,
    *,
    steps: int = 3000,
    lr: float = 0.1,
    init: Optional[ArrayLike] = None,
    tol: Optional[float] = 1e-6,
    patience: int = 20,
    progress: bool = True,
    callback: Optional[Callable] = None,
    callback_every: int = 10,
    num_threads: Optional[int] = 1,
) -> PolicyFit:
    r"""Deterministic reference: Adam ascent on the closed-form ELBO over time-indexed logits.

    The objective is :func:`cai.elbo` (its ``log_policy`` form, the backward recursion) of
    ``q_t = softmax(theta_t)``; its maximum is ``cai.soft_value_iteration(...).max_elbo``. No
    Pyro and no randomness: the same inputs give the same trace. (L-BFGS was tried and is
    slower here: the softmax saturates toward the near-deterministic soft-optimal policy and
    the curvature is badly conditioned; Adam's per-coordinate scaling copes.)

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` (or a ``TrajectoryModel``).
        alpha, action_prior: as for :func:`cai.elbo`.
        steps: maximum Adam steps.
        lr: Adam learning rate.
        init: initial policy ``(T, S, A)`` or ``(S, A)``; default uniform.
        tol, patience: early stopping as in :func:`fit_policy_svi`.
        progress, callback, callback_every, num_threads: as in :func:`fit_policy_svi`.

    Returns:
        :class:`PolicyFit` with ``guide=None`` and ``method="closed_form/adam"``.
    """
    with _intra_op_threads(num_threads):
        return _fit_closed_form(mdp, alpha, action_prior, steps, lr, init, tol, patience, progress, callback,
                                callback_every)


def _fit_closed_form(mdp, alpha, action_prior, steps, lr, init, tol, patience, progress, callback,
                     callback_every) -> PolicyFit:
    t0 = time.perf_counter()
    _check_fit_args(steps, lr, tol, patience, callback_every)
    model = _as_model_for_fit(mdp, alpha, action_prior, "fit_policy_closed_form")
    theta = TabularPolicyGuide(model, init=init).logits.detach().clone().requires_grad_(True)
    allowed = model.allowed
    opt = torch.optim.Adam([theta], lr=lr)

    def step():
        opt.zero_grad()
        value = _closed_form(model, _masked_log_softmax(theta, allowed))
        (-value).backward()
        opt.step()
        return value.item()

    def policy_fn():
        with torch.no_grad():
            return torch.exp(_masked_log_softmax(theta, allowed))

    trace, times, converged, spent = _run_loop(step, policy_fn, steps, tol, patience, progress, callback,
                                               callback_every, "closed-form ELBO ascent", t0)
    with torch.no_grad():
        lp = _masked_log_softmax(theta, allowed)
        final = _closed_form(model, lp).item()
    return PolicyFit(policy=torch.exp(lp), elbo=final, elbo_trace=torch.tensor(trace, dtype=torch.float64),
                     times=torch.tensor(times, dtype=torch.float64), wall_time=time.perf_counter() - t0 - spent,
                     steps=len(trace), converged=converged, method="closed_form/adam")
