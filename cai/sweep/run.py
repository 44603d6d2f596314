"""Run a sweep: tasks out to an engine, rows back to a JSON-lines file as they arrive, a table at the end."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

from cai.mdp.checks import check_positive_int
from cai.sweep.config import check_configs, config_key
from cai.sweep.engines import Engine, chunks, make_engine

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["sweep", "read_results"]


def _json_default(x: Any):
    try:
        import numpy as np
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().cpu().tolist()
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return x.tolist()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"record value of type {type(x).__name__} is not JSON-serialisable")


def read_results(path: Union[str, os.PathLike]) -> List[Dict[str, Any]]:
    """The rows written so far to a sweep's JSON-lines file (a torn last line is ignored)."""
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    with open(p) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:              # an interrupted write: the row is redone
                continue
    return rows


def _group(configs: List[Dict[str, Any]], axis: str) -> List[List[Dict[str, Any]]]:
    """Configurations equal except on ``axis``, grouped in order of first appearance."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for c in configs:
        rest = {k: v for k, v in c.items() if k != axis}
        groups.setdefault(config_key(rest), []).append(c)
    return list(groups.values())


def sweep(fn: Callable[[Dict[str, Any]], Dict[str, Any]], configs: Sequence[Dict[str, Any]], *,
          engine: Union[str, Engine, None] = None, workers: int = 1, path: Union[str, os.PathLike, None] = None,
          chunk_size: Optional[int] = None, progress: bool = True, retry_errors: bool = False) -> pd.DataFrame:
    """Map ``fn`` over ``configs`` and return the results as a tidy table.

    Args:
        fn: ``config -> record`` (a dict of results), a module-level function so that worker
            processes can import it. A function with a ``batch_axis`` attribute (e.g. ``"alpha"``)
            is called once per group of configurations that differ only on that axis, with the
            list of those configurations, and returns one record per configuration: cai batches
            temperatures in one solve that way.
        configs: a list of dicts (see :func:`cai.sweep.grid`); values must be JSON-serialisable.
        engine: ``"serial"``, ``"joblib"``, ``"ray"`` or an :class:`~cai.sweep.Engine`; default
            serial for ``workers=1``, joblib otherwise. An engine made from a name is closed at the
            end (a Ray cluster it started is shut down); an Engine passed in stays open (reuse it
            across sweeps, close it yourself).
        workers: worker processes (joblib) or CPUs of a local Ray cluster.
        path: a JSON-lines file; each row is appended (and flushed) as it arrives, and
            configurations already in the file are not run again, so an interrupted sweep resumes
            where it stopped. ``None`` keeps the rows in memory only.
        chunk_size: configurations per task (default: about 8 tasks per worker, at most 64
            configurations each) — fewer, larger tasks pay less per-task overhead.
        progress: show a progress bar (tqdm).
        retry_errors: rerun the configurations whose stored row holds an error.

    Returns:
        A ``pandas.DataFrame``, one row per configuration in the order of ``configs``: the
        configuration's fields, the record's fields, ``key`` (:func:`cai.sweep.config_key`) and
        ``error`` (``None``, or ``"Type: message"`` for a configuration that raised).

    Raises:
        TypeError, ValueError: invalid configurations or arguments.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if not callable(fn):
        raise TypeError(f"fn: expected a callable config -> dict, got {type(fn).__name__}")
    configs = check_configs(configs)
    workers = check_positive_int("workers", workers)
    if chunk_size is not None:
        chunk_size = check_positive_int("chunk_size", chunk_size)
    eng = make_engine(engine, workers)
    owned = eng is not engine                           # an Engine passed in is the caller's to close

    done: Dict[str, Dict[str, Any]] = {}
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for row in read_results(path):
            if "key" in row and not (retry_errors and row.get("error")):
                done[row["key"]] = row
    todo = [c for c in configs if config_key(c) not in done]

    axis = getattr(fn, "batch_axis", None)
    if axis:
        tasks = _group(todo, axis)
    else:
        size = chunk_size or max(1, min(64, math.ceil(len(todo) / (8 * max(eng.workers, 1)))))
        tasks = list(chunks(todo, size))

    rows = dict(done)
    sink = open(path, "a") if path is not None else None   # noqa: SIM115 - kept open across the loop
    if sink is not None and path.stat().st_size:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                sink.write("\n")                           # after a torn last line, start a fresh one
    bar = tqdm(total=len(todo), desc=f"sweep ({eng.name})", disable=not progress or not todo)
    try:
        for i, results in eng.map(fn, tasks):
            for c, (record, error) in zip(tasks[i], results):
                text = json.dumps({**c, **(record or {}), "key": config_key(c), "error": error}, default=_json_default)
                row = json.loads(text)                # the same row in memory as on disk
                rows[row["key"]] = row
                if sink is not None:
                    sink.write(text + "\n")
            if sink is not None:
                sink.flush()
            bar.update(len(tasks[i]))
    finally:
        bar.close()
        if sink is not None:
            sink.close()
        if owned:
            eng.close()
    ordered = [rows[config_key(c)] for c in configs]
    return pd.DataFrame(ordered)
