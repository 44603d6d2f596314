"""Linear-Gaussian control problems (the continuous analogue of ``TabularMDP``).

A :class:`LinearGaussianSystem` is the model alone: linear dynamics with additive Gaussian
noise, a quadratic reward, a Gaussian initial state and a horizon. The temperature completes
the graphical model and is an argument of inference (see :mod:`cai.gaussian.messages`).

Conventions (``n`` state dimensions, ``m`` action dimensions, ``z = [x; u]`` of size ``n + m``)::

    x_{t+1} = A x_t + B u_t + c + w_t,          w_t ~ N(0, W)
    r(x, u) = -1/2 z^T H z + h^T z              (every decision t = 0..T-1)
    r_T(x)  = -1/2 x^T H_T x + h_T^T x          (terminal reward, default 0)
    x_0     ~ N(mu0, Sigma0)

Every tensor may carry leading batch dimensions, which broadcast against each other; the
trailing dimensions are the ones listed below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

import numpy as np
import torch

from cai.mdp.checks import as_tensor, check_dtype_device
from cai.mdp.io import load_arrays, save_arrays
from cai.typing import ArrayLike, PathLike

__all__ = ["LinearGaussianSystem"]


def _as_tensor(name: str, value, dtype, device) -> torch.Tensor:
    """``value`` as a finite tensor of ``dtype`` (``TypeError``/``ValueError`` naming ``name``)."""
    t = as_tensor(name, value, dtype, device)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got an infinite or NaN entry")
    return t


def _check_trailing(name: str, tensor: torch.Tensor, shape: tuple) -> None:
    k = len(shape)
    if tensor.dim() < k or tuple(tensor.shape[tensor.dim() - k:]) != shape:
        raise ValueError(
            f"{name}: expected trailing shape {shape} (with optional leading batch dims), "
            f"got shape {tuple(tensor.shape)}"
        )


def _check_symmetric(name: str, tensor: torch.Tensor) -> None:
    tol = 1e-8 * (1.0 + tensor.abs().max().item()) if tensor.numel() else 0.0
    if not torch.allclose(tensor, tensor.transpose(-1, -2), rtol=0.0, atol=tol):
        raise ValueError(f"{name}: expected a symmetric matrix, got an asymmetric one")


def _check_psd(name: str, tensor: torch.Tensor) -> None:
    eig = torch.linalg.eigvalsh(tensor.detach().to(torch.float64))
    scale = 1.0 + tensor.detach().abs().amax()
    if (eig < -1e-10 * scale).any():
        raise ValueError(
            f"{name}: expected a positive semi-definite matrix, got smallest eigenvalue "
            f"{eig.min().item():.3g}"
        )


@dataclass(frozen=True)
class LinearGaussianSystem:
    """A finite-horizon linear-Gaussian control problem with quadratic reward.

    Construct it directly with the joint reward matrices, or with :meth:`from_lqr` from the
    usual LQR cost matrices. Inputs are converted to ``dtype`` (float64 by default); NumPy
    arrays and nested lists are accepted. Gradients flow through every field.

    Args:
        A: Dynamics matrix, trailing shape ``(n, n)``.
        B: Control matrix, trailing shape ``(n, m)``.
        H: Reward Hessian (negated) over ``z = [x; u]``, trailing shape ``(n+m, n+m)``,
            symmetric. Its action block ``H[n:, n:]`` need not be positive definite on its own,
            but the soft Q function must be concave in ``u`` (checked by the solvers).
        horizon: Number of decisions ``T >= 1``.
        c: Dynamics offset, trailing shape ``(n,)``; default 0.
        W: Process-noise covariance, trailing shape ``(n, n)``, symmetric PSD; default 0
            (deterministic dynamics).
        h: Linear reward term over ``z``, trailing shape ``(n+m,)``; default 0.
        H_T: Terminal reward Hessian (negated), trailing shape ``(n, n)``; default 0.
        h_T: Terminal linear reward term, trailing shape ``(n,)``; default 0.
        mu0: Initial state mean, trailing shape ``(n,)``; default 0.
        Sigma0: Initial state covariance, trailing shape ``(n, n)``, symmetric PSD; default 0
            (a known initial state).
        dtype: Floating dtype of every field.

    Raises:
        ValueError: If a shape, the horizon, a symmetry or a PSD requirement is violated.
    """

    A: torch.Tensor
    B: torch.Tensor
    H: torch.Tensor
    horizon: int
    c: Optional[torch.Tensor] = None
    W: Optional[torch.Tensor] = None
    h: Optional[torch.Tensor] = None
    H_T: Optional[torch.Tensor] = None
    h_T: Optional[torch.Tensor] = None
    mu0: Optional[torch.Tensor] = None
    Sigma0: Optional[torch.Tensor] = None
    dtype: torch.dtype = torch.float64

    def __post_init__(self):
        dtype = self.dtype
        check_dtype_device(dtype, None)
        A = _as_tensor("A", self.A, dtype, None)
        device = A.device
        B = _as_tensor("B", self.B, dtype, device)
        if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
            raise ValueError(f"A: expected trailing shape (n, n), got shape {tuple(A.shape)}")
        n = A.shape[-1]
        if B.dim() < 2 or B.shape[-2] != n:
            raise ValueError(f"B: expected trailing shape ({n}, m), got shape {tuple(B.shape)}")
        m = B.shape[-1]
        if m < 1:
            raise ValueError(f"B: expected at least one action dimension, got shape {tuple(B.shape)}")
        if not isinstance(self.horizon, int) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError(f"horizon: expected an integer >= 1, got {self.horizon!r}")

        def field(name, value, shape):
            if value is None:
                return torch.zeros(shape, dtype=dtype, device=device)
            t = _as_tensor(name, value, dtype, device)
            _check_trailing(name, t, shape)
            return t

        H = field("H", self.H, (n + m, n + m))
        _check_symmetric("H", H)
        W = field("W", self.W, (n, n))
        _check_symmetric("W", W)
        _check_psd("W", W)
        H_T = field("H_T", self.H_T, (n, n))
        _check_symmetric("H_T", H_T)
        Sigma0 = field("Sigma0", self.Sigma0, (n, n))
        _check_symmetric("Sigma0", Sigma0)
        _check_psd("Sigma0", Sigma0)
        values = dict(
            A=A, B=B, H=H, W=W, H_T=H_T, Sigma0=Sigma0,
            c=field("c", self.c, (n,)),
            h=field("h", self.h, (n + m,)),
            h_T=field("h_T", self.h_T, (n,)),
            mu0=field("mu0", self.mu0, (n,)),
        )
        for key, value in values.items():
            object.__setattr__(self, key, value)

    @classmethod
    def from_lqr(cls, A: ArrayLike, B: ArrayLike, Q: ArrayLike, R: ArrayLike, horizon: int, N: Optional[ArrayLike] = None,
                 Q_T: Optional[ArrayLike] = None, **kwargs: Any) -> LinearGaussianSystem:
        """Build the system whose reward is minus half the usual LQR cost.

        ``r(x, u) = -1/2 (x^T Q x + u^T R u + 2 x^T N u)`` with ``N`` of trailing shape ``(n, m)``,
        and ``r_T(x) = -1/2 x^T Q_T x``.

        Args:
            A: ``(n, n)``. B: ``(n, m)``. Q: ``(n, n)``. R: ``(m, m)``.
            horizon: Number of decisions.
            N: Cross-cost ``(n, m)``; default 0.
            Q_T: Terminal cost ``(n, n)``; default 0.
            **kwargs: Any other field of :class:`LinearGaussianSystem` (``c``, ``W``, ``mu0``...).

        Returns:
            LinearGaussianSystem: the system with ``H = [[Q, N], [N^T, R]]`` and ``H_T = Q_T``.
        """
        dtype = kwargs.get("dtype", torch.float64)
        check_dtype_device(dtype, None)
        Q = _as_tensor("Q", Q, dtype, None)
        R = _as_tensor("R", R, dtype, Q.device)
        for name, t in (("Q", Q), ("R", R)):
            if t.dim() < 2 or t.shape[-1] != t.shape[-2]:
                raise ValueError(f"{name}: expected trailing shape (k, k), got shape {tuple(t.shape)}")
        n, m = Q.shape[-1], R.shape[-1]
        if N is None:
            N = torch.zeros(Q.shape[:-2] + (n, m), dtype=dtype, device=Q.device)
        N = _as_tensor("N", N, dtype, Q.device)
        _check_trailing("N", N, (n, m))
        batch = torch.broadcast_shapes(Q.shape[:-2], R.shape[:-2], N.shape[:-2])
        top = torch.cat([Q.expand(batch + (n, n)), N.expand(batch + (n, m))], dim=-1)
        bottom = torch.cat([N.transpose(-1, -2).expand(batch + (m, n)), R.expand(batch + (m, m))], dim=-1)
        H = torch.cat([top, bottom], dim=-2)
        return cls(A=A, B=B, H=H, horizon=horizon, H_T=Q_T, **kwargs)

    # ------------------------------------------------------------------------------------------
    #: the tensor fields, in the order of the constructor (what save() writes)
    TENSOR_FIELDS = ("A", "B", "H", "c", "W", "h", "H_T", "h_T", "mu0", "Sigma0")

    def save(self, path: PathLike) -> str:
        """Write the system to an ``.npz`` file: one array per field (``A``, ``B``, ``H``, ``c``,
        ``W``, ``h``, ``H_T``, ``h_T``, ``mu0``, ``Sigma0``), ``horizon`` and ``dtype``.
        ``".npz"`` is appended to ``path`` when missing; returns the path written."""
        d = {k: getattr(self, k).detach().cpu().numpy() for k in self.TENSOR_FIELDS}
        d.update(horizon=np.array(self.horizon), dtype=np.array(str(self.dtype).replace("torch.", "")))
        return save_arrays(path, d)

    @classmethod
    def load(cls, path: PathLike) -> LinearGaussianSystem:
        """Read a system written by :meth:`save` (bit for bit)."""
        f = load_arrays(path, "LinearGaussianSystem.load")
        missing = [k for k in (*cls.TENSOR_FIELDS, "horizon", "dtype") if k not in f]
        if missing:
            raise ValueError(f"LinearGaussianSystem.load: path: expected a file written by "
                             f"LinearGaussianSystem.save, missing {missing}")
        kw = {k: torch.as_tensor(f[k]) for k in cls.TENSOR_FIELDS}
        return cls(horizon=int(f["horizon"]), dtype=getattr(torch, str(f["dtype"])), **kw)

    def __eq__(self, other) -> bool:
        """Field by field, tensors compared with :func:`torch.equal` (same shapes and values)."""
        if not isinstance(other, LinearGaussianSystem):
            return NotImplemented
        return all(
            torch.equal(getattr(self, f.name), getattr(other, f.name)) if f.name in self.TENSOR_FIELDS
            else getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )

    def __hash__(self) -> int:
        """Consistent with ``==``: equal systems share horizon, dtype and shapes."""
        return hash((self.horizon, self.dtype, tuple(self.A.shape), tuple(self.B.shape)))

    @property
    def state_dim(self) -> int:
        """Number of state dimensions ``n``."""
        return self.A.shape[-1]

    @property
    def action_dim(self) -> int:
        """Number of action dimensions ``m``."""
        return self.B.shape[-1]

    @property
    def batch_shape(self) -> torch.Size:
        """Broadcast batch shape of all fields."""
        return torch.broadcast_shapes(
            self.A.shape[:-2], self.B.shape[:-2], self.H.shape[:-2], self.W.shape[:-2],
            self.H_T.shape[:-2], self.Sigma0.shape[:-2], self.c.shape[:-1], self.h.shape[:-1],
            self.h_T.shape[:-1], self.mu0.shape[:-1],
        )

    def reward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Reward ``r(x, u) = -1/2 z^T H z + h^T z``.

        Args:
            x: States, shape ``(..., n)``.
            u: Actions, shape ``(..., m)``.

        Returns:
            torch.Tensor: Rewards, shape ``(...)``.
        """
        x, u = torch.broadcast_tensors(x[..., :, None], u[..., None, :])
        z = torch.cat([x[..., :, 0], u[..., 0, :]], dim=-1)
        Hz = (self.H @ z.unsqueeze(-1)).squeeze(-1)
        return -0.5 * (z * Hz).sum(-1) + (self.h * z).sum(-1)

    def terminal_reward(self, x: torch.Tensor) -> torch.Tensor:
        """Terminal reward ``r_T(x) = -1/2 x^T H_T x + h_T^T x``; ``x`` of shape ``(..., n)``."""
        Hx = (self.H_T @ x.unsqueeze(-1)).squeeze(-1)
        return -0.5 * (x * Hx).sum(-1) + (self.h_T * x).sum(-1)

    def step_mean(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Noise-free next state ``A x + B u + c``; ``x (..., n)``, ``u (..., m)`` -> ``(..., n)``."""
        return (self.A @ x.unsqueeze(-1)).squeeze(-1) + (self.B @ u.unsqueeze(-1)).squeeze(-1) + self.c
