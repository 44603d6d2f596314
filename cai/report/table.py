r"""The inference-vs-dynamic-programming table of ``cai compare`` and ``cai demo``.

:func:`inference_table` solves one MDP at one temperature by exact inference (backward
messages), soft value iteration (the variational optimum) and hard value iteration, and returns an
:class:`InferenceTable` whose ``str`` is the table, with one line defining every number.

Every distance between policies is a weighted mean of the total variation
``TV_t(s) = (1/2) sum_a |pi_t(a|s) - pi'_t(a|s)|`` over where the agent actually is
(:func:`policy_tv`): the posterior marginals ``p(s_t | O)`` for exact inference against soft VI,
the soft-VI policy's own visitation in the true dynamics for soft against hard VI. States without a
choice are left out (:func:`choiceless_states`: the absorbing states of
:func:`cai.mdp.tabular.absorbing_states` and states with a single allowed action, such as a grid's
goal and lava cells, where every policy agrees and would only dilute the mean). Value
gaps are weighted by the initial distribution: ``sum_s p0(s) (V_0(s) - V'_0(s))``.

**Action prior.** ``"counting"`` (``rho(a|s) = 1``) makes soft values include ``alpha`` times the
policy's entropy; ``"uniform"`` (``rho(a|s) = 1/|A(s)|`` on the allowed actions) makes them include
``-alpha * KL(pi || rho) <= 0``. The default ``"auto"`` is the counting prior for a finite horizon and
the uniform prior for a stationary (discounted, ``horizon=None``) problem, where the counting prior's
evidence is infinite on nearly every grid (``gamma |A| e^(r/alpha) > 1`` along its loops). The table's
header names the prior its numbers used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch

from cai.dp.soft_vi import soft_value_iteration, value_iteration
from cai.dp.visitation import policy_marginals, policy_visitation
from cai.exact.messages import backward_messages, forward_messages
from cai.mdp.checks import as_tensor, check_action_prior, check_positive_int
from cai.mdp.tabular import ACTION_PRIORS, TabularMDP, absorbing_states, uniform_action_prior
from cai.ops.recursion import DivergenceError
from cai.solution import Solution
from cai.typing import ArrayLike

__all__ = ["InferenceTable", "MethodRow", "Measure", "inference_table", "policy_tv", "resolve_action_prior",
           "lava_probability",
           "onpolicy_weights", "posterior_weights", "choiceless_states", "PRIOR_DESCRIPTIONS"]

#: one line per named action prior, printed in the table's header
PRIOR_DESCRIPTIONS = {
    "counting": "counting, rho(a|s) = 1 (soft values include alpha * policy entropy)",
    "uniform": "uniform over the allowed actions, rho(a|s) = 1/|A(s)| (soft values include -alpha * KL(pi || rho))",
    "custom": "the given rho(a|s) (soft values include -alpha * KL(pi || rho))",
}


def resolve_action_prior(mdp: TabularMDP, action_prior: Union[str, None, torch.Tensor] = "auto"
                         ) -> Tuple[Optional[torch.Tensor], str]:
    """The action prior a solver takes, and its name.

    Args:
        mdp: the :class:`~cai.TabularMDP`.
        action_prior: ``"auto"`` (``"counting"`` for a finite horizon, ``"uniform"`` for a stationary
            problem), ``"counting"`` or ``None`` (``rho = 1``), ``"uniform"``
            (:func:`cai.mdp.tabular.uniform_action_prior`), or an ``(S, A)`` / ``(A,)`` array of
            normalised rows (named ``"custom"``).

    Returns:
        ``(prior, name)``: ``prior`` is ``None`` (counting) or an ``(S, A)`` tensor; ``name`` is
        ``"counting"``, ``"uniform"`` or ``"custom"``.

    Raises:
        ValueError: an unknown name or an invalid array.
    """
    if isinstance(action_prior, str):
        if action_prior == "auto":
            action_prior = "counting" if mdp.horizon is not None else "uniform"
        if action_prior not in ACTION_PRIORS:
            raise ValueError(f"action_prior: expected 'auto', {', '.join(repr(p) for p in ACTION_PRIORS)} or an "
                             f"(S, A) array, got {action_prior!r}")
        return (None, "counting") if action_prior == "counting" else (uniform_action_prior(mdp), "uniform")
    if action_prior is None:
        return None, "counting"
    check_action_prior(action_prior, mdp.n_states, mdp.n_actions, mdp.dtype, mdp.device)
    p = as_tensor("action_prior", action_prior, mdp.dtype, mdp.device)
    return p.expand(mdp.n_states, mdp.n_actions), "custom"


def policy_tv(policy: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor, *,
              skip: Optional[torch.Tensor] = None, reduce: str = "mean", threshold: float = 0.0) -> float:
    r"""The total-variation distance between two policies, weighted by where the agent is.

    With ``TV_t(s) = (1/2) sum_a |policy_t(a|s) - reference_t(a|s)|`` and ``w_t(s)`` the weights with
    the ``skip`` states set to 0::

        reduce="mean":  sum_{t,s} w_t(s) TV_t(s) / sum_{t,s} w_t(s)
        reduce="max":   max {TV_t(s) : w_t(s) >= threshold and w_t(s) > 0}

    Args:
        policy, reference: ``(T, S, A)`` or stationary ``(S, A)``.
        weights: state marginals ``(T, S)`` (or ``(T+1, S)``: the last row, after the last decision,
            is dropped), or a stationary occupancy ``(S,)``: e.g. :func:`posterior_weights` or
            :func:`onpolicy_weights`.
        skip: ``(S,)`` bool, states left out (default: none); the report passes
            :func:`choiceless_states`.
        reduce: ``"mean"`` (the report's distance) or ``"max"``.
        threshold: ``reduce="max"`` only: the least weight of a state that counts.

    Returns:
        The distance in [0, 1]; 0.0 when no state carries weight.

    Raises:
        ValueError: mismatched shapes or an unknown ``reduce``.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce: expected 'mean' or 'max', got {reduce!r}")
    if policy.shape != reference.shape:
        raise ValueError(f"reference: expected the policy's shape {tuple(policy.shape)}, got {tuple(reference.shape)}")
    tv = 0.5 * (policy - reference).abs().sum(-1)                 # (T, S) or (S,)
    w = torch.as_tensor(weights, dtype=tv.dtype, device=tv.device)
    if tv.dim() == 2 and w.dim() == 2 and w.shape[0] == tv.shape[0] + 1:
        w = w[:-1]
    if w.shape != tv.shape:
        raise ValueError(f"weights: expected shape {tuple(tv.shape)} (or one more step), got {tuple(w.shape)}")
    if skip is not None:
        w = torch.where(torch.as_tensor(skip, device=w.device), torch.zeros_like(w), w)
    if reduce == "max":
        keep = (w >= threshold) & (w > 0)
        return float(tv[keep].max()) if bool(keep.any()) else 0.0
    total = float(w.sum())
    return float((w * tv).sum()) / total if total > 0 else 0.0


def choiceless_states(mdp: TabularMDP) -> torch.Tensor:
    """``(S,)`` bool: the states every distance between policies leaves out: the absorbing states
    (:func:`cai.mdp.tabular.absorbing_states`) and the states with one allowed action (at every
    step), where every policy is the same."""
    single = mdp.allowed.reshape(-1, mdp.n_states, mdp.n_actions).sum(-1).amax(0) <= 1
    return absorbing_states(mdp) | single


def posterior_weights(mdp: TabularMDP, exact: Solution) -> torch.Tensor:
    """Where the agent is under the posterior: ``p(s_t | O)`` ``(T, S)`` (finite horizon, decision
    steps only) or the discounted posterior occupancy ``(S,)`` (stationary)."""
    post = forward_messages(mdp, exact).state
    return post if mdp.horizon is None else post[:-1]


def onpolicy_weights(mdp: TabularMDP, policy: torch.Tensor) -> torch.Tensor:
    """Where the agent is when it runs ``policy`` in the true dynamics: ``p(s_t)`` ``(T, S)`` (finite
    horizon, decision steps only) or the discounted occupancy ``sum_t gamma^t p(s_t)`` ``(S,)``."""
    if mdp.horizon is None:
        return policy_visitation(mdp, policy).sum(-1)
    return policy_marginals(mdp, policy).state[:-1]


def lava_probability(mdp: TabularMDP, state_marginals: ArrayLike) -> float:
    """The probability of falling into lava (off the cliff): ``sum_{t<T} sum_{s in lava} p(s_t = s)``.

    Lava cells lead to the exit, so a trajectory is in lava at most once and the sum is the
    probability of entering it. The last step ``T`` is left out: lava's penalty is paid by the
    action taken there, so a cell reached at ``T`` costs nothing within the horizon and is not a
    fall the objective sees. This is the one definition: ``cai demo`` prints it, its trajectory
    figure shows it and the explorer reports it.

    Args:
        mdp: a finite-horizon grid world (``mdp.metadata["lava"]``: the lava states; none gives 0).
        state_marginals: ``(T+1, S)``, e.g. :func:`cai.policy_marginals` ``.state`` (a policy in
            the real dynamics) or :func:`cai.forward_messages` ``.state`` (the exact posterior).

    Returns:
        The probability, a float in ``[0, 1]``.

    Raises:
        ValueError: marginals that are not ``(T+1, S)``.
    """
    m = torch.as_tensor(state_marginals, dtype=torch.float64) if not isinstance(state_marginals, torch.Tensor) \
        else state_marginals.detach().to("cpu", torch.float64)
    if mdp.horizon is None or m.shape != (mdp.horizon + 1, mdp.n_states):
        want = f"({mdp.horizon + 1}, {mdp.n_states})" if mdp.horizon is not None else "a finite horizon"
        raise ValueError(f"state_marginals: expected shape (T+1, S) = {want}, got {tuple(m.shape)}")
    lava = list(mdp.metadata.get("lava", []))
    return float(m[:-1, lava].sum()) if lava else 0.0


@dataclass(frozen=True)
class MethodRow:
    """One solver's line of the table.

    Attributes:
        method: ``"exact inference"``, ``"soft VI (variational)"`` or ``"hard VI"``.
        value: ``sum_s p0(s) V_0(s)`` in reward units (``None`` if it diverged).
        evidence: ``log p(O)`` (exact), the max ELBO (soft VI), ``None`` for hard VI; nats.
        alpha: the temperature (0 for hard VI).
        time_ms: best wall time of up to three runs, ms (``None`` if it diverged).
        diverged: the stationary problem has no finite solution for this method and prior.
    """

    method: str
    value: Optional[float]
    evidence: Optional[float]
    alpha: float
    time_ms: Optional[float]
    diverged: bool = False


@dataclass(frozen=True)
class Measure:
    """One measured number with the line that defines it.

    Attributes:
        label: the short name printed in the table.
        value: the number (``None``: not available, e.g. a method diverged).
        definition: one line: the formula and its units.
    """

    label: str
    value: Optional[float]
    definition: str


@dataclass(frozen=True)
class InferenceTable:
    """What :func:`inference_table` measured; ``str(table)`` is the printed table.

    Attributes:
        title: what was solved (world name and the MDP's ``repr``).
        alpha: the temperature.
        action_prior: the prior's name (``"counting"``, ``"uniform"`` or ``"custom"``).
        rows: one :class:`MethodRow` per solver.
        measures: the :class:`Measure` list printed under the rows, each with its definition.
    """

    title: str
    alpha: float
    action_prior: str
    rows: Tuple[MethodRow, ...]
    measures: Tuple[Measure, ...]

    def with_measures(self, *measures: Measure) -> InferenceTable:
        """A copy with ``measures`` appended (``cai demo`` adds its own)."""
        return dataclasses.replace(self, measures=self.measures + tuple(measures))

    def measure(self, label: str) -> Optional[float]:
        """The value of the measure called ``label``; ``KeyError`` if there is none."""
        for m in self.measures:
            if m.label == label:
                return m.value
        raise KeyError(label)

    def __str__(self) -> str:
        head = ["method", "value", "log p(O) / max ELBO", "alpha", "time (ms)"]
        rows = [[r.method, "diverges" if r.diverged else _fmt(r.value), _fmt(r.evidence), _fmt(r.alpha),
                 "-" if r.time_ms is None else f"{r.time_ms:.1f}"] for r in self.rows]
        out = [f"{self.title}, alpha={self.alpha:g}",
               f"action prior: {PRIOR_DESCRIPTIONS[self.action_prior]}", "",
               _table(rows, head),
               "  value: sum_s p0(s) V_0(s), reward units; log p(O): exact log evidence, nats; "
               "max ELBO: soft VI's sum_s p0(s) V_0(s) / alpha, nats; time: best of up to 3 runs", ""]
        marks = [f"[{i + 1}]" for i in range(len(self.measures))]
        out.append(_table([[f"{k} {m.label}", _fmt(m.value)] for k, m in zip(marks, self.measures)],
                          ["measure", "value"]))
        out += [f"  {k} {m.definition}" for k, m in zip(marks, self.measures)]
        return "\n".join(out)


def _table(rows, header) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(r):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}g}"


def _timed(fn, repeats: int):
    """``(result, best seconds)`` of up to ``repeats`` calls (the first pays one-off costs)."""
    best, out = math.inf, None
    for i in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _ = out.policy                                        # include materialisation in the time
        best = min(best, time.perf_counter() - t0)
        if i >= 1 and best > 2.0:                             # slow even when warm: two runs say it
            break
    return out, best


def inference_table(mdp: TabularMDP, alpha: float = 1.0, action_prior: Union[str, None, torch.Tensor] = "auto", *,
                    title: Optional[str] = None, repeats: int = 3) -> InferenceTable:
    r"""Exact inference, soft VI and hard VI on one MDP: values, evidence, gaps and policy distances.

    Measures (each printed with its one-line definition):

    * ``log p(O) - max ELBO`` (nats, >= 0, 0 for deterministic dynamics);
    * ``exact - soft value``: ``sum_s p0(s) (V_exact,0(s) - V_soft,0(s))``, reward units;
    * ``policy TV exact vs soft``: :func:`policy_tv` weighted by :func:`posterior_weights`;
    * ``policy TV soft vs hard``: :func:`policy_tv` weighted by :func:`onpolicy_weights` of the
      soft-VI policy;
    * ``soft - hard value``: ``sum_s p0(s) (V_soft,0(s) - V_hard,0(s))``, reward units.

    Distances leave out :func:`choiceless_states`.

    Args:
        mdp: an unbatched :class:`~cai.TabularMDP` (finite horizon or stationary).
        alpha: temperature > 0.
        action_prior: see :func:`resolve_action_prior` (default ``"auto"``).
        title: the first line (default the MDP's ``repr``).
        repeats: each solver runs up to this many times; the best time is reported.

    Returns:
        :class:`InferenceTable`. A method whose stationary problem diverges (exact inference under
        the counting prior, typically) gets a row marked ``diverged`` and ``None`` measures.

    Raises:
        ValueError: invalid ``alpha``, ``action_prior`` or MDP (a reward batch).
        TypeError: ``mdp`` is not a :class:`~cai.TabularMDP`.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"inference_table: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    if len(mdp.batch_shape):
        raise ValueError(f"mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    check_positive_int("repeats", repeats)
    prior, prior_name = resolve_action_prior(mdp, action_prior)
    solvers = {
        "exact": lambda: backward_messages(mdp, alpha, prior),
        "soft": lambda: soft_value_iteration(mdp, alpha, prior),
        "hard": lambda: value_iteration(mdp),
    }
    sols, secs = {}, {}
    for key, fn in solvers.items():
        with contextlib.suppress(DivergenceError):            # reported as a row that diverges
            sols[key], secs[key] = _timed(fn, repeats)
    labels = {"exact": "exact inference", "soft": "soft VI (variational)", "hard": "hard VI"}
    rows = []
    for key in solvers:
        s = sols.get(key)
        a = 0.0 if key == "hard" else float(alpha)
        if s is None:
            rows.append(MethodRow(labels[key], None, None, a, None, diverged=True))
            continue
        ev = float(s.log_evidence) if key == "exact" else (float(s.max_elbo) if key == "soft" else None)
        rows.append(MethodRow(labels[key], float(s.value), ev, a, 1000 * secs[key]))

    skip = choiceless_states(mdp)
    e, v, h = sols.get("exact"), sols.get("soft"), sols.get("hard")
    where = ("discounted occupancy sum_t gamma^t p(s_t=s" if mdp.horizon is None else "sum_t p(s_t=s")

    def gap(x, y):
        return None if x is None or y is None else float((mdp.initial * (x.V0 - y.V0)).sum())

    tv_es = tv_sh = None
    if e is not None and v is not None:
        tv_es = policy_tv(e.policy, v.policy, posterior_weights(mdp, e), skip=skip)
    if v is not None and h is not None:
        tv_sh = policy_tv(v.policy, h.policy, onpolicy_weights(mdp, v.policy), skip=skip)
    measures = (
        Measure("log p(O) - max ELBO", None if e is None or v is None else float(e.log_evidence - v.max_elbo),
                "log p(O) - max ELBO: exact log evidence minus soft VI's maximum ELBO, nats (>= 0; 0 for "
                "deterministic dynamics without discount)"),
        Measure("exact - soft value", gap(e, v),
                "exact - soft value: sum_s p0(s) (V_exact,0(s) - V_soft,0(s)), reward units"),
        Measure("policy TV exact vs soft", tv_es,
                f"policy TV exact vs soft: mean of TV(s) = (1/2) sum_a |pi_exact(a|s) - pi_soft(a|s)| weighted by "
                f"the posterior {where} | O), states without a choice left out; 0..1"),
        Measure("policy TV soft vs hard", tv_sh,
                f"policy TV soft vs hard: mean of TV(s) = (1/2) sum_a |pi_soft(a|s) - pi_hard(a|s)| weighted by "
                f"the soft policy's own {where}) in the true dynamics, states without a choice left out; 0..1"),
        Measure("soft - hard value", gap(v, h),
                "soft - hard value: sum_s p0(s) (V_soft,0(s) - V_hard,0(s)), reward units (alpha * the soft "
                "policy's entropy, or minus alpha * its KL to rho, less the return it gives up)"),
    )
    return InferenceTable(title or repr(mdp), float(alpha), prior_name, tuple(rows), measures)
