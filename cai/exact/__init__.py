"""Exact inference in the control-as-inference graphical model.

Backward messages (soft Q and V as log-messages, the log evidence), forward messages (posterior
state and state-action marginals), the posterior's own dynamics, and sampling trajectories from
a policy or from the exact posterior.
"""
from cai.exact.messages import LINEAR_SOLVE_MAX_STATES, DivergenceError, ForwardMessages, backward_messages, forward_messages, posterior_dynamics
from cai.exact.sampling import Trajectories, sample_posterior, sample_trajectories, transition_rows

__all__ = [
    "backward_messages", "forward_messages", "posterior_dynamics", "ForwardMessages", "DivergenceError",
    "LINEAR_SOLVE_MAX_STATES", "Trajectories", "sample_trajectories", "sample_posterior", "transition_rows",
]
