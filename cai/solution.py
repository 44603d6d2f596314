"""The record every backward solver returns."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Callable, Optional

import torch

from cai.methods import METHODS, SOFT_POLICY_ITERATION, SOFT_VI
from cai.ops.backup import q_backup
from cai.ops.recursion import Recursion

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["Solution"]


class Solution:
    """Soft (or hard) values, Q-values and policy of a solved MDP. Immutable: assigning to an
    attribute raises ``AttributeError``.

    Finite horizon ``T`` (``*b`` is the broadcast of the reward batch and alpha's shape):

    Attributes:
        V: ``(*b, T+1, S)`` values in reward units, ``V[..., T, :] = r_T``.
        Q: ``(*b, T, S, A)`` Q-values (``-inf`` for forbidden actions).
        policy: ``(*b, T, S, A)``, rows sum to 1.
        log_policy: ``(*b, T, S, A)``.
        log_evidence: ``(*b,)`` ``log p(O_{0:T-1})`` (exact inference only, else ``None``).
        value: ``(*b,)`` ``sum_s p0(s) V_0(s)``.
        alpha: the temperature tensor (shape broadcastable to ``b``).
        method: the method name from :data:`cai.methods.METHODS` that produced it: ``"exact"``,
            ``"soft_vi"``, ``"vi"``, ``"soft_policy_iteration"`` or ``"policy_evaluation"``.
        iterations, residual: for stationary problems, the iterations used and the final
            ``max |V_new - V|``; ``None`` for finite horizons.

    Stationary problems drop the time axis: ``V (*b, S)``, ``Q`` and ``policy (*b, S, A)``.

    When the solver was asked to keep less (``keep="values"`` or ``"first"``), ``Q`` and the
    policy are recomputed from ``V`` on first access; :meth:`q_at` and :meth:`policy_at` compute
    one step without materialising the rest (the only state that changes after construction,
    a cache set inside the class).

    A solution pickles: Q and the policy are materialised first, so the unpickled copy needs
    no recomputation (and no aggregator function, which may not pickle).
    """

    def __init__(self, rec: Recursion, mdp: TabularMDP, alpha: torch.Tensor, mode: str, aggregate: Optional[Callable],
                 method: str, log_prior: Optional[torch.Tensor], log_evidence: Optional[torch.Tensor] = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method: expected a name from cai.methods.METHODS {sorted(METHODS)}, got {method!r}")
        init = object.__setattr__
        init(self, "_rec", rec)
        init(self, "mdp", mdp)
        init(self, "alpha", alpha)
        init(self, "_mode", mode)
        init(self, "_aggregate", aggregate)
        init(self, "method", method)
        init(self, "log_prior", log_prior)
        init(self, "log_evidence", log_evidence)
        init(self, "iterations", rec.iterations)
        init(self, "residual", rec.residual)
        init(self, "V", torch.stack(rec.V, -2) if mdp.horizon is not None else rec.V[0])
        init(self, "_Q", None)
        init(self, "_log_pi", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Solution is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Solution is immutable: cannot delete {name!r}")

    def with_log_evidence(self, log_evidence: torch.Tensor) -> Solution:
        """A copy with ``log_evidence`` set (the constructor of exact inference's solution).

        Args:
            log_evidence: ``(*b,)`` ``log p(O_{0:T-1})``.

        Returns:
            A new :class:`Solution` sharing every tensor with this one.
        """
        new = object.__new__(Solution)
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, v)
        object.__setattr__(new, "log_evidence", log_evidence)
        return new

    def __getstate__(self) -> dict:
        self._materialise()
        state = dict(self.__dict__)
        if self.mdp.horizon is None:
            Qs, pis = [self._Q], [self._log_pi]
        else:
            Qs = list(self._Q.unbind(-3))
            pis = list(self._log_pi.unbind(-3))
        rec = self._rec
        state["_rec"] = Recursion(V=rec.V, Q=Qs, log_policy=pis, iterations=rec.iterations, residual=rec.residual)
        state["_aggregate"] = None              # every step is stored: the aggregator is never called
        return state

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    @property
    def horizon(self) -> Optional[int]:
        return self.mdp.horizon

    def _step(self, t: Optional[int]):
        rec = self._rec
        i = 0 if t is None else t
        if rec.Q[i] is not None:
            return rec.Q[i], rec.log_policy[i]
        Q = q_backup(self.mdp, t, rec.V[i + 1], self.alpha, self._mode)
        _, log_pi = self._aggregate(Q, t)
        return Q, log_pi

    def _check_t(self, t):
        if self.mdp.horizon is None:
            if t not in (None, 0):
                raise ValueError(f"t: a stationary solution has no time index, got t={t!r}")
            return None
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not (0 <= t < self.mdp.horizon):
            raise ValueError(f"t: expected an integer in [0, {self.mdp.horizon - 1}], got {t!r}")
        return int(t)

    def q_at(self, t: Optional[int] = None) -> torch.Tensor:
        """``Q_t`` of shape ``(*b, S, A)`` (``t`` is ignored for stationary problems)."""
        return self._step(self._check_t(t))[0]

    def policy_at(self, t: Optional[int] = None) -> torch.Tensor:
        """``pi_t`` of shape ``(*b, S, A)``."""
        return torch.exp(self.log_policy_at(t))

    def log_policy_at(self, t: Optional[int] = None) -> torch.Tensor:
        """``log pi_t`` of shape ``(*b, S, A)`` (``-inf`` with zero gradient at impossible actions)."""
        return self._step(self._check_t(t))[1]

    def _materialise(self):
        if self._Q is None:
            if self.mdp.horizon is None:
                Q, log_pi = self._rec.Q[0], self._rec.log_policy[0]
            else:
                steps = [self._step(t) for t in range(self.mdp.horizon)]
                Q = torch.stack([q for q, _ in steps], -3)
                log_pi = torch.stack([p for _, p in steps], -3)
            object.__setattr__(self, "_Q", Q)               # the lazily materialised cache
            object.__setattr__(self, "_log_pi", log_pi)

    @property
    def Q(self) -> torch.Tensor:
        self._materialise()
        return self._Q

    @property
    def log_policy(self) -> torch.Tensor:
        self._materialise()
        return self._log_pi

    @property
    def policy(self) -> torch.Tensor:
        return torch.exp(self.log_policy)

    @property
    def V0(self) -> torch.Tensor:
        """Values at the first step, ``(*b, S)``."""
        return self.V[..., 0, :] if self.mdp.horizon is not None else self.V

    @property
    def value(self) -> torch.Tensor:
        """``sum_s p0(s) V_0(s)``, shape ``(*b,)``."""
        return (self.mdp.initial * self.V0).sum(-1)

    @property
    def max_elbo(self) -> torch.Tensor:
        """For soft value (or policy) iteration: the maximal ELBO ``sum_s p0(s) V_0(s) / alpha``, ``(*b,)``."""
        if self.method not in (SOFT_VI, SOFT_POLICY_ITERATION):
            raise AttributeError(f"max_elbo is defined for soft value iteration, not for {self.method!r}")
        return self.value / self.alpha

    def __repr__(self) -> str:
        extra = "" if self.iterations is None else f", iterations={self.iterations}, residual={self.residual:.3g}"
        return f"Solution(method={self.method!r}, V={tuple(self.V.shape)}{extra})"
