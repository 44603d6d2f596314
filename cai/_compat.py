"""Deprecation aliases for modules that moved in the 0.2 layout (removed in 0.3)."""
from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any, Callable, Dict

__all__ = ["moved", "moved_names"]


def moved(old: str, new: str) -> None:
    """Make the module ``old`` an alias of ``new``, warning once on import.

    Called from the one-line shim left at the old path: after it, ``import old`` and
    ``from old import name`` give the objects of ``new`` itself (not copies).
    """
    warnings.warn(f"{old} moved to {new}; the old name will be removed in cai 0.3", DeprecationWarning,
                  stacklevel=3)
    sys.modules[old] = importlib.import_module(new)


def moved_names(old: str, homes: Dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a package whose names moved: ``homes`` maps each name to its new module.

    Returns the function to assign to the old package's ``__getattr__``.
    """
    def __getattr__(name: str):
        if name not in homes:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old}.{name} moved to {homes[name]}.{name}; the old name will be removed in cai 0.3",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(homes[name]), name)
    return __getattr__
