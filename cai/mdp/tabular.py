"""The tabular Markov decision process: a validated, immutable container.

A ``TabularMDP`` holds the MDP alone: dynamics, reward, terminal reward, initial state
distribution and the horizon and/or discount. The temperature ``alpha`` and the action prior
complete the graphical model and are arguments of inference, so one MDP serves a sweep.
"""
from __future__ import annotations

import copy
import json
import math
import warnings
from types import MappingProxyType
from typing import Any, Callable, Hashable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from cai.mdp.checks import (
    ROW_SUM_TOL,
    as_tensor,
    check_action_prior,
    check_alpha,
    check_distribution,
    check_dtype_device,
    describe,
)
from cai.mdp.functions import arrays_from_functions
from cai.mdp.io import load_arrays, save_arrays
from cai.typing import Alpha, ArrayLike, Device, PathLike, RewardFn, TransitionFn

__all__ = ["TabularMDP", "ROW_SUM_TOL", "check_model", "absorbing_states", "uniform_action_prior", "ACTION_PRIORS"]

#: Tolerance on ``|sum_s' P(s'|s,a) - 1|`` (and on the initial distribution's sum).

_LAYOUTS = ("s", "sa", "tsa", "sas")


def _is_scipy_sparse(x) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(x)


def make_csr(crow, col, values, size) -> torch.Tensor:
    """``torch.sparse_csr_tensor`` without the beta-feature warning (invariants are checked by us).

    Indices are stored as int32 whenever they fit: the CPU sparse kernels take 32-bit indices
    and would otherwise convert ``nnz + n`` int64 indices on every mat-vec (more than half its cost).
    """
    if values.numel() < 2 ** 31 - 1 and max(size) < 2 ** 31 - 1:
        crow, col = crow.to(torch.int32), col.to(torch.int32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)


def _to_sparse_csr(x, n_states: int, dtype, device) -> torch.Tensor:
    """Convert a torch or scipy sparse ``(S*A, S)`` matrix to a torch CSR tensor."""
    if _is_scipy_sparse(x):
        x = x.tocsr()
        x.sum_duplicates()
        x.sort_indices()
        t = make_csr(
            torch.as_tensor(x.indptr.astype(np.int64)),
            torch.as_tensor(x.indices.astype(np.int64)),
            torch.as_tensor(np.asarray(x.data, dtype=np.float64)),
            size=x.shape,
        )
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
            t = x.coalesce().to_sparse_csr() if x.layout == torch.sparse_coo else x.to_sparse_csr()
    if t.dim() != 2 or t.shape[1] != n_states or t.shape[0] % n_states != 0:
        raise ValueError(
            f"transitions: expected a sparse matrix of shape (S*A, S) with S = {n_states}, "
            f"got {tuple(t.shape)}"
        )
    return make_csr(
        t.crow_indices().to(device), t.col_indices().to(device), t.values().to(dtype=dtype, device=device),
        size=tuple(t.shape),
    )


class TabularMDP:
    """A finite MDP ``(P, r, r_T, p0, T, gamma)``, validated on construction and immutable.

    Args:
        transitions: ``P[s, a, s']``, dense of shape ``(S, A, S)``, or sparse (torch sparse
            COO/CSR or ``scipy.sparse``) of shape ``(S*A, S)`` with row ``s*A + a``. Rows must be
            non-negative and sum to 1 within :data:`ROW_SUM_TOL`.
        rewards: ``r`` in one of the layouts (after any leading batch dimensions):
            ``"s"`` ``(S,)`` state reward, the same for every action;
            ``"sa"`` ``(S, A)``;
            ``"tsa"`` ``(T, S, A)`` time-varying (needs ``horizon``);
            ``"sas"`` ``(S, A, S)`` ``r(s, a, s')`` (needs dense transitions).
            ``-inf`` marks a forbidden action; ``+inf`` and NaN are errors.
        initial: ``p0[s]`` of shape ``(S,)``; ``None`` means uniform.
        horizon: number of decisions ``T >= 1``; ``None`` for the stationary problem.
        discount: ``gamma`` in (0, 1] (required in (0, 1) without a horizon). A discount is a
            death probability ``1 - gamma`` of moving to an absorbing state worth 0.
        terminal_rewards: ``r_T[s]`` of shape ``(*batch, S)``; default 0. Must be finite.
        reward_layout: one of ``"s", "sa", "tsa", "sas"``; inferred from ``rewards.ndim`` when
            ``None``. Give it whenever ``rewards`` has leading batch dimensions (a batch of
            reward functions solved in one call), or when the shape is ambiguous.
        state_names, action_names: optional sequences of ``S`` / ``A`` labels.
        metadata: optional JSON-serialisable mapping carried along (builders store the
            geometry used for plotting here, e.g. ``{"kind": "grid", "shape": (H, W), ...}``).
        dtype: floating dtype of every stored tensor (default ``torch.float64``).
        device: device of every stored tensor.

    Attributes:
        transitions: dense ``(S, A, S)`` or sparse CSR ``(S*A, S)`` tensor.
        rewards: ``(*batch, S, A)``, ``(*batch, T, S, A)`` or ``(*batch, S, A, S)``.
        reward_layout: ``"sa"``, ``"tsa"`` or ``"sas"`` (``"s"`` is stored expanded as ``"sa"``).
        terminal_rewards: ``(*batch, S)`` (batch may be empty).
        initial: ``(S,)``.
        batch_shape: leading batch shape of the rewards.

    Raises:
        ValueError: naming the argument, the expected and the actual value, for any invalid
            input (see the checks in the code below).
        TypeError: for non-numeric input.
    """

    __slots__ = (
        "transitions", "rewards", "reward_layout", "terminal_rewards", "initial", "horizon",
        "discount", "state_names", "action_names", "batch_shape", "metadata", "_frozen",
        "_min_p", "_versions",
    )

    def __init__(
        self,
        transitions: ArrayLike,
        rewards: ArrayLike,
        initial: Optional[ArrayLike] = None,
        horizon: Optional[int] = None,
        discount: Optional[float] = None,
        *,
        terminal_rewards: Optional[ArrayLike] = None,
        reward_layout: Optional[str] = None,
        state_names: Optional[Sequence[str]] = None,
        action_names: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping] = None,
        dtype: torch.dtype = torch.float64,
        device: Device = None,
    ) -> None:
        device = check_dtype_device(dtype, device)

        # --- transitions -------------------------------------------------------------------
        sparse_in = _is_scipy_sparse(transitions) or (
            isinstance(transitions, torch.Tensor) and transitions.layout != torch.strided
        )
        if sparse_in:
            n_states = transitions.shape[1]
            P = _to_sparse_csr(transitions, n_states, dtype, device)
            n_actions = P.shape[0] // n_states
            vals = P.values()
            if bool(torch.isnan(vals).any()) or bool((vals < 0).any()):
                raise ValueError("transitions: expected non-negative probabilities, got a negative or NaN entry")
            row_sums = torch.zeros(P.shape[0], dtype=dtype, device=vals.device)
            counts = P.crow_indices().diff()
            row_sums.index_add_(0, torch.repeat_interleave(torch.arange(P.shape[0], device=vals.device), counts), vals)
            row_sums = row_sums.reshape(n_states, n_actions)
        else:
            P = as_tensor("transitions", transitions, dtype, device)
            if P.dim() != 3 or P.shape[0] != P.shape[2] or P.shape[0] == 0 or P.shape[1] == 0:
                raise ValueError(
                    f"transitions: expected a dense array of shape (S, A, S) or a sparse (S*A, S) "
                    f"matrix, got {describe(P)}"
                )
            n_states, n_actions = P.shape[0], P.shape[1]
            if bool(torch.isnan(P).any()) or bool((P < 0).any()):
                raise ValueError("transitions: expected non-negative probabilities, got a negative or NaN entry")
            row_sums = P.sum(-1)
        dev = (row_sums - 1).abs()
        if dev.numel() and dev.max().item() > ROW_SUM_TOL:
            s, a = np.unravel_index(int(dev.argmax()), tuple(dev.shape))
            raise ValueError(
                f"transitions: expected each row P[s, a, :] to sum to 1 (tolerance {ROW_SUM_TOL:g}), "
                f"got {row_sums[s, a].item():.10g} at s={s}, a={a}"
            )
        S, A = int(n_states), int(n_actions)

        # --- horizon and discount ------------------------------------------------------------
        if horizon is not None:
            if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
                raise ValueError(f"horizon: expected an integer >= 1 or None, got {horizon!r}")
            if horizon < 1:
                raise ValueError(f"horizon: expected an integer >= 1 or None, got {horizon!r}")
            horizon = int(horizon)
        if discount is not None:
            if isinstance(discount, torch.Tensor):
                discount = float(discount.item())
            if isinstance(discount, bool) or not isinstance(discount, (int, float, np.floating, np.integer)):
                raise ValueError(f"discount: expected a number in (0, 1], got {discount!r}")
            discount = float(discount)
            if not (0.0 < discount <= 1.0):
                raise ValueError(f"discount: expected a number in (0, 1], got {discount!r}")
        if horizon is None and (discount is None or discount >= 1.0):
            raise ValueError(
                f"discount: the stationary (horizon=None) problem needs a discount in (0, 1), "
                f"got {discount!r}; give a horizon for an undiscounted problem"
            )

        # --- rewards ------------------------------------------------------------------------
        r = as_tensor("rewards", rewards, dtype, device)
        if reward_layout is None:
            reward_layout = self._infer_layout(r.shape, S, A, horizon)
        if reward_layout not in _LAYOUTS:
            raise ValueError(f"reward_layout: expected one of {_LAYOUTS}, got {reward_layout!r}")
        core = {"s": (S,), "sa": (S, A), "tsa": (horizon, S, A), "sas": (S, A, S)}[reward_layout]
        if reward_layout == "tsa" and horizon is None:
            raise ValueError("rewards: time-varying rewards (layout 'tsa') need a horizon, got horizon=None")
        if reward_layout == "sas" and P.layout != torch.strided:
            raise ValueError("rewards: r(s, a, s') rewards (layout 'sas') need dense (S, A, S) transitions, got sparse ones")
        k = len(core)
        if r.dim() < k or tuple(r.shape[-k:]) != core:
            raise ValueError(
                f"rewards: expected trailing shape {core} for layout {reward_layout!r} "
                f"(S={S}, A={A}, T={horizon}), got {tuple(r.shape)}"
            )
        if bool(torch.isnan(r).any()):
            raise ValueError("rewards: expected no NaN, got a NaN entry")
        if bool((r == math.inf).any()):
            raise ValueError("rewards: expected finite rewards or -inf (forbidden action), got +inf")
        if reward_layout == "s":
            r = r.unsqueeze(-1).expand(*r.shape, A).clone()
            reward_layout = "sa"
        batch_shape = tuple(r.shape[: r.dim() - (3 if reward_layout in ("tsa", "sas") else 2)])
        self._check_forbidden(r, reward_layout, P)

        # --- terminal rewards and initial distribution -------------------------------------
        if terminal_rewards is None:
            rT = torch.zeros(S, dtype=dtype, device=r.device)
        else:
            rT = as_tensor("terminal_rewards", terminal_rewards, dtype, device)
            if rT.dim() < 1 or rT.shape[-1] != S:
                raise ValueError(f"terminal_rewards: expected trailing shape (S,) = ({S},), got {tuple(rT.shape)}")
            if not bool(torch.isfinite(rT).all()):
                raise ValueError("terminal_rewards: expected finite values, got an infinite or NaN entry")
            try:
                torch.broadcast_shapes(rT.shape[:-1], r.shape[: r.dim() - (3 if reward_layout in ("tsa", "sas") else 2)])
            except RuntimeError:
                raise ValueError(
                    f"terminal_rewards: expected a batch shape that broadcasts against the rewards' batch shape "
                    f"{tuple(r.shape[: r.dim() - (3 if reward_layout in ('tsa', 'sas') else 2)])}, got {tuple(rT.shape[:-1])}"
                ) from None
        if initial is None:
            p0 = torch.full((S,), 1.0 / S, dtype=dtype, device=r.device)
        else:
            p0 = check_distribution("initial", initial, S, dtype, device)

        for nm, names, n in (("state_names", state_names, S), ("action_names", action_names, A)):
            if isinstance(names, str):
                raise TypeError(f"{nm}: expected a sequence of {n} names, got the string {names!r}")
            if names is not None and len(names) != n:
                raise ValueError(f"{nm}: expected {n} names, got {len(names)}")

        object.__setattr__(self, "transitions", P)
        object.__setattr__(self, "rewards", r)
        object.__setattr__(self, "reward_layout", reward_layout)
        object.__setattr__(self, "terminal_rewards", rT)
        object.__setattr__(self, "initial", p0)
        object.__setattr__(self, "horizon", horizon)
        object.__setattr__(self, "discount", discount)
        object.__setattr__(self, "state_names", tuple(str(x) for x in state_names) if state_names is not None else None)
        object.__setattr__(self, "action_names", tuple(str(x) for x in action_names) if action_names is not None else None)
        object.__setattr__(self, "batch_shape", torch.Size(batch_shape))
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata: expected a mapping or None, got {type(metadata).__name__}")
        object.__setattr__(self, "metadata", MappingProxyType(dict(metadata or {})))
        object.__setattr__(self, "_min_p", None)
        object.__setattr__(self, "_frozen", True)
        object.__setattr__(self, "_versions", self._tensor_versions())

    @classmethod
    def from_functions(
        cls,
        states: Sequence[Hashable],
        actions: Sequence[Hashable],
        transition: TransitionFn,
        reward: RewardFn,
        *,
        initial: Union[None, Hashable, Mapping[Any, float]] = None,
        horizon: Optional[int] = None,
        discount: Optional[float] = None,
        terminal_reward: Union[None, Callable[[Any], float], Mapping[Any, float]] = None,
        sparse: bool = False,
        metadata: Optional[Mapping] = None,
        dtype: torch.dtype = torch.float64,
        device: Device = None,
    ) -> TabularMDP:
        """Build an MDP from ``transition(s, a)`` and ``reward(s, a)`` over named states and actions.

        ``states[i]`` is state ``i`` and ``actions[j]`` action ``j``; their ``str`` become
        ``state_names`` / ``action_names``, shown by every table and figure. Example::

            mdp = TabularMDP.from_functions(
                ["home", "work"], ["stay", "go"],
                transition=lambda s, a: {s: 1.0} if a == "stay" else {"work" if s == "home" else "home": 1.0},
                reward=lambda s, a: 1.0 if s == "work" else 0.0,
                initial="home", horizon=5)

        Args:
            states: the ``S`` states, distinct hashable values of any kind.
            actions: the ``A`` actions, distinct hashable values of any kind.
            transition: ``transition(s, a)`` returns ``{next_state: p}`` or a list of
                ``(next_state, p)``; not called where ``reward(s, a)`` is ``-inf``.
            reward: ``reward(s, a)`` returns a number; ``-inf`` forbids the action.
            initial: ``None`` (uniform), a state, or a mapping ``{state: probability}``.
            horizon: number of decisions, or ``None`` for the stationary problem.
            discount: ``gamma`` in (0, 1] (in (0, 1) without a horizon).
            terminal_reward: ``None``, a function of the state or a mapping ``{state: value}``.
            sparse: store the transitions as a sparse ``(S*A, S)`` matrix.
            metadata: optional JSON-serialisable mapping.
            dtype: floating dtype. device: device of the stored tensors.

        Returns:
            A validated ``TabularMDP`` with rewards ``(S, A)`` and the names set.

        Raises:
            ValueError: naming the state and action of a failing row (sum not 1, a negative or
                NaN probability, an unknown next state, a NaN or ``+inf`` reward), and every
                error of the constructor. TypeError: for values of the wrong kind.
            See :func:`cai.mdp.functions.arrays_from_functions` for the details.
        """
        kwargs = arrays_from_functions(
            states, actions, transition, reward, initial=initial, horizon=horizon, discount=discount,
            terminal_reward=terminal_reward, sparse=sparse)
        return cls(**kwargs, metadata=metadata, dtype=dtype, device=device)

    # ------------------------------------------------------------------------------------------
    # immutability of the stored tensors, pickling

    def _stored_tensors(self):
        P = self.transitions
        parts = (P.crow_indices(), P.col_indices(), P.values()) if self.is_sparse else (P,)
        return (*parts, self.rewards, self.terminal_rewards, self.initial)

    def _tensor_versions(self) -> tuple:
        return tuple(t._version for t in self._stored_tensors())

    def check_unchanged(self, fn: str = "TabularMDP") -> None:
        """Raise if a stored tensor was modified in place since construction.

        ``TabularMDP`` validates its tensors once, when it is built; an in-place change
        (``mdp.transitions[0, 0] = 0``, or a change to the array it was built from, which it
        may share) would let solvers return numbers for an unvalidated model. Every solver calls
        this check (through :func:`check_model`) before it starts.

        Raises:
            ValueError: naming the first modified tensor.
        """
        names = ("transitions", "transitions", "transitions") if self.is_sparse else ("transitions",)
        names = (*names, "rewards", "terminal_rewards", "initial")
        for nm, old, new in zip(names, self._versions, self._tensor_versions()):
            if old != new:
                raise ValueError(
                    f"{fn}: mdp: {nm} was modified in place after the TabularMDP was built (it validates "
                    f"its inputs once); build a new one, e.g. mdp.replace({nm}=...)"
                )

    def __getstate__(self) -> dict:
        state = {k: getattr(self, k) for k in self.__slots__ if k not in ("_versions", "_min_p")}
        state["metadata"] = dict(self.metadata)
        return state

    def __deepcopy__(self, memo) -> TabularMDP:
        state = self.__getstate__()
        P = state.pop("transitions")
        if self.is_sparse:   # torch cannot deep-copy a CSR tensor (no storage): copy its parts
            P = make_csr(P.crow_indices().clone(), P.col_indices().clone(), P.values().clone(), size=tuple(P.shape))
        else:
            P = copy.deepcopy(P, memo)
        state = copy.deepcopy(state, memo)
        state["transitions"] = P
        new = TabularMDP.__new__(TabularMDP)
        memo[id(self)] = new
        new.__setstate__(state)
        return new

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, MappingProxyType(v) if k == "metadata" else v)
        object.__setattr__(self, "_min_p", None)
        object.__setattr__(self, "_versions", self._tensor_versions())

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _infer_layout(shape, S, A, T) -> str:
        nd = len(shape)
        if nd == 1:
            return "s"
        if nd == 2:
            return "sa"
        if nd == 3:
            sas = tuple(shape) == (S, A, S)
            tsa = T is not None and tuple(shape) == (T, S, A)
            if sas and tsa:
                raise ValueError(
                    f"rewards: shape {tuple(shape)} fits both (T, S, A) and (S, A, S); "
                    f"pass reward_layout='tsa' or 'sas'"
                )
            if sas:
                return "sas"
            if tsa:
                return "tsa"
        raise ValueError(
            f"rewards: expected (S,), (S, A), (T, S, A) or (S, A, S) with S={S}, A={A}, T={T}, "
            f"got {tuple(shape)}; pass reward_layout= for rewards with leading batch dimensions"
        )

    @staticmethod
    def _allowed(r: torch.Tensor, layout: str, P: torch.Tensor) -> torch.Tensor:
        if layout == "sas":
            # (s, a) is forbidden when every reachable s' carries -inf
            return (~torch.isneginf(r) & (P > 0)).any(-1)
        return ~torch.isneginf(r)

    @classmethod
    def _check_forbidden(cls, r: torch.Tensor, layout: str, P: torch.Tensor) -> None:
        if not bool(torch.isneginf(r).any()):
            return
        allowed_s = cls._allowed(r, layout, P).any(-1)
        if not bool(allowed_s.all()):
            idx = (~allowed_s).nonzero()[0].tolist()
            raise ValueError(
                f"rewards: every action of state {idx[-1]} is forbidden (-inf reward) at index "
                f"{tuple(idx)}; each state needs at least one allowed action"
            )

    def __setattr__(self, key, value):
        raise AttributeError("TabularMDP is immutable; build a new one (e.g. with .replace(...))")

    # ------------------------------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return int(self.transitions.shape[-1])

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return int(self.transitions.shape[1] if not self.is_sparse else self.transitions.shape[0] // self.n_states)

    @property
    def is_sparse(self) -> bool:
        """Whether the transitions are stored as a sparse CSR ``(S*A, S)`` matrix."""
        return self.transitions.layout != torch.strided

    @property
    def gamma(self) -> float:
        """The discount, 1.0 when none was given."""
        return 1.0 if self.discount is None else self.discount

    @property
    def is_stationary(self) -> bool:
        """True for the infinite-horizon (``horizon=None``) problem."""
        return self.horizon is None

    @property
    def dtype(self) -> torch.dtype:
        return self.rewards.dtype

    @property
    def device(self) -> torch.device:
        return self.rewards.device

    @property
    def transition_matrix(self) -> torch.Tensor:
        """``P`` as an ``(S*A, S)`` matrix (dense view or the sparse CSR tensor)."""
        if self.is_sparse:
            return self.transitions
        return self.transitions.reshape(self.n_states * self.n_actions, self.n_states)

    @property
    def min_positive_probability(self) -> float:
        """The smallest non-zero transition probability (computed once, on first use). The
        log-space kernels use it to know how far below its maximum a value may lie before a
        shifted product could underflow (:func:`cai.ops.logspace.log_matmul_exp`)."""
        if self._min_p is None:
            vals = (self.transitions.values() if self.is_sparse else self.transitions).detach().reshape(-1)
            best = math.inf
            for i in range(0, vals.numel(), 1 << 22):             # in chunks: no full-size temporaries
                chunk = vals[i:i + (1 << 22)]
                pos = chunk[chunk > 0]
                if pos.numel():
                    best = min(best, float(pos.min()))
            object.__setattr__(self, "_min_p", best if best < math.inf else 1.0)
        return self._min_p

    def dense_transitions(self) -> torch.Tensor:
        """``P`` as a dense ``(S, A, S)`` tensor (materialised for sparse MDPs)."""
        if self.is_sparse:
            return self.transitions.to_dense().reshape(self.n_states, self.n_actions, self.n_states)
        return self.transitions

    @property
    def allowed(self) -> torch.Tensor:
        """Boolean mask of allowed actions (reward > -inf; for ``r(s,a,s')`` rewards, on some
        reachable ``s'``): ``(*batch, S, A)``, or ``(*batch, T, S, A)`` for time-varying rewards."""
        return self._allowed(self.rewards, self.reward_layout, self.transitions)

    def reward_at(self, t: Optional[int]) -> torch.Tensor:
        """The reward used at decision ``t``: ``(*batch, S, A)`` or ``(*batch, S, A, S)``."""
        if self.reward_layout == "tsa":
            return self.rewards[..., t, :, :]
        return self.rewards

    # ------------------------------------------------------------------------------------------
    def replace(self, **changes) -> TabularMDP:
        """A copy with some constructor arguments changed (e.g. ``rewards=``, ``horizon=``)."""
        kw = dict(
            transitions=self.transitions, rewards=self.rewards, initial=self.initial,
            horizon=self.horizon, discount=self.discount, terminal_rewards=self.terminal_rewards,
            reward_layout=self.reward_layout, state_names=self.state_names,
            action_names=self.action_names, metadata=dict(self.metadata), dtype=self.dtype,
            device=self.device,
        )
        if "rewards" in changes and "reward_layout" not in changes:
            kw["reward_layout"] = None
        kw.update(changes)
        return TabularMDP(**kw)

    def to(self, device: Device = None, dtype: Optional[torch.dtype] = None) -> TabularMDP:
        """A copy on another device and/or with another floating dtype."""
        return self.replace(device=device if device is not None else self.device,
                            dtype=dtype if dtype is not None else self.dtype)

    def to_arrays(self) -> dict:
        """The MDP as a dict of NumPy arrays (the contents of the file :meth:`save` writes).

        Keys: ``P`` (dense ``(S, A, S)``) or ``P_crow``, ``P_col``, ``P_values``, ``P_shape``
        (sparse CSR); ``rewards``, ``reward_layout``, ``terminal_rewards``, ``initial``,
        ``horizon`` (-1 for none), ``discount`` (NaN for none), ``dtype`` and, when set,
        ``state_names``, ``action_names`` and ``metadata`` (a JSON string).
        """
        d = {
            "rewards": self.rewards.detach().cpu().numpy(),
            "reward_layout": np.array(self.reward_layout),
            "terminal_rewards": self.terminal_rewards.detach().cpu().numpy(),
            "initial": self.initial.detach().cpu().numpy(),
            "horizon": np.array(-1 if self.horizon is None else self.horizon),
            "discount": np.array(np.nan if self.discount is None else self.discount),
            "dtype": np.array(str(self.dtype).replace("torch.", "")),
        }
        if self.is_sparse:
            P = self.transitions
            d.update(P_crow=P.crow_indices().cpu().numpy(), P_col=P.col_indices().cpu().numpy(),
                     P_values=P.values().detach().cpu().numpy(), P_shape=np.array(P.shape))
        else:
            d["P"] = self.transitions.detach().cpu().numpy()
        if self.state_names is not None:
            d["state_names"] = np.array(self.state_names, dtype=str)
        if self.action_names is not None:
            d["action_names"] = np.array(self.action_names, dtype=str)
        if self.metadata:
            d["metadata"] = np.array(json.dumps(dict(self.metadata)))
        return d

    @classmethod
    def from_arrays(cls, f: Mapping[str, np.ndarray], device: Device = None) -> TabularMDP:
        """Rebuild an MDP from the mapping :meth:`to_arrays` returns (validated again)."""
        dtype = getattr(torch, str(f["dtype"]))
        if "P" in f:
            P = torch.as_tensor(f["P"])
        else:
            P = make_csr(torch.as_tensor(f["P_crow"]), torch.as_tensor(f["P_col"]),
                         torch.as_tensor(f["P_values"]), size=tuple(f["P_shape"].tolist()))
        horizon = int(f["horizon"])
        discount = float(f["discount"])
        return cls(
            P, torch.as_tensor(f["rewards"]), torch.as_tensor(f["initial"]),
            horizon=None if horizon < 0 else horizon,
            discount=None if math.isnan(discount) else discount,
            terminal_rewards=torch.as_tensor(f["terminal_rewards"]),
            reward_layout=str(f["reward_layout"]),
            state_names=[str(x) for x in f["state_names"]] if "state_names" in f else None,
            action_names=[str(x) for x in f["action_names"]] if "action_names" in f else None,
            metadata=json.loads(str(f["metadata"])) if "metadata" in f else None,
            dtype=dtype, device=device,
        )

    def save(self, path: PathLike) -> str:
        """Write the MDP to an ``.npz`` file (the arrays of :meth:`to_arrays`).

        Args:
            path: file name; ``".npz"`` is appended when missing (so ``save("x")`` and
                ``load("x")`` both use ``x.npz``).

        Returns:
            The path written.
        """
        return save_arrays(path, self.to_arrays())

    @classmethod
    def load(cls, path: PathLike, device: Device = None) -> TabularMDP:
        """Read an MDP written by :meth:`save` (bit for bit; ``".npz"`` is appended when missing)."""
        return cls.from_arrays(load_arrays(path, "TabularMDP.load"), device=device)

    def __repr__(self) -> str:
        parts = [f"S={self.n_states}", f"A={self.n_actions}"]
        parts.append(f"horizon={self.horizon}")
        if self.discount is not None:
            parts.append(f"discount={self.discount:g}")
        parts.append(f"rewards={self.reward_layout}{tuple(self.rewards.shape)}")
        if self.is_sparse:
            parts.append(f"sparse nnz={self.transitions.values().numel()}")
        parts.append(str(self.dtype).replace("torch.", ""))
        return f"TabularMDP({', '.join(parts)})"


def check_model(mdp: TabularMDP, alpha: Alpha, action_prior: Optional[ArrayLike], fn: str
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Validate the inputs of a solver; return ``(alpha, log_prior)`` as tensors.

    Checks that ``mdp`` is a :class:`~cai.TabularMDP`, that ``alpha`` is a positive finite
    scalar or batch, and that every state keeps at least one action that is both allowed
    (reward > -inf) and has positive prior probability.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"{fn}: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    mdp.check_unchanged(fn)
    a = check_alpha(alpha, mdp.dtype, mdp.device)
    log_prior = check_action_prior(action_prior, mdp.n_states, mdp.n_actions, mdp.dtype, mdp.device)
    if log_prior is not None:
        ok = (mdp.allowed & ~torch.isneginf(log_prior)).any(-1)
        if not bool(ok.all()):
            s = int((~ok).nonzero()[0][-1])
            raise ValueError(
                f"action_prior: state {s} gives zero prior probability to every allowed action"
            )
    return a, log_prior


#: The names of the action priors the report and the command line offer (see :func:`uniform_action_prior`).
ACTION_PRIORS = ("counting", "uniform")


def _allowed_sa(mdp: TabularMDP) -> torch.Tensor:
    """``(S, A)`` bool: actions allowed at some time step and for some reward of the batch."""
    allowed = mdp.allowed
    if mdp.reward_layout == "tsa":
        allowed = allowed.any(-3)
    return allowed.reshape(-1, mdp.n_states, mdp.n_actions).any(0)


def absorbing_states(mdp: TabularMDP) -> torch.Tensor:
    """The absorbing states: every allowed action returns to the state itself with reward 0.

    This is the one definition of "absorbing" (a grid world's ``exit``, the terminal states of a
    gymnasium import): once there the agent decides nothing and earns nothing, so the report skips
    these states when it weights distances between policies by where the agent is. A terminal
    reward ``r_T(s)`` does not matter (it is paid once, whatever the policy).

    Args:
        mdp: a :class:`TabularMDP` (time-varying rewards must be 0 at every step; a reward batch
            must be 0 for every member).

    Returns:
        ``(S,)`` bool tensor.

    Raises:
        TypeError: if ``mdp`` is not a :class:`TabularMDP`.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"absorbing_states: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    S, A = mdp.n_states, mdp.n_actions
    allowed = _allowed_sa(mdp)                                     # (S, A)
    P = mdp.dense_transitions()
    stays = P[torch.arange(S), :, torch.arange(S)] >= 1 - ROW_SUM_TOL          # (S, A) P(s|s,a) = 1
    r = mdp.rewards
    if mdp.reward_layout == "sas":
        r = torch.where(P > 0, r, torch.zeros_like(r))             # only reachable outcomes count
        r = r.abs().amax(-1)
    r = torch.where(torch.isneginf(r), torch.zeros_like(r), r).abs()
    if mdp.reward_layout == "tsa":
        r = r.amax(-3)
    zero = (r.reshape(-1, S, A) == 0).all(0)                      # (S, A)
    return (~allowed | (stays & zero)).all(-1)


def uniform_action_prior(mdp: TabularMDP) -> torch.Tensor:
    """The normalised uniform action prior ``rho(a|s) = 1 / |allowed(s)|`` on the allowed actions.

    With it an action choice costs ``alpha * KL(pi || rho)`` instead of earning
    ``alpha * H(pi)``: a state with one allowed action earns nothing and ``V <= max_a Q``. With
    ``gamma < 1`` and rewards ``<= 0`` in every state that lies on a cycle of the dynamics (a goal
    passed once on the way to the exit does not count: it adds no eigenvalue), stationary exact
    inference converges, since each such row of its linear operator ``gamma sum_a rho e^(r/alpha) P``
    sums to at most ``gamma``; under the counting prior the same row sums to up to
    ``|A| gamma e^(max r/alpha)``, above 1 on a grid whose step cost is small against ``alpha``. An
    action allowed at some step (or for some reward of a batch) counts as allowed.

    Args:
        mdp: a :class:`TabularMDP`.

    Returns:
        ``(S, A)`` tensor of the MDP's dtype and device; rows sum to 1, forbidden actions get 0.

    Raises:
        TypeError: if ``mdp`` is not a :class:`TabularMDP`.
    """
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"uniform_action_prior: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    allowed = _allowed_sa(mdp).to(mdp.dtype)
    return allowed / allowed.sum(-1, keepdim=True)
