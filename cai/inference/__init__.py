"""Deprecated: :mod:`cai.inference` was split in 0.2 (this alias is removed in 0.3).

Exact messages and sampling are in :mod:`cai.exact`, the Pyro layer in :mod:`cai.ppl`, the
comparison report in :mod:`cai.report` and linear-Gaussian messages in :mod:`cai.gaussian`.
"""
from cai._compat import moved_names

_HOMES = {
    **dict.fromkeys(["backward_messages", "forward_messages", "posterior_dynamics", "ForwardMessages",
                     "DivergenceError"], "cai.exact.messages"),
    **dict.fromkeys(["Trajectories", "sample_trajectories", "sample_posterior", "transition_rows"], "cai.exact.sampling"),
    **dict.fromkeys(["TrajectoryModel", "pyro_log_evidence", "pyro_sample_posterior"], "cai.ppl.model"),
    **dict.fromkeys(["fit_policy_svi", "fit_policy_closed_form", "TabularPolicyGuide", "AmortizedPolicyGuide",
                     "PolicyFit", "guide_elbo", "state_marginals"], "cai.ppl.svi"),
    **dict.fromkeys(["compare_inference", "ComparisonReport"], "cai.report.compare"),
    **dict.fromkeys(["lg_soft_value_iteration", "lg_backward_messages", "lg_forward_messages",
                     "LinearGaussianMessages", "LinearGaussianMarginals"], "cai.gaussian.messages"),
}
__getattr__ = moved_names(__name__, _HOMES)
