"""Pure tensor kernels: log-space products, the soft backup and its semirings, the recursion."""
from cai.ops.backup import EXACT, EXPECTATION, EXPECTED, LOG_EXPECTATION, hard_max, policy_expectation, q_backup, soft_max
from cai.ops.logspace import log_matmul_exp, logsumexp, matmul
from cai.ops.recursion import ConvergenceWarning, DivergenceError, backward

__all__ = [
    "LOG_EXPECTATION", "EXPECTATION", "EXACT", "EXPECTED", "q_backup", "soft_max", "hard_max", "policy_expectation",
    "log_matmul_exp", "logsumexp", "matmul", "backward", "ConvergenceWarning", "DivergenceError",
]
