"""Sweep specifications: a YAML or TOML file naming a study, its grid and the engine.

Example (``optimism.yaml``)::

    study: optimism          # a name from cai.sweep.studies.STUDIES
    grid:                    # lists are axes, scalars are fixed; missing axes take the study's defaults
      world: cliff
      slip: [0.0, 0.1, 0.2]
      alpha: [0.3, 1.0, 3.0]
    engine: joblib           # serial | joblib | ray
    workers: 2
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Union

__all__ = ["load_spec", "SPEC_KEYS"]

SPEC_KEYS = ("study", "grid", "engine", "workers", "address")


def load_spec(path: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read and validate a spec file (``.yaml``/``.yml`` or ``.toml``).

    Returns:
        ``{"study": name, "configs": [...], "engine": str, "workers": int, "address": str or None}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown format, unknown keys or study, or a malformed grid.
    """
    from cai.sweep.config import grid
    from cai.sweep.studies import STUDIES

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"spec: no such file {str(p)!r}")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ImportError("YAML specs need pyyaml: pip install 'control-as-inference[sweep]'") from exc
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ValueError(f"spec: {p.name} is not valid YAML{where}: {problem}") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            import tomli as tomllib
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"spec: {p.name} is not valid TOML: {str(exc).splitlines()[0]}") from None
    else:
        raise ValueError(f"spec: expected a .yaml, .yml or .toml file, got {p.name!r}")
    if not isinstance(data, dict):
        raise ValueError(f"spec: expected a mapping at the top of {p.name}, got {type(data).__name__}")
    unknown = set(data) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"spec: unknown keys {sorted(unknown)}; expected some of {list(SPEC_KEYS)}")
    study = data.get("study")
    if study not in STUDIES:
        raise ValueError(f"spec: study: expected one of {', '.join(STUDIES)}, got {study!r}")
    axes = dict(STUDIES[study][1])
    g = data.get("grid") or {}
    if not isinstance(g, dict):
        raise ValueError(f"spec: grid: expected a mapping of axis -> value or list, got {type(g).__name__}")
    axes.update(g)
    workers = data.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"spec: workers: expected a positive integer, got {workers!r}")
    return {"study": study, "configs": grid(**axes), "engine": data.get("engine"), "workers": workers,
            "address": data.get("address")}
