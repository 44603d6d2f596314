"""Direct dynamic programming: the references inference is checked against."""
from .soft_vi import elbo, soft_policy_evaluation, soft_value_iteration, value_iteration

__all__ = ["soft_value_iteration", "value_iteration", "soft_policy_evaluation", "elbo"]
