"""Build a :class:`~cai.mdp.tabular.TabularMDP` from Python functions over named states and actions.

The arrays ``P[s, a, s']`` and ``r[s, a]`` are how the solvers see a model; a person usually
thinks of it as "from this state, doing that, these things can happen". This module turns
the second description into the first, checking every row as it goes and naming the state and
action of any row that fails. :meth:`cai.TabularMDP.from_functions` is the entry point; it passes
the arrays built here to the constructor, which validates them again.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from cai.mdp.checks import ROW_SUM_TOL
from cai.typing import RewardFn, TransitionFn

__all__ = ["arrays_from_functions"]


def _number(x: object) -> Optional[float]:
    """``x`` as a float when it is a real number (Python, NumPy or a one-element tensor), else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, torch.Tensor):
        return float(x.item()) if x.numel() == 1 and not x.is_complex() else None
    if isinstance(x, np.ndarray):
        return float(x.item()) if x.size == 1 and np.isrealobj(x) and x.dtype != bool else None
    if isinstance(x, numbers.Real):
        return float(x)
    return None


def _index(kind: str, items: Sequence[Hashable]) -> Dict[Hashable, int]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{kind}: expected a sequence of {kind} (any hashable values), got {items!r}")
    items = list(items)
    if not items:
        raise ValueError(f"{kind}: expected at least one, got an empty sequence")
    index: Dict[Hashable, int] = {}
    for i, x in enumerate(items):
        try:
            hash(x)
        except TypeError:
            raise TypeError(f"{kind}: expected hashable values, got {x!r} of type {type(x).__name__} at position {i}") from None
        if x in index:
            raise ValueError(f"{kind}: expected distinct values, got {x!r} twice (positions {index[x]} and {i})")
        index[x] = i
    return index


def _pairs(out: object, where: str) -> List[Tuple[Any, Any]]:
    if isinstance(out, Mapping):
        return list(out.items())
    if isinstance(out, (str, bytes)) or not isinstance(out, Iterable):
        raise TypeError(
            f"transition{where}: expected a mapping {{next_state: probability}} or a list of "
            f"(next_state, probability) pairs, got {out!r}"
        )
    pairs = []
    for item in out:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(
                f"transition{where}: expected (next_state, probability) pairs, got the item {item!r}"
            )
        pairs.append((item[0], item[1]))
    return pairs


def arrays_from_functions(
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
) -> Dict[str, Any]:
    """The constructor arguments of a :class:`~cai.mdp.tabular.TabularMDP` from two functions.

    State ``states[i]`` becomes index ``i`` and action ``actions[j]`` index ``j``; their ``str``
    become ``state_names`` / ``action_names``, which every table and figure shows. ``reward`` is
    called for every ``(s, a)`` first; where it is ``-inf`` the action is forbidden and
    ``transition`` is not called (the row is stored as a self-loop that no policy takes).

    Args:
        states: the ``S`` states, any distinct hashable values (numbers, strings, tuples ...).
        actions: the ``A`` actions, any distinct hashable values.
        transition: ``transition(s, a)`` returns ``{next_state: p}`` or ``[(next_state, p), ...]``;
            probabilities must be finite, non-negative and sum to 1 (within
            :data:`~cai.mdp.checks.ROW_SUM_TOL`); a next state named twice is added up.
        reward: ``reward(s, a)`` returns a number; ``-inf`` forbids ``a`` in ``s``; NaN and
            ``+inf`` are errors.
        initial: ``None`` (uniform over the states), one state (the process starts there), or a
            mapping ``{state: probability}`` (missing states get 0).
        horizon: number of decisions ``T >= 1``, or ``None`` for the stationary problem.
        discount: ``gamma`` in (0, 1] (required in (0, 1) without a horizon).
        terminal_reward: ``None`` (0), a function ``terminal_reward(s)``, or a mapping
            ``{state: value}`` (missing states get 0); paid once after the last decision.
        sparse: store the transitions as a sparse ``(S*A, S)`` matrix (for large, local models).

    Returns:
        Keyword arguments of :class:`~cai.mdp.tabular.TabularMDP`: ``transitions`` (NumPy
        ``(S, A, S)``, or a ``scipy.sparse`` CSR ``(S*A, S)`` matrix), ``rewards`` ``(S, A)`` with
        ``reward_layout="sa"``, ``initial`` ``(S,)`` or None, ``terminal_rewards`` ``(S,)`` or
        None, ``horizon``, ``discount``, ``state_names`` and ``action_names`` (the ``str`` of each).

    Raises:
        TypeError: ``states``/``actions`` not sequences of hashables, a function returning
            something that is not a number / mapping / list of pairs.
        ValueError: naming the state and action of a row that fails (probabilities not summing
            to 1, a negative or NaN probability, an unknown next state, a NaN or ``+inf``
            reward), a state whose every action is forbidden, an unknown initial state, and
            anything the :class:`~cai.mdp.tabular.TabularMDP` constructor rejects.
    """
    s_index = _index("states", states)
    a_index = _index("actions", actions)
    if not callable(transition):
        raise TypeError(f"transition: expected a function transition(s, a), got {type(transition).__name__}")
    if not callable(reward):
        raise TypeError(f"reward: expected a function reward(s, a), got {type(reward).__name__}")
    S, A = len(s_index), len(a_index)
    R = np.zeros((S, A))
    rows: List[int] = []
    cols: List[int] = []
    vals: List[float] = []
    for s, i in s_index.items():
        for a, j in a_index.items():
            where = f"({s!r}, {a!r})"
            out = reward(s, a)
            r = _number(out)
            if r is None:
                raise TypeError(f"reward{where}: expected a number, got {out!r}")
            if math.isnan(r) or r == math.inf:
                raise ValueError(f"reward{where}: expected a finite number or -inf (forbidden action), got {r}")
            R[i, j] = r
            row = i * A + j
            if r == -math.inf:                   # forbidden: no dynamics needed
                rows.append(row)
                cols.append(i)
                vals.append(1.0)
                continue
            acc: Dict[int, float] = {}
            for nxt, p in _pairs(transition(s, a), where):
                try:
                    k = s_index.get(nxt)
                except TypeError:                # unhashable next state
                    k = None
                if k is None:
                    raise ValueError(f"transition{where}: expected next states among `states`, got the unknown state {nxt!r}")
                q = _number(p)
                if q is None:
                    raise TypeError(f"transition{where}: expected a probability (a number) for next state {nxt!r}, got {p!r}")
                if not (q >= 0 and math.isfinite(q)):
                    raise ValueError(f"transition{where}: expected a finite probability >= 0 for next state {nxt!r}, got {q}")
                acc[k] = acc.get(k, 0.0) + q
            total = math.fsum(acc.values())
            if abs(total - 1.0) > ROW_SUM_TOL:
                raise ValueError(
                    f"transition{where}: expected probabilities summing to 1 (tolerance {ROW_SUM_TOL:g}), "
                    f"got {total:.10g}"
                )
            for k in sorted(acc):
                if acc[k] > 0:
                    rows.append(row)
                    cols.append(k)
                    vals.append(acc[k])
    for s, i in s_index.items():
        if np.all(np.isneginf(R[i])):
            raise ValueError(f"reward: every action of state {s!r} is forbidden (-inf); each state needs at least one allowed action")

    if sparse:
        import scipy.sparse as sp
        P = sp.csr_matrix((np.asarray(vals), (np.asarray(rows), np.asarray(cols))), shape=(S * A, S))
    else:
        P = np.zeros((S * A, S))
        np.add.at(P, (np.asarray(rows), np.asarray(cols)), np.asarray(vals))
        P = P.reshape(S, A, S)

    p0 = None
    if initial is not None:
        if isinstance(initial, Mapping):
            p0 = np.zeros(S)
            for st, p in initial.items():
                if st not in s_index:
                    raise ValueError(f"initial: expected states among `states`, got the unknown state {st!r}")
                q = _number(p)
                if q is None:
                    raise TypeError(f"initial: expected a probability for state {st!r}, got {p!r}")
                p0[s_index[st]] += q
        else:
            try:
                k = s_index.get(initial)
            except TypeError:
                k = None
            if k is None:
                raise ValueError(f"initial: expected None, a state or a mapping {{state: probability}}, got {initial!r}")
            p0 = np.zeros(S)
            p0[k] = 1.0

    rT = None
    if terminal_reward is not None:
        rT = np.zeros(S)
        if isinstance(terminal_reward, Mapping):
            for st, v in terminal_reward.items():
                if st not in s_index:
                    raise ValueError(f"terminal_reward: expected states among `states`, got the unknown state {st!r}")
                q = _number(v)
                if q is None or not math.isfinite(q):
                    raise ValueError(f"terminal_reward: expected a finite number for state {st!r}, got {v!r}")
                rT[s_index[st]] = q
        elif callable(terminal_reward):
            for st, i in s_index.items():
                v = terminal_reward(st)
                q = _number(v)
                if q is None or not math.isfinite(q):
                    raise ValueError(f"terminal_reward({st!r}): expected a finite number, got {v!r}")
                rT[i] = q
        else:
            raise TypeError(
                f"terminal_reward: expected None, a function of the state or a mapping, got {type(terminal_reward).__name__}"
            )

    return dict(
        transitions=P, rewards=R, initial=p0, horizon=horizon, discount=discount, terminal_rewards=rT,
        reward_layout="sa", state_names=[str(s) for s in s_index], action_names=[str(a) for a in a_index],
    )
