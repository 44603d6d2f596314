"""The record every backward solver returns."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Callable, Optional

import torch

from cai.ops.backup import q_backup
from cai.ops.recursion import Recursion

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

__all__ = ["Solution"]


class Solution:
    """Soft (or hard) values, Q-values and policy of a solved MDP. Immutable.

    Finite horizon ``T`` (``*b`` is the broadcast of the reward batch and alpha's shape):

    Attributes:
        V: ``(*b, T+1, S)`` values in reward units, ``V[..., T, :] = r_T``.
        Q: ``(*b, T, S, A)`` Q-values (``-inf`` for forbidden actions).
        policy: ``(*b, T, S, A)``, rows sum to 1.
        log_policy: ``(*b, T, S, A)``.
        log_evidence: ``(*b,)`` ``log p(O_{0:T-1})`` (exact inference only, else ``None``).
        value: ``(*b,)`` ``sum_s p0(s) V_0(s)``.
        alpha: the temperature tensor (shape broadcastable to ``b``).
        method: ``"exact"``, ``"soft_vi"``, ``"vi"``, ``"soft_policy_iteration"`` or ``"policy_evaluation"``.
        iterations, residual: for stationary problems, the iterations used and the final
            ``max |V_new - V|``; ``None`` for finite horizons.

    Stationary problems drop the time axis: ``V (*b, S)``, ``Q`` and ``policy (*b, S, A)``.

    When the solver was asked to keep less (``keep="values"`` or ``"first"``), ``Q`` and the
    policy are recomputed from ``V`` on first access; :meth:`q_at` and :meth:`policy_at` compute
    one step without materialising the rest.
    """

    def __init__(self, rec: Recursion, mdp: TabularMDP, alpha: torch.Tensor, mode: str, aggregate: Callable,
                 method: str, log_prior: Optional[torch.Tensor], log_evidence: Optional[torch.Tensor] = None) -> None:
        self._rec = rec
        self.mdp = mdp
        self.alpha = alpha
        self._mode = mode
        self._aggregate = aggregate
        self.method = method
        self.log_prior = log_prior
        self.log_evidence = log_evidence
        self.iterations = rec.iterations
        self.residual = rec.residual
        self.V = torch.stack(rec.V, -2) if mdp.horizon is not None else rec.V[0]
        self._Q = None
        self._log_pi = None

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
                self._Q, self._log_pi = self._rec.Q[0], self._rec.log_policy[0]
            else:
                steps = [self._step(t) for t in range(self.mdp.horizon)]
                self._Q = torch.stack([q for q, _ in steps], -3)
                self._log_pi = torch.stack([p for _, p in steps], -3)

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
        if self.method not in ("soft_vi", "soft_policy_iteration"):
            raise AttributeError(f"max_elbo is defined for soft value iteration, not for {self.method!r}")
        return self.value / self.alpha

    def __repr__(self) -> str:
        extra = "" if self.iterations is None else f", iterations={self.iterations}, residual={self.residual:.3g}"
        return f"Solution(method={self.method!r}, V={tuple(self.V.shape)}{extra})"
