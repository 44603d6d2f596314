"""Reports: the comparison of inference with dynamic programming, and the sweeps behind figures.

:mod:`cai.report.table` is the one home of the inference-vs-DP table (``cai compare``, ``cai demo``)
and of the policy distance every report uses (:func:`policy_tv`); :mod:`cai.report.compare` adds the
variational fits (Pyro SVI, closed-form ascent).
"""
from cai.report.compare import ComparisonReport, MethodResult, compare_inference
from cai.report.table import (
    InferenceTable,
    Measure,
    MethodRow,
    choiceless_states,
    inference_table,
    lava_probability,
    onpolicy_weights,
    policy_tv,
    posterior_weights,
    resolve_action_prior,
)

__all__ = ["compare_inference", "ComparisonReport", "MethodResult", "policy_tv", "inference_table", "InferenceTable",
           "Measure", "MethodRow", "resolve_action_prior", "posterior_weights", "onpolicy_weights", "choiceless_states",
           "lava_probability"]
