"""Linear-Gaussian control as inference: exact quadratic messages for :class:`cai.LinearGaussianSystem`.

Soft value iteration (MaxEnt LQR), the risk-seeking exact backward messages, and Gaussian
forward marginals; checked against the Riccati recursion and a fine discretisation.
"""
from cai.gaussian.messages import (
                                   LinearGaussianMarginals,
                                   LinearGaussianMessages,
                                   lg_backward_messages,
                                   lg_forward_messages,
                                   lg_soft_value_iteration,
                                   quadratic_value,
)

__all__ = ["lg_soft_value_iteration", "lg_backward_messages", "lg_forward_messages", "LinearGaussianMessages",
           "LinearGaussianMarginals", "quadratic_value"]
