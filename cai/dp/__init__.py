"""Direct dynamic programming: the references inference is checked against."""
from cai.dp.policy_iteration import modified_policy_iteration, policy_iteration, soft_policy_iteration
from cai.dp.soft_vi import elbo, soft_policy_evaluation, soft_value_iteration, value_iteration
from cai.dp.visitation import PolicyMarginals, expected_return, expected_rewards, policy_marginals, policy_visitation

__all__ = ["soft_value_iteration", "value_iteration", "soft_policy_evaluation", "elbo",
           "policy_visitation", "policy_marginals", "PolicyMarginals", "soft_policy_iteration", "policy_iteration", "modified_policy_iteration",
           "expected_rewards", "expected_return"]
