"""The record every backward solver returns."""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch

from cai.mdp.io import load_arrays, prefixed, save_arrays, unprefixed
from cai.mdp.tabular import TabularMDP
from cai.methods import METHODS, SOFT_MODIFIED_POLICY_ITERATION, SOFT_POLICY_ITERATION, SOFT_VI
from cai.ops.backup import q_backup
from cai.ops.recursion import Recursion
from cai.typing import Device, PathLike

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
        error_bound: for stationary dynamic programming (``gamma < 1``), a guaranteed bound on
            ``max_s |V(s) - V*(s)|``, the distance of the returned values to the exact fixed point
            (MacQueen's span bound, :func:`cai.ops.recursion.span_bounds`); at most
            ``tol * max(1, max |V|)`` when the solver converged. ``None`` for finite horizons and
            exact inference.

    Stationary problems drop the time axis: ``V (*b, S)``, ``Q`` and ``policy (*b, S, A)``.

    A batched finite-horizon solve that keeps every step (``keep="all"``, CPU, no autograd) stores
    ``V``, ``Q`` and the log policy with the batch members last in memory (the layout its steps
    compute in, so no copy per step), and so does soft value iteration's batched ``V`` with
    ``keep="values"``: the tensors have the shapes above but are not contiguous (``reshape`` or
    ``contiguous()`` before ``view``); their values do not depend on the layout.

    With ``keep="V0"`` (finite horizon) only ``V0``, ``value``, ``log_evidence`` and ``max_elbo``
    exist, in memory independent of ``T``; ``V``, ``Q``, the policy, :meth:`q_at` and
    :meth:`policy_at` raise ``AttributeError`` saying so (:attr:`first_value_only` tells).

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
        init(self, "error_bound", rec.error_bound)
        if rec.first_value_only:
            init(self, "_V0", rec.V[0])            # keep="V0": no V, Q or policy (see __getattr__)
        elif rec.stacked is not None:
            init(self, "V", rec.stacked[0])        # steps written into preallocated outputs
        else:
            init(self, "V", torch.stack(rec.V, -2) if mdp.horizon is not None else rec.V[0])
        init(self, "_Q", None if rec.stacked is None else rec.stacked[1])
        init(self, "_log_pi", None if rec.stacked is None else rec.stacked[2])

    def __getattr__(self, name: str) -> object:
        # only reached when ordinary lookup fails (or a property raised AttributeError): V, Q and
        # the policy of a solution that kept V_0 alone
        if name in ("V", "Q", "policy", "log_policy") and "_V0" in self.__dict__:
            raise AttributeError(_V0_ONLY.format(name))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def first_value_only(self) -> bool:
        """Whether the solver kept ``V_0`` alone (``keep="V0"``): then ``V``, ``Q`` and the policy
        are not available (``V0``, ``value``, ``log_evidence`` and ``max_elbo`` are)."""
        return "_V0" in self.__dict__

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

    @property
    def horizon(self) -> Optional[int]:
        return self.mdp.horizon

    def _step(self, t: Optional[int]):
        if self.first_value_only:
            raise AttributeError(_V0_ONLY.format("Q and the policy"))
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
        if self.first_value_only:
            raise AttributeError(_V0_ONLY.format("Q and the policy"))
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
        if self.first_value_only:
            return self._V0
        return self.V[..., 0, :] if self.mdp.horizon is not None else self.V

    @property
    def value(self) -> torch.Tensor:
        """``sum_s p0(s) V_0(s)``, shape ``(*b,)`` (states with ``p0(s) = 0`` do not count, even at ``V = -inf``)."""
        p0, v0 = self.mdp.initial, self.V0
        return torch.where(p0 > 0, p0 * v0, torch.zeros((), dtype=v0.dtype, device=v0.device)).sum(-1)

    @property
    def max_elbo(self) -> torch.Tensor:
        """For soft value (or policy) iteration: the maximal ELBO ``sum_s p0(s) V_0(s) / alpha``, ``(*b,)``."""
        if self.method not in (SOFT_VI, SOFT_POLICY_ITERATION, SOFT_MODIFIED_POLICY_ITERATION):
            raise AttributeError(f"max_elbo is defined for soft value iteration, not for {self.method!r}")
        return self.value / self.alpha

    # ------------------------------------------------------------------------------------------
    # pickling, copying, files

    def __getstate__(self) -> dict:
        """Everything but the solver's closure: ``Q`` and the policy are materialised (so a
        solution kept with ``keep="values"`` travels at its full size)."""
        if self.first_value_only:
            return {k: v for k, v in self.__dict__.items() if k not in ("_rec", "_aggregate")}
        self._materialise()
        state = {k: v for k, v in self.__dict__.items() if k not in ("_rec", "_aggregate", "_Q", "_log_pi")}
        state["Q"], state["log_policy"] = self._Q, self._log_pi
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state.setdefault("error_bound", None)       # (pickled before 0.3)
        if "_V0" in state:
            for k, v in state.items():
                object.__setattr__(self, k, v)
            object.__setattr__(self, "_rec", Recursion([state["_V0"]], [], [], state["iterations"], state["residual"],
                                                       state["error_bound"], True))
            object.__setattr__(self, "_aggregate", _stored_aggregate)
            return
        Q, log_pi = state.pop("Q"), state.pop("log_policy")
        for k, v in state.items():
            object.__setattr__(self, k, v)
        if state["mdp"].horizon is None:
            rec = Recursion([state["V"]], [Q], [log_pi], state["iterations"], state["residual"], state["error_bound"])
        else:
            rec = Recursion(list(state["V"].unbind(-2)), list(Q.unbind(-3)), list(log_pi.unbind(-3)),
                            state["iterations"], state["residual"], state["error_bound"])
        object.__setattr__(self, "_rec", rec)
        object.__setattr__(self, "_aggregate", _stored_aggregate)
        object.__setattr__(self, "_Q", Q)
        object.__setattr__(self, "_log_pi", log_pi)

    def save(self, path: PathLike) -> str:
        """Write the solution and its MDP to an ``.npz`` file; :meth:`load` rebuilds it bit for bit.

        Format (NumPy arrays): the MDP's arrays (:meth:`cai.TabularMDP.to_arrays`) under
        ``mdp/``; ``V``, ``Q``, ``log_policy`` (materialised), ``alpha``; ``log_prior`` and
        ``log_evidence`` when present; ``method`` and ``mode`` (strings); ``iterations`` (-1 for
        none), ``residual`` and ``error_bound`` (NaN for none).

        Args:
            path: file name; ``".npz"`` is appended when missing.

        Returns:
            The path written.
        """
        def arr(t):
            return t.detach().cpu().numpy()

        d = prefixed("mdp", self.mdp.to_arrays())
        if self.first_value_only:
            d.update(V0=arr(self._V0))
        else:
            self._materialise()
            d.update(V=arr(self.V), Q=arr(self._Q), log_policy=arr(self._log_pi))
        d.update(alpha=arr(self.alpha), method=np.array(self.method), mode=np.array(self._mode),
                 iterations=np.array(-1 if self.iterations is None else self.iterations),
                 residual=np.array(np.nan if self.residual is None else self.residual),
                 error_bound=np.array(np.nan if self.error_bound is None else self.error_bound))
        if self.log_prior is not None:
            d["log_prior"] = arr(self.log_prior)
        if self.log_evidence is not None:
            d["log_evidence"] = arr(self.log_evidence)
        return save_arrays(path, d)

    @classmethod
    def load(cls, path: PathLike, device: Device = None) -> Solution:
        """Read a solution written by :meth:`save` (with a new, equal :class:`~cai.TabularMDP`).

        Raises:
            ValueError: naming ``path`` when the file does not exist or is not a saved solution.
        """
        f = load_arrays(path, "Solution.load")
        if ("V" not in f and "V0" not in f) or "method" not in f:
            raise ValueError(f"Solution.load: path: expected a file written by Solution.save, got one with keys {sorted(f)[:6]}")
        mdp = TabularMDP.from_arrays(unprefixed("mdp", f), device=device)

        def ten(k):
            return torch.as_tensor(f[k], device=mdp.device) if k in f else None

        iterations, residual = int(f["iterations"]), float(f["residual"])
        error_bound = float(f["error_bound"]) if "error_bound" in f else math.nan
        sol = cls.__new__(cls)
        state = dict(
            mdp=mdp, alpha=ten("alpha"), _mode=str(f["mode"]), method=str(f["method"]),
            log_prior=ten("log_prior"), log_evidence=ten("log_evidence"),
            iterations=None if iterations < 0 else iterations,
            residual=None if math.isnan(residual) else residual,
            error_bound=None if math.isnan(error_bound) else error_bound,
        )
        if "V0" in f:
            state.update(_V0=ten("V0"), _Q=None, _log_pi=None)
        else:
            state.update(V=ten("V"), Q=ten("Q"), log_policy=ten("log_policy"))
        sol.__setstate__(state)
        return sol

    def __repr__(self) -> str:
        extra = "" if self.iterations is None else f", iterations={self.iterations}, residual={self.residual:.3g}"
        if self.first_value_only:
            return f"Solution(method={self.method!r}, V0={tuple(self._V0.shape)}{extra})"
        return f"Solution(method={self.method!r}, V={tuple(self.V.shape)}{extra})"


_V0_ONLY = ("{}: not available, the solver kept V_0 alone (keep='V0'); "
            "solve again with keep='values' or keep='all'")


def _stored_aggregate(Q, t):  # pragma: no cover - a loaded solution stores every step
    raise RuntimeError("a loaded Solution has every step stored; its aggregate is never called")
