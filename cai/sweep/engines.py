"""Engines: one interface to run tasks serially, on joblib's process pool, or on a Ray cluster.

An engine maps :func:`run_task` over a list of tasks and yields ``(index, result)`` pairs as the
tasks finish (in any order). Each task is a chunk of configurations; :func:`run_task` evaluates
the user's function on each (or once on the whole chunk for a batched function) and turns an
exception into an error record, so that one failing configuration never kills a sweep.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from cai.mdp.checks import check_positive_int

__all__ = ["RAY_START_ATTEMPTS", "Engine", "SerialEngine", "JoblibEngine", "RayEngine", "ENGINES", "make_engine", "run_task"]

Record = Dict[str, Any]

#: Tries of ``ray.init`` before giving up: on a loaded machine the local node can time out while
#: starting (its raylet and object store), and a second start usually succeeds.
RAY_START_ATTEMPTS = 2


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def run_task(fn: Callable, configs: Sequence[Record], threads: Optional[int] = 1) -> List[Tuple[Optional[Record], Optional[str]]]:
    """Evaluate ``fn`` on a chunk of configurations; one ``(record, error)`` pair per configuration.

    A function with ``fn.batch_axis`` set is called once with the whole chunk and must return one
    record per configuration; otherwise it is called on each configuration. A record is a dict of
    results (its keys become columns). Exceptions become ``(None, "Type: message")``.

    Args:
        threads: torch intra-op threads in this process (1 in workers: the pool is the parallelism).
    """
    if threads is not None:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    if getattr(fn, "batch_axis", None):
        try:
            records = list(fn([dict(c) for c in configs]))
            if len(records) != len(configs):
                raise ValueError(f"batched function returned {len(records)} records for {len(configs)} configurations")
            return [_checked(r) for r in records]
        except Exception as exc:  # noqa: BLE001 - recorded per row, never raised
            return [(None, _error(exc))] * len(configs)
    out = []
    for c in configs:
        try:
            out.append(_checked(fn(dict(c))))
        except Exception as exc:  # noqa: BLE001
            out.append((None, _error(exc)))
    return out


def _checked(record: Any) -> Tuple[Optional[Record], Optional[str]]:
    if not isinstance(record, dict):
        return None, f"TypeError: expected the function to return a dict, got {type(record).__name__}"
    return record, None


class Engine:
    """Runs :func:`run_task` over tasks. Subclasses implement :meth:`map`."""

    name = "engine"
    workers = 1

    def map(self, fn: Callable, tasks: Sequence[Sequence[Record]]) -> Iterator[Tuple[int, list]]:
        """Yield ``(task index, run_task result)`` as tasks finish."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the engine started."""


class SerialEngine(Engine):
    """Everything in this process, in order (torch threads left as they are)."""

    name = "serial"

    def map(self, fn: Callable, tasks: Sequence[Sequence[Record]]) -> Iterator[Tuple[int, list]]:
        for i, task in enumerate(tasks):
            yield i, run_task(fn, task, threads=None)


class JoblibEngine(Engine):
    """joblib's process pool (loky) with ``workers`` processes, each on one torch thread."""

    name = "joblib"

    def __init__(self, workers: int = 2) -> None:
        self.workers = check_positive_int("workers", workers)

    def map(self, fn: Callable, tasks: Sequence[Sequence[Record]]) -> Iterator[Tuple[int, list]]:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=self.workers, return_as="generator_unordered", backend="loky")
        yield from par(delayed(_indexed)(i, fn, task) for i, task in enumerate(tasks))


def _indexed(i: int, fn: Callable, task) -> Tuple[int, list]:
    return i, run_task(fn, task)


class RayEngine(Engine):
    """Ray: a local cluster (``ray.init(num_cpus=workers)``) unless one is running or ``address`` is given.

    Args:
        workers: CPUs of the local cluster it starts (ignored when connecting to ``address``).
        address: the address of an existing cluster (``"auto"`` or ``"ray://host:port"``).
    """

    name = "ray"

    def __init__(self, workers: int = 2, address: Optional[str] = None) -> None:
        self.workers = check_positive_int("workers", workers)
        self.address = address
        self._started = False

    def _ray(self):
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the Ray engine needs ray: pip install 'control-as-inference[ray]'") from exc
        if not ray.is_initialized():
            for attempt in range(RAY_START_ATTEMPTS):
                try:
                    if self.address is None:
                        ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
                    else:
                        ray.init(address=self.address, log_to_driver=False)
                    break
                except Exception:  # noqa: BLE001 - a busy machine can time out Ray's node start-up
                    ray.shutdown()
                    if attempt == RAY_START_ATTEMPTS - 1:
                        raise
            self._started = True
        return ray

    def map(self, fn: Callable, tasks: Sequence[Sequence[Record]]) -> Iterator[Tuple[int, list]]:
        ray = self._ray()
        remote = ray.remote(num_cpus=1)(_indexed)
        fn_ref = ray.put(fn)
        pending = [remote.remote(i, fn_ref, task) for i, task in enumerate(tasks)]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


#: engine name -> class
ENGINES = {"serial": SerialEngine, "joblib": JoblibEngine, "ray": RayEngine}


def make_engine(engine: Any = None, workers: int = 1) -> Engine:
    """An :class:`Engine` from a name (``"serial"``, ``"joblib"``, ``"ray"``), an engine, or ``None``
    (serial for one worker, joblib otherwise).

    Raises:
        ValueError: unknown engine name.
        TypeError: neither a name nor an :class:`Engine`.
    """
    if isinstance(engine, Engine):
        return engine
    if engine is None:
        engine = "serial" if workers == 1 else "joblib"
    if not isinstance(engine, str):
        raise TypeError(f"engine: expected 'serial', 'joblib', 'ray' or an Engine, got {type(engine).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    return SerialEngine() if engine == "serial" else ENGINES[engine](workers)


def chunks(configs: Sequence[Record], size: int) -> Iterable[List[Record]]:
    """Consecutive chunks of ``size`` configurations."""
    for i in range(0, len(configs), size):
        yield list(configs[i:i + size])


__all__ += ["chunks"]
