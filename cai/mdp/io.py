"""The one file format of models and results: a NumPy ``.npz`` archive of named arrays.

``save_arrays(path, arrays)`` writes every array uncompressed (floats round-trip bit for bit) and
``load_arrays(path)`` reads them back eagerly, with pickling disabled. Both append ``".npz"`` to a
path that lacks it, as :func:`numpy.savez` does, so ``save("x")`` and ``load("x")`` meet at
``x.npz``. Nested records store their parts under ``"prefix/"`` keys (:func:`prefixed`).
"""
from __future__ import annotations

import os
from typing import Dict, Mapping

import numpy as np

from cai.typing import PathLike

__all__ = ["npz_path", "save_arrays", "load_arrays", "prefixed", "unprefixed"]


def npz_path(path: PathLike) -> str:
    """``path`` as a string ending in ``".npz"``."""
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"path: expected a file name, got {type(path).__name__}")
    return p if p.endswith(".npz") else p + ".npz"


def save_arrays(path: PathLike, arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` to ``path`` (``.npz`` appended when missing); return the path written."""
    p = npz_path(path)
    np.savez(p, **arrays)
    return p


def load_arrays(path: PathLike, fn: str = "load") -> Dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file written by :func:`save_arrays`.

    Raises:
        ValueError: naming ``path`` when neither ``path`` nor ``path + ".npz"`` exists.
    """
    p = os.fspath(path)
    if not isinstance(p, str):
        raise TypeError(f"{fn}: path: expected a file name, got {type(path).__name__}")
    if not os.path.exists(p) and os.path.exists(npz_path(p)):
        p = npz_path(p)
    if not os.path.isfile(p):
        raise ValueError(f"{fn}: path: expected an .npz file written by save(), got {p!r}, which does not exist")
    with np.load(p, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def prefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """``arrays`` with every key written ``prefix/key``."""
    return {f"{prefix}/{k}": v for k, v in arrays.items()}


def unprefixed(prefix: str, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The arrays stored under ``prefix/`` by :func:`prefixed`, with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
