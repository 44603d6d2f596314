"""``--threads N`` for the benchmark scripts, applied before NumPy loads its BLAS.

OpenBLAS (NumPy, SciPy) reads its thread count once, when it loads, so a script sets the
environment from its own command line before importing NumPy: ``apply_thread_env(sys.argv)``.
This module imports nothing heavy for that reason.
"""
from __future__ import annotations

import os
from typing import List, Optional

__all__ = ["threads_from_argv", "apply_thread_env"]

_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def threads_from_argv(argv: List[str]) -> Optional[str]:
    """The value of ``--threads N`` (or ``--threads=N``) in ``argv``, or None."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return None


def apply_thread_env(argv: List[str]) -> None:
    """Set the BLAS/OpenMP thread variables to ``--threads N`` when ``argv`` has it (the same
    count for both sides of every comparison)."""
    n = threads_from_argv(argv)
    if n is not None:
        for var in _VARS:
            os.environ[var] = n
