"""Configurations: plain dicts of JSON-serialisable values, their grids and their stable keys."""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any, Dict, List, Mapping, Sequence

__all__ = ["grid", "config_key", "check_configs"]


def grid(**axes: Any) -> List[Dict[str, Any]]:
    """The cartesian product of the axes given as lists; scalars are held fixed.

    ``grid(world="cliff", slip=[0.0, 0.1], alpha=[0.1, 1.0])`` gives four configurations, ordered
    with the last axis varying fastest.

    Returns:
        A list of dicts, one per configuration.

    Raises:
        ValueError: an axis given as an empty list.
    """
    names, values = [], []
    for name, v in axes.items():
        if isinstance(v, (list, tuple)):
            if not v:
                raise ValueError(f"{name}: expected a non-empty list of values, got an empty list")
            values.append(list(v))
        else:
            values.append([v])
        names.append(name)
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def _normalise(x: Any) -> Any:
    if isinstance(x, float) and math.isfinite(x) and x == int(x) and abs(x) < 2 ** 53:
        return x                                  # 1.0 and 1 stay distinct on purpose: keys hash the spelling
    if isinstance(x, (list, tuple)):
        return [_normalise(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _normalise(v) for k, v in x.items()}
    return x


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit key of a configuration (SHA-1 of its canonical JSON, keys sorted)."""
    text = json.dumps(_normalise(dict(config)), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def check_configs(configs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Validate a list of configurations: dicts with string keys and JSON-serialisable values.

    Raises:
        TypeError: a configuration that is not a mapping, or a value JSON cannot hold.
        ValueError: duplicate configurations (they would share one row).
    """
    if isinstance(configs, (Mapping, str, bytes)):
        raise TypeError(f"configs: expected a list of dicts (e.g. from cai.sweep.grid), got {type(configs).__name__}")
    out, seen = [], {}
    for i, c in enumerate(configs):
        if not isinstance(c, Mapping):
            raise TypeError(f"configs[{i}]: expected a dict, got {type(c).__name__}")
        for k in c:
            if not isinstance(k, str):
                raise TypeError(f"configs[{i}]: expected string keys, got {k!r}")
            if k in ("key", "error"):
                raise ValueError(f"configs[{i}]: {k!r} is a reserved column name")
        try:
            key = config_key(c)
        except TypeError as exc:
            raise TypeError(f"configs[{i}]: expected JSON-serialisable values: {exc}") from None
        if key in seen:
            raise ValueError(f"configs[{i}]: duplicate of configs[{seen[key]}] ({dict(c)!r})")
        seen[key] = i
        out.append(dict(c))
    return out
