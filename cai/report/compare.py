r"""Exact inference, soft value iteration and variational inference, side by side.

:func:`compare_inference` solves one MDP at one temperature every way this package knows and
returns a :class:`ComparisonReport` whose ``str`` is a table:

* the exact log evidence ``log p(O)`` (backward messages, and Pyro's enumeration);
* the maximum ELBO (soft value iteration), ``<= log p(O)`` with equality for deterministic
  dynamics;
* for each variational method (closed-form ascent, Pyro SVI with the tabular and the amortized
  guide, ...) the ELBO it reached, its gap to the maximum, the total-variation distance between
  its policy and the soft-VI policy averaged over where the soft-VI policy takes the agent
  (:func:`cai.report.table.policy_tv` weighted by :func:`cai.report.table.onpolicy_weights`,
  states without a choice left out: the one TV of every table in :mod:`cai.report`), its steps and wall
  time;
* the same numbers for the exact posterior policy ``p(a_t | s_t, O)`` (backward messages), whose
  ELBO falls short of the maximum under stochastic dynamics: the optimism of exact inference.

"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Tuple, Union

from cai.dp.soft_vi import elbo, soft_value_iteration
from cai.exact.messages import backward_messages
from cai.mdp.tabular import TabularMDP
from cai.methods import CLOSED_FORM, SVI, VARIATIONAL
from cai.ppl.model import TrajectoryModel, pyro_log_evidence
from cai.ppl.svi import fit_policy_closed_form, fit_policy_svi
from cai.report.table import PRIOR_DESCRIPTIONS, choiceless_states, onpolicy_weights, policy_tv, resolve_action_prior
from cai.typing import Alpha, ArrayLike

__all__ = ["MethodResult", "ComparisonReport", "compare_inference", "METHODS"]

_FIT = {CLOSED_FORM: fit_policy_closed_form, SVI: fit_policy_svi}
_FIT_KWARGS = {
    "closed_form": {},
    "svi_tabular": {"guide": "tabular", "estimator": "exact"},
    "svi_amortized": {"guide": "amortized", "estimator": "exact"},
    "svi_tabular_sample": {"guide": "tabular", "estimator": "sample"},
    "svi_tabular_enum": {"guide": "tabular", "estimator": "enum"},
}
#: Variational fit name (:data:`cai.methods.VARIATIONAL`) -> (description, fitting function, keyword arguments).
METHODS = {name: (description, _FIT[method], _FIT_KWARGS[name]) for name, (method, description) in VARIATIONAL.items()}


@dataclass(frozen=True)
class MethodResult:
    """One row of the comparison.

    Attributes:
        name: variational fit name (:data:`cai.methods.VARIATIONAL`), or ``"exact_posterior"`` for
            the posterior policy of the ``"exact"`` method.
        description: human-readable method.
        elbo: the exact ELBO of its policy.
        gap: ``max ELBO - elbo`` (>= 0 up to rounding).
        policy_tv: total-variation distance to the soft-VI policy, weighted by the soft-VI
            policy's visitation (:func:`cai.report.table.policy_tv`), states without a choice left out.
        wall_time: seconds.
        steps: optimisation steps (0 for direct solvers).
    """

    name: str
    description: str
    elbo: float
    gap: float
    policy_tv: float
    wall_time: float
    steps: int


@dataclass(frozen=True)
class ComparisonReport:
    """What :func:`compare_inference` measured. ``str(report)`` is a table.

    Attributes:
        mdp: ``repr`` of the MDP.
        alpha: temperature.
        action_prior: the prior's name (``"counting"``, ``"uniform"`` or ``"custom"``).
        log_evidence: ``log p(O)`` from backward messages.
        log_evidence_pyro: the same from Pyro's enumeration (``None`` if skipped).
        max_elbo: soft value iteration's maximum ELBO.
        exact_time, pyro_time, soft_vi_time: seconds for backward messages, Pyro's enumeration
            and soft value iteration.
        rows: one :class:`MethodResult` per method, the exact posterior policy first.
    """

    mdp: str
    alpha: float
    action_prior: str
    log_evidence: float
    log_evidence_pyro: Optional[float]
    max_elbo: float
    exact_time: float
    pyro_time: Optional[float]
    soft_vi_time: float
    rows: Tuple[MethodResult, ...]

    def as_dict(self) -> dict:
        """A JSON-friendly dictionary."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"{self.mdp}, alpha={self.alpha:g}", f"action prior: {PRIOR_DESCRIPTIONS[self.action_prior]}"]
        lines.append(f"  log evidence (backward messages)  {self.log_evidence:14.8f}   {self.exact_time:8.3f} s")
        if self.log_evidence_pyro is not None:
            lines.append(f"  log evidence (Pyro enumeration)   {self.log_evidence_pyro:14.8f}   "
                         f"{self.pyro_time:8.3f} s")
        lines.append(f"  max ELBO (soft value iteration)   {self.max_elbo:14.8f}   {self.soft_vi_time:8.3f} s")
        lines.append(f"  gap log p(O) - max ELBO           {self.log_evidence - self.max_elbo:14.8f}")
        head = f"  {'method':<40} {'ELBO':>14} {'gap to max':>11} {'policy TV':>10} {'steps':>6} {'time (s)':>9}"
        lines += ["", head, "  " + "-" * (len(head) - 2)]
        for r in self.rows:
            lines.append(f"  {r.description:<40} {r.elbo:14.8f} {r.gap:11.3g} {r.policy_tv:10.4f} {r.steps:6d} "
                         f"{r.wall_time:9.3f}")
        lines.append("  ELBO: sum_s p0(s) V^pi_0(s) / alpha of the method's policy, nats; gap to max: max ELBO - ELBO, "
                     "nats (>= 0)")
        lines.append("  policy TV: mean of (1/2) sum_a |pi(a|s) - pi_soft(a|s)| weighted by the soft-VI policy's "
                     "own sum_t p(s_t=s) in the true dynamics, states without a choice left out; 0..1")
        return "\n".join(lines)


def compare_inference(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Union[ArrayLike, str, None] = "auto", *,
                      methods: Sequence[str] = ("closed_form", "svi_tabular", "svi_amortized"),
                      steps: int = 3000, seed: int = 0, pyro_evidence: bool = True, progress: bool = False,
                      fit_kwargs: Optional[dict] = None) -> ComparisonReport:
    r"""Solve ``mdp`` at temperature ``alpha`` by exact inference, soft VI and each variational method.

    Args:
        mdp: a finite-horizon, unbatched :class:`~cai.TabularMDP`.
        alpha: the graphical model's temperature.
        action_prior: see :func:`cai.report.table.resolve_action_prior` (``"auto"``: the counting
            prior, this comparison needs a finite horizon).
        methods: keys of :data:`METHODS`.
        steps: maximum steps per variational method.
        seed: seed for the SVI methods.
        pyro_evidence: also compute the log evidence by Pyro enumeration.
        progress: show progress bars.
        fit_kwargs: ``{method: {kwarg: value}}`` extra arguments per method (e.g. ``lr``).

    Returns:
        :class:`ComparisonReport`.

    Raises:
        ValueError: for an unknown method or invalid model inputs.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods: expected names from {sorted(METHODS)}, got {unknown[0]!r}")
    fit_kwargs = dict(fit_kwargs or {})
    action_prior, prior_name = resolve_action_prior(mdp, action_prior)
    model = TrajectoryModel(mdp, alpha, action_prior)
    # warm-up: the first call of a solver in a process pays one-off costs (lazy imports, kernels)
    backward_messages(mdp, alpha, action_prior, keep="values")
    soft_value_iteration(mdp, alpha, action_prior, keep="values")

    t = time.perf_counter()
    msg = backward_messages(mdp, alpha, action_prior)
    log_z = float(msg.log_evidence)
    exact_time = time.perf_counter() - t
    pyro_z = pyro_time = None
    if pyro_evidence:
        t = time.perf_counter()
        pyro_z = float(pyro_log_evidence(model))
        pyro_time = time.perf_counter() - t
    t = time.perf_counter()
    sv = soft_value_iteration(mdp, alpha, action_prior)
    reference = sv.policy
    max_elbo = float(sv.max_elbo)
    soft_vi_time = time.perf_counter() - t
    visits = onpolicy_weights(mdp, reference)
    skip = choiceless_states(mdp)

    def row(name, description, policy, wall, n_steps):
        e = float(elbo(mdp, policy, alpha, action_prior))
        return MethodResult(name, description, e, max_elbo - e, policy_tv(policy, reference, visits, skip=skip),
                            wall, n_steps)

    rows = [row("exact_posterior", "exact posterior policy (messages)", msg.policy, exact_time, 0)]
    for name in methods:
        description, fit, kw = METHODS[name]
        kw = dict(kw, steps=steps, progress=progress, **fit_kwargs.get(name, {}))
        if fit is fit_policy_svi:
            kw.setdefault("seed", seed)
        res = fit(model, **kw)
        rows.append(row(name, description, res.policy, res.wall_time, res.steps))
    return ComparisonReport(mdp=repr(mdp), alpha=float(alpha), action_prior=prior_name, log_evidence=log_z, log_evidence_pyro=pyro_z,
                            max_elbo=max_elbo, exact_time=exact_time, pyro_time=pyro_time,
                            soft_vi_time=soft_vi_time, rows=tuple(rows))
