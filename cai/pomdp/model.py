r"""The partially observable MDP and the policies that see only observations.

A :class:`POMDP` is a finite-horizon :class:`~cai.TabularMDP` plus an observation model. The
convention (Kaelbling, Littman & Cassandra 1998) is that the observation follows the action and
is emitted by the state it leads to::

    s_0 ~ b_0                          (the initial belief, the MDP's initial distribution)
    a_t ~ policy(. | a_0, o_1, ..., a_{t-1}, o_t)
    s_{t+1} ~ P(. | s_t, a_t)
    o_{t+1} ~ Z(. | s_{t+1}, a_t)      observations[s', a, o]
    O_t  :  p(O_t = 1 | s_t, a_t) ∝ exp(r(s_t, a_t) / alpha)

There is no observation at ``t = 0`` (the initial belief is the prior). A policy that sees only
observations is a :class:`FiniteStateController`: a memory ``m_t`` that starts from
``eta_0(m_0)``, chooses actions by ``pi(a_t | m_t)`` and moves on by ``eta(m_{t+1} | m_t, a_t,
o_{t+1})``. With one memory node per history (:meth:`cai.pomdp.BeliefSolution.controller`) it
is any observation-history policy of a finite horizon.

References:
    Kaelbling, Littman & Cassandra (1998), "Planning and acting in partially observable
    stochastic domains", Artificial Intelligence 101; Meuleau, Kim, Kaelbling & Cassandra (1999),
    "Solving POMDPs by searching the space of finite policies" (finite-state controllers).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Sequence

import torch

from cai.mdp.checks import ROW_SUM_TOL, as_tensor, check_distribution, describe
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["POMDP", "FiniteStateController", "check_rows"]


def check_rows(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` unless every row of the last axis is a distribution."""
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError(f"{name}: expected non-negative finite probabilities, got a negative, NaN or infinite entry")
    sums = x.sum(-1)
    dev = (sums - 1).abs()
    if dev.numel() and float(dev.max()) > ROW_SUM_TOL:
        idx = tuple(int(i) for i in torch.nonzero(dev == dev.max())[0])
        raise ValueError(f"{name}: expected each row over the last axis to sum to 1 (tolerance {ROW_SUM_TOL:g}), "
                         f"got {float(sums[idx]):.10g} at index {idx}")


class POMDP:
    """A finite-horizon POMDP: a :class:`~cai.TabularMDP` and ``Z[s', a, o] = p(o_{t+1}=o | s_{t+1}=s', a_t=a)``.

    Immutable, like :class:`~cai.TabularMDP`: build a new one to change anything.

    Args:
        mdp: an unbatched, finite-horizon, undiscounted :class:`~cai.TabularMDP` (dense or
            sparse); its ``initial`` distribution is the initial belief unless ``initial_belief``
            is given.
        observations: ``(S, A, O)`` with ``[s', a, o] = p(o | s', a)`` (the state reached and the
            action that led there), or ``(S, O)`` when the action does not matter.
        initial_belief: optional ``(S,)`` distribution replacing ``mdp.initial``.
        observation_names: optional ``O`` labels.

    Attributes:
        mdp: the underlying :class:`~cai.TabularMDP` (with ``initial`` = the initial belief).
        observations: ``(S, A, O)`` tensor of the MDP's dtype and device.
        observation_names: tuple of ``O`` names, or ``None``.

    Raises:
        TypeError: ``mdp`` is not a :class:`~cai.TabularMDP`, or non-numeric input.
        ValueError: a stationary, discounted or batched MDP; observations of the wrong shape or
            rows that are not distributions; a bad initial belief or names.
    """

    __slots__ = ("mdp", "observations", "observation_names", "_versions")

    def __init__(self, mdp: TabularMDP, observations: ArrayLike, initial_belief: Optional[ArrayLike] = None, *,
                 observation_names: Optional[Sequence[str]] = None) -> None:
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"POMDP: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        mdp.check_unchanged("POMDP")
        if mdp.horizon is None:
            raise ValueError("POMDP: mdp: expected a finite horizon, got horizon=None")
        if mdp.gamma != 1.0:
            raise ValueError(f"POMDP: mdp: expected no discount (a finite horizon stands in for it), got "
                             f"discount={mdp.discount!r}")
        if len(mdp.batch_shape) or mdp.terminal_rewards.dim() != 1:
            raise ValueError(f"POMDP: mdp: expected unbatched rewards, got batch shape {tuple(mdp.batch_shape)}")
        S, A = mdp.n_states, mdp.n_actions
        Z = as_tensor("observations", observations, mdp.dtype, mdp.device)
        if Z.dim() == 2 and Z.shape[0] == S:
            Z = Z.unsqueeze(1).expand(S, A, Z.shape[1]).clone()
        if Z.dim() != 3 or tuple(Z.shape[:2]) != (S, A) or Z.shape[2] == 0:
            raise ValueError(f"observations: expected shape (S, A, O) or (S, O) with S={S}, A={A}, got {describe(Z)}")
        check_rows("observations", Z)
        if initial_belief is not None:
            b0 = check_distribution("initial_belief", initial_belief, S, mdp.dtype, mdp.device)
            mdp = mdp.replace(initial=b0)
        if isinstance(observation_names, str):
            raise TypeError(f"observation_names: expected a sequence of {Z.shape[2]} names, got the string "
                            f"{observation_names!r}")
        if observation_names is not None and len(observation_names) != Z.shape[2]:
            raise ValueError(f"observation_names: expected {Z.shape[2]} names, got {len(observation_names)}")
        object.__setattr__(self, "mdp", mdp)
        object.__setattr__(self, "observations", Z)
        object.__setattr__(self, "observation_names",
                           None if observation_names is None else tuple(str(x) for x in observation_names))
        object.__setattr__(self, "_versions", Z._version)

    def __setattr__(self, key, value):
        raise AttributeError("POMDP is immutable; build a new one")

    def __getstate__(self) -> dict:
        return {"mdp": self.mdp, "observations": self.observations, "observation_names": self.observation_names}

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_versions", self.observations._version)

    def check_unchanged(self, fn: str = "POMDP") -> None:
        """Raise ``ValueError`` if the MDP's or the observation model's tensors were changed in place."""
        self.mdp.check_unchanged(fn)
        if self.observations._version != self._versions:
            raise ValueError(f"{fn}: pomdp: observations was modified in place after the POMDP was built; build a new one")

    @property
    def n_states(self) -> int:
        """Number of hidden states ``S``."""
        return self.mdp.n_states

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return self.mdp.n_actions

    @property
    def n_observations(self) -> int:
        """Number of observation symbols ``O``."""
        return int(self.observations.shape[2])

    @property
    def horizon(self) -> int:
        """Number of decisions ``T``."""
        return int(self.mdp.horizon)

    @property
    def initial_belief(self) -> torch.Tensor:
        """``b_0``, ``(S,)``."""
        return self.mdp.initial

    @property
    def metadata(self) -> Mapping:
        """The MDP's metadata (read-only)."""
        return MappingProxyType(dict(self.mdp.metadata))

    def replace(self, **changes) -> POMDP:
        """A copy with ``mdp``, ``observations``, ``initial_belief`` or ``observation_names`` changed;
        any other keyword goes to :meth:`TabularMDP.replace` (e.g. ``horizon=``)."""
        own = {k: changes.pop(k) for k in ("mdp", "observations", "initial_belief", "observation_names") if k in changes}
        mdp = own.get("mdp", self.mdp)
        if changes:
            mdp = mdp.replace(**changes)
        return POMDP(mdp, own.get("observations", self.observations), own.get("initial_belief"),
                     observation_names=own.get("observation_names", self.observation_names))

    def __repr__(self) -> str:
        return (f"POMDP(S={self.n_states}, A={self.n_actions}, O={self.n_observations}, horizon={self.horizon}, "
                f"{str(self.mdp.dtype).replace('torch.', '')})")


class FiniteStateController:
    """A policy that sees only observations: memory ``m``, actions ``pi(a|m)``, updates ``eta(m'|m, a, o)``.

    Args:
        action_probs: ``(M, A)``, rows are distributions.
        memory_update: ``(M, A, O, M)``, ``[m, a, o, m'] = eta(m' | m, a, o)``; rows over ``m'``
            are distributions.
        initial_memory: ``(M,)`` distribution of ``m_0``; default: node 0.
        dtype, device: of the stored tensors.

    Attributes:
        action_probs, memory_update, initial_memory: the tensors above.

    Raises:
        ValueError: shapes that do not agree, or rows that are not distributions.
    """

    def __init__(self, action_probs: ArrayLike, memory_update: ArrayLike, initial_memory: Optional[ArrayLike] = None,
                 *, dtype: torch.dtype = torch.float64, device: Optional[torch.device] = None) -> None:
        pi = as_tensor("action_probs", action_probs, dtype, device)
        if pi.dim() != 2 or pi.shape[0] == 0 or pi.shape[1] == 0:
            raise ValueError(f"action_probs: expected shape (M, A), got {describe(pi)}")
        M, A = pi.shape
        eta = as_tensor("memory_update", memory_update, dtype, device)
        if eta.dim() != 4 or tuple(eta.shape[:2]) != (M, A) or eta.shape[3] != M:
            raise ValueError(f"memory_update: expected shape (M, A, O, M) with M={M}, A={A}, got {describe(eta)}")
        check_rows("action_probs", pi)
        check_rows("memory_update", eta)
        if initial_memory is None:
            m0 = torch.zeros(M, dtype=dtype, device=pi.device)
            m0[0] = 1.0
        else:
            m0 = check_distribution("initial_memory", initial_memory, M, dtype, device)
        self.action_probs, self.memory_update, self.initial_memory = pi, eta, m0

    @property
    def n_memory(self) -> int:
        """Number of memory nodes ``M``."""
        return int(self.action_probs.shape[0])

    @classmethod
    def memoryless(cls, action_probs: ArrayLike, n_observations: int, *, dtype: torch.dtype = torch.float64
                   ) -> FiniteStateController:
        """The open-loop policy that plays ``action_probs`` ``(A,)`` at every step (one memory node)."""
        pi = as_tensor("action_probs", action_probs, dtype).reshape(1, -1)
        return cls(pi, torch.ones(1, pi.shape[1], int(n_observations), 1, dtype=dtype), dtype=dtype)

    def check_for(self, pomdp: POMDP, fn: str) -> None:
        """Raise ``ValueError`` unless the controller's ``A`` and ``O`` are those of ``pomdp``."""
        A, n_obs = self.memory_update.shape[1], self.memory_update.shape[2]
        if (A, n_obs) != (pomdp.n_actions, pomdp.n_observations):
            raise ValueError(f"{fn}: controller: expected A={pomdp.n_actions} actions and O={pomdp.n_observations} "
                             f"observations, got A={A}, O={n_obs}")

    def __repr__(self) -> str:
        M, A, n_obs, _ = self.memory_update.shape
        return f"FiniteStateController(M={M}, A={A}, O={n_obs})"
