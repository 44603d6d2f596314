"""Reports: the comparison of inference with dynamic programming, and the sweeps behind figures."""
from cai.report.compare import ComparisonReport, MethodResult, compare_inference, policy_tv

__all__ = ["compare_inference", "ComparisonReport", "MethodResult", "policy_tv"]
