"""Partial observability: the POMDP as a graphical model with observations.

:class:`POMDP` (a :class:`~cai.TabularMDP` plus ``p(o | s', a)``), policies that see only
observations (:class:`FiniteStateController`), exact inference with observations
(:func:`filter_beliefs`, :func:`controller_messages`, and Pyro's enumeration in
:mod:`cai.pomdp.ppl`), and control on the belief MDP (:class:`BeliefTree`,
:func:`belief_soft_value_iteration`, :func:`belief_value_iteration`). The named worlds (the tiger
problem, a noisy-sensor grid) live in :mod:`cai.worlds.pomdp` and the registry.
"""
from cai.pomdp.belief import BeliefSolution, BeliefTree, belief_soft_value_iteration, belief_value_iteration
from cai.pomdp.inference import BeliefFilter, ControllerMessages, controller_messages, filter_beliefs
from cai.pomdp.model import POMDP, FiniteStateController
from cai.pomdp.ppl import pyro_pomdp_log_evidence, pyro_pomdp_marginals

__all__ = ["POMDP", "FiniteStateController", "filter_beliefs", "BeliefFilter", "controller_messages",
           "ControllerMessages", "pyro_pomdp_log_evidence", "pyro_pomdp_marginals", "BeliefTree", "BeliefSolution",
           "belief_soft_value_iteration", "belief_value_iteration"]
