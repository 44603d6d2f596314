"""The names of the methods that solve an MDP: one vocabulary for :attr:`cai.Solution.method`, the
report (:func:`cai.compare_inference`), the ``cai`` command (``cai solve --method``) and the docs.

A method is *what* is computed. How a backup treats the successor state (the kernel's
``successor`` mode of :func:`cai.ops.backup.q_backup`, :data:`cai.ops.backup.LOG_EXPECTATION` or
:data:`cai.ops.backup.EXPECTATION`) is a separate, lower-level choice; :data:`SUCCESSOR` maps each
backward method to the successor mode it runs.
"""
from __future__ import annotations

from typing import Dict

__all__ = [
    "EXACT", "SOFT_VI", "VI", "POLICY_EVALUATION", "SOFT_POLICY_ITERATION", "POLICY_ITERATION",
    "MODIFIED_POLICY_ITERATION", "SOFT_MODIFIED_POLICY_ITERATION", "SVI", "CLOSED_FORM",
    "METHODS", "VARIATIONAL", "ALIASES", "SUCCESSOR", "canonical_method", "describe",
]

EXACT = "exact"
SOFT_VI = "soft_vi"
VI = "vi"
POLICY_EVALUATION = "policy_evaluation"
SOFT_POLICY_ITERATION = "soft_policy_iteration"
POLICY_ITERATION = "policy_iteration"
MODIFIED_POLICY_ITERATION = "modified_policy_iteration"
SOFT_MODIFIED_POLICY_ITERATION = "soft_modified_policy_iteration"
SVI = "svi"
CLOSED_FORM = "closed_form"

#: Every method name -> its one-line description.
METHODS: Dict[str, str] = {
    EXACT: "exact inference: backward messages beta = p(O_{t:T-1} | s_t, a_t), the posterior policy, log p(O)",
    SOFT_VI: "soft value iteration: the policy maximising the ELBO with the dynamics kept (max ELBO)",
    VI: "hard value iteration: the alpha -> 0 limit, a greedy policy",
    POLICY_EVALUATION: "soft policy evaluation: soft Q and V of a given policy (its ELBO is value / alpha)",
    SOFT_POLICY_ITERATION: "soft policy iteration: evaluate, improve pi ∝ rho exp(Q/alpha), repeat (soft VI's answer)",
    POLICY_ITERATION: "policy iteration: greedy improvement, exact evaluation by a linear solve (hard VI's answer)",
    MODIFIED_POLICY_ITERATION: "modified policy iteration: greedy improvement, a few evaluation sweeps (hard VI's answer)",
    SOFT_MODIFIED_POLICY_ITERATION: "soft modified policy iteration: soft-greedy improvement, a few evaluation sweeps "
                                    "(soft VI's answer)",
    SVI: "Pyro stochastic variational inference: a guide policy fitted by gradient ascent on the ELBO",
    CLOSED_FORM: "closed-form ELBO ascent: Adam on the exact ELBO of time-indexed logits (no Pyro)",
}

#: The variational fits :func:`cai.compare_inference` can run: name -> (method, description).
#: Each name is its method (``svi`` or ``closed_form``) with the guide and the ELBO estimator.
VARIATIONAL: Dict[str, tuple] = {
    "closed_form": (CLOSED_FORM, "closed-form ELBO ascent (Adam)"),
    "svi_tabular": (SVI, "Pyro SVI, tabular guide, exact ELBO"),
    "svi_amortized": (SVI, "Pyro SVI, amortized guide, exact ELBO"),
    "svi_tabular_sample": (SVI, "Pyro SVI, tabular guide, TraceGraph_ELBO"),
    "svi_tabular_enum": (SVI, "Pyro SVI, tabular guide, TraceEnum_ELBO"),
}

#: Older spellings still accepted (the command line used hyphens before 0.2).
ALIASES: Dict[str, str] = {"soft-vi": SOFT_VI, "policy-evaluation": POLICY_EVALUATION,
                           "soft-policy-iteration": SOFT_POLICY_ITERATION, "closed-form": CLOSED_FORM}

#: Backward method -> the successor mode of its backup (:func:`cai.ops.backup.q_backup`): exact
#: inference takes the log-expectation over ``s'``, the dynamic-programming methods the expectation.
SUCCESSOR: Dict[str, str] = {
    EXACT: "log_expectation",
    SOFT_VI: "expectation",
    VI: "expectation",
    POLICY_EVALUATION: "expectation",
    SOFT_POLICY_ITERATION: "expectation",
    POLICY_ITERATION: "expectation",
    MODIFIED_POLICY_ITERATION: "expectation",
    SOFT_MODIFIED_POLICY_ITERATION: "expectation",
}


def canonical_method(name: str) -> str:
    """The method name for ``name`` or one of its :data:`ALIASES`.

    Args:
        name: a method name (``"soft_vi"``) or an old spelling (``"soft-vi"``).

    Returns:
        The name as in :data:`METHODS`.

    Raises:
        ValueError: if ``name`` is neither.
    """
    if isinstance(name, str):
        name = ALIASES.get(name, name)
        if name in METHODS:
            return name
    raise ValueError(f"method: expected one of {sorted(METHODS)} (or {sorted(ALIASES)}), got {name!r}")


def describe(name: str) -> str:
    """The one-line description of a method (aliases accepted).

    Raises:
        ValueError: for an unknown name.
    """
    return METHODS[canonical_method(name)]
