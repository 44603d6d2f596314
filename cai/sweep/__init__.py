"""Experiments beyond one process: configuration grids mapped over a function, results as a table.

:func:`sweep` maps a function over configurations (dicts; :func:`grid` builds their cartesian
product) on one engine interface — serial, joblib's process pool (the default for
``workers > 1``) or a Ray cluster (``control-as-inference[ray]``) — and returns a tidy pandas DataFrame, one row per
configuration with the configuration's fields as columns. Rows are appended to a JSON-lines file
as they arrive, a rerun skips the configurations already done, and a configuration that raises
becomes a row with its error. :mod:`cai.sweep.studies` holds the built-in studies that
``cai sweep SPEC`` runs.
"""
from cai.sweep.config import config_key, grid
from cai.sweep.engines import ENGINES, Engine, JoblibEngine, RayEngine, SerialEngine, make_engine
from cai.sweep.run import read_results, sweep

__all__ = ["sweep", "grid", "config_key", "read_results", "Engine", "SerialEngine", "JoblibEngine", "RayEngine",
           "ENGINES", "make_engine"]
