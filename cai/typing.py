"""Type aliases of cai's public signatures (one home, so every function spells its inputs the same way).

Annotations only: every function still checks its inputs at run time (:mod:`cai.mdp.checks`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = ["ArrayLike", "Alpha", "Device", "PathLike", "TransitionFn", "RewardFn"]

#: An array given by the caller: a torch tensor, a NumPy array, a (nested) sequence of numbers or
#: a number; converted with :func:`cai.mdp.checks.as_tensor` (float64 by default).
ArrayLike = Union[torch.Tensor, np.ndarray, Sequence, float]

#: A temperature ``alpha > 0``: a number, or a tensor of temperatures solved as a batch (a sweep).
Alpha = Union[float, torch.Tensor]

#: A torch device or its name (``"cpu"``, ``"cuda:0"``); ``None`` keeps the default or current one.
Device = Union[str, torch.device, None]

#: A file path.
PathLike = Union[str, os.PathLike]

#: ``transition(s, a)`` of :meth:`cai.TabularMDP.from_functions`: a mapping ``{next_state: probability}``
#: or an iterable of ``(next_state, probability)`` pairs (repeated next states are added up).
TransitionFn = Callable[[Any, Any], Union[Mapping[Any, float], Iterable[Tuple[Any, float]]]]

#: ``reward(s, a)`` of :meth:`cai.TabularMDP.from_functions`: a number; ``-inf`` forbids the action.
RewardFn = Callable[[Any, Any], float]
