"""The Pyro layer: the MDP as a Pyro program, exact enumeration, and variational trajectory inference.

:mod:`cai.ppl.model` writes ``p(tau, O)`` with ``pyro.factor`` and ``pyro.markov``; Pyro's own
enumeration returns the same log evidence as :func:`cai.backward_messages`. :mod:`cai.ppl.svi`
fits MaxEnt policies by SVI (tabular and amortized guides) and by closed-form ELBO ascent.
"""
from cai.ppl.model import MAX_PLATE_NESTING, TrajectoryModel, pyro_log_evidence, pyro_sample_posterior
from cai.ppl.svi import AmortizedPolicyGuide, ExactPolicyELBO, PolicyFit, TabularPolicyGuide, elbo_samples, fit_policy_closed_form, fit_policy_svi

__all__ = [
    "TrajectoryModel", "pyro_log_evidence", "pyro_sample_posterior", "MAX_PLATE_NESTING",
    "fit_policy_svi", "fit_policy_closed_form", "TabularPolicyGuide", "AmortizedPolicyGuide", "PolicyFit",
    "ExactPolicyELBO", "elbo_samples",
]
