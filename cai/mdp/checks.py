"""Input conversion and validation shared by every public entry point.

Every check raises ``ValueError`` (or ``TypeError``) that names the argument, what was
expected and what came, so that bad input never surfaces later as a shape error in torch.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from cai.typing import Alpha, ArrayLike, Device

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP

#: tolerance on the sums of probability rows (transitions, initial distributions, priors)
ROW_SUM_TOL = 1e-6

__all__ = [
    "ROW_SUM_TOL",
    "as_tensor",
    "check_alpha",
    "check_action_prior",
    "check_policy",
    "describe",
    "check_positive_int",
    "check_initial",
    "check_distribution",
    "check_dtype_device",
    "SUPPORTED_DTYPES",
    "check_tol",
]


def describe(x: object) -> str:
    """A short description of ``x`` for error messages: its shape and dtype, or its value."""
    if isinstance(x, torch.Tensor):
        if x.numel() == 1:
            return f"{x.item()!r} ({x.dtype})"
        return f"shape {tuple(x.shape)} ({x.dtype})"
    if isinstance(x, np.ndarray):
        return f"shape {x.shape} ({x.dtype})"
    return repr(x)


def as_tensor(
    name: str,
    x: ArrayLike,
    dtype: torch.dtype = torch.float64,
    device: Device = None,
) -> torch.Tensor:
    """Convert NumPy arrays, torch tensors, nested lists and scalars to a dense tensor.

    Gradients are kept: a tensor that requires grad is converted with ``.to`` so autograd
    flows through. Raises ``TypeError`` naming ``name`` when ``x`` is not numeric.
    """
    if isinstance(x, torch.Tensor):
        if x.is_sparse or x.layout != torch.strided:
            raise TypeError(f"{name}: expected a dense array, got a sparse tensor ({x.layout})")
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name}: expected a real-valued array, got dtype {x.dtype}")
        return x.to(dtype=dtype, device=device)
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a number or an array of numbers, got bool {x!r}")
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: expected an array-like of numbers, got {type(x).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
        raise TypeError(
            f"{name}: expected an array-like of numbers, got {type(x).__name__} with dtype {arr.dtype}"
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.float64), device=device).to(dtype)


def check_alpha(alpha: Alpha, dtype: torch.dtype, device: Device) -> torch.Tensor:
    """Validate the temperature: a positive finite scalar or a batch of them.

    Returns:
        Tensor of shape ``batch_shape`` (``()`` for a scalar).

    Raises:
        ValueError: if any entry is not finite and > 0.
    """
    if isinstance(alpha, numbers.Real) and not isinstance(alpha, bool) and not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a finite temperature > 0, got {alpha!r}")
    a = as_tensor("alpha", alpha, dtype, device)
    if not bool(torch.isfinite(a).all()) or not bool((a > 0).all()):
        bad = a[~(torch.isfinite(a) & (a > 0))].flatten()[0].item()
        raise ValueError(f"alpha: expected every temperature finite and > 0, got {bad!r}")
    return a


def check_action_prior(prior: Optional[ArrayLike], n_states: int, n_actions: int, dtype: torch.dtype, device: Device
                       ) -> Optional[torch.Tensor]:
    """Validate an action prior ``rho(a|s)``; return its log, or ``None`` for the counting measure.

    Args:
        prior: ``None`` (counting measure, ``rho = 1``) or an array of shape ``(S, A)`` or
            ``(A,)`` whose rows are distributions (non-negative, summing to 1 within 1e-6).

    Returns:
        ``log rho`` of shape ``(S, A)`` or ``None``.
    """
    if prior is None:
        return None
    p = as_tensor("action_prior", prior, dtype, device)
    if p.dim() == 1:
        p = p.expand(n_states, -1)
    if tuple(p.shape) != (n_states, n_actions):
        raise ValueError(
            f"action_prior: expected shape (S, A) = ({n_states}, {n_actions}) or (A,), "
            f"got {tuple(p.shape)}"
        )
    if bool(torch.isnan(p).any()) or bool((p < 0).any()):
        raise ValueError("action_prior: expected non-negative probabilities, got a negative or NaN entry")
    sums = p.sum(-1)
    err = (sums - 1).abs().max().item()
    if err > 1e-6:
        raise ValueError(
            f"action_prior: expected rows summing to 1 (tolerance 1e-6), got a row summing to "
            f"{sums[(sums - 1).abs().argmax()].item():.8g}; pass None for the counting measure"
        )
    return torch.log(p)


def check_policy(policy: ArrayLike, shape: Sequence[int], dtype: torch.dtype, device: Device, name: str = "policy"
                 ) -> torch.Tensor:
    """Validate a policy tensor whose last axis is a distribution over actions.

    Args:
        policy: array of shape ``(*batch, T, S, A)`` (finite horizon) or ``(*batch, S, A)``.
        shape: the required trailing shape, e.g. ``(T, S, A)``.

    Raises:
        ValueError: wrong trailing shape, negative/NaN entries, or rows not summing to 1 (1e-6).
    """
    p = as_tensor(name, policy, dtype, device)
    k = len(shape)
    if p.dim() < k or tuple(p.shape[-k:]) != tuple(shape):
        raise ValueError(f"{name}: expected trailing shape {tuple(shape)}, got {tuple(p.shape)}")
    if bool(torch.isnan(p).any()) or bool((p < 0).any()):
        raise ValueError(f"{name}: expected non-negative probabilities, got a negative or NaN entry")
    err = (p.sum(-1) - 1).abs().max().item() if p.numel() else 0.0
    if err > 1e-6:
        raise ValueError(
            f"{name}: expected each row over actions to sum to 1 (tolerance 1e-6), "
            f"got a deviation of {err:.3g}"
        )
    return p


def check_positive_int(name: str, v: object, what: str = "a positive integer") -> int:
    """``v`` as an ``int`` >= 1; ``ValueError`` naming ``name`` otherwise (bools are refused)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return int(v)


def check_tol(name: str, v: float) -> float:
    """``v`` as a finite ``float`` >= 0 (a tolerance); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    return float(v)


def check_distribution(name: str, x: ArrayLike, n: int, dtype: torch.dtype, device: Device) -> torch.Tensor:
    """A probability vector of shape ``(n,)``: finite, non-negative, summing to 1.

    Args:
        name: the argument's name, used in error messages.
        x: the array-like to check.
        n: the required length.
        dtype, device: of the returned tensor.

    Returns:
        ``(n,)`` tensor.

    Raises:
        TypeError: for non-numeric input.
        ValueError: wrong shape, a negative, NaN or infinite entry, or a sum other than 1
            (tolerance :data:`ROW_SUM_TOL`).
    """
    mu = as_tensor(name, x, dtype, device)
    if tuple(mu.shape) != (n,):
        raise ValueError(f"{name}: expected a distribution of shape ({n},), got shape {tuple(mu.shape)}")
    if not bool(torch.isfinite(mu).all()) or bool((mu < 0).any()):
        raise ValueError(f"{name}: expected a distribution (finite, non-negative), got a negative, NaN or "
                         f"infinite entry")
    if abs(float(mu.sum()) - 1) > ROW_SUM_TOL:
        raise ValueError(f"{name}: expected a distribution summing to 1 (tolerance {ROW_SUM_TOL:g}), "
                         f"got a sum of {float(mu.sum()):.10g}")
    return mu


def check_initial(mdp: TabularMDP, initial: Optional[ArrayLike]) -> torch.Tensor:
    """An initial state distribution for ``mdp``: ``mdp.initial`` when ``None``, else validated.

    Returns:
        ``(S,)`` tensor of the MDP's dtype and device.

    Raises:
        ValueError: wrong shape, a negative, NaN or infinite entry, or a sum other than 1
            (tolerance :data:`ROW_SUM_TOL`).
    """
    if initial is None:
        return mdp.initial
    return check_distribution("initial", initial, mdp.n_states, mdp.dtype, mdp.device)


#: floating dtypes the checks (which go through NumPy) and the kernels support
SUPPORTED_DTYPES = (torch.float16, torch.float32, torch.float64)


def check_dtype_device(dtype: torch.dtype, device: Device) -> Optional[torch.device]:
    """Validate a floating ``dtype`` and a ``device`` for stored tensors; return the device.

    Raises:
        TypeError: ``dtype`` is not a floating torch dtype.
        ValueError: ``dtype`` is one NumPy cannot hold (bfloat16), or ``device`` is not a
            device torch knows, or is ``"meta"`` (which holds no values to check).
    """
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype: expected one of torch.float16, torch.float32, torch.float64, got {dtype}")
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if device.type == "meta":
        raise ValueError("device: expected a device that holds values, got 'meta' (inputs could not be checked)")
    return device
