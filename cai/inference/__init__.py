"""Inference in the control-as-inference graphical model."""
from .messages import (DivergenceError, ForwardMessages, backward_messages, forward_messages,
                       posterior_dynamics)
from .sampling import Trajectories, sample_posterior, sample_trajectories

__all__ = [
    "backward_messages", "forward_messages", "posterior_dynamics", "ForwardMessages",
    "DivergenceError", "Trajectories", "sample_trajectories", "sample_posterior",
]
