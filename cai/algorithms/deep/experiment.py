"""Deep learners in experiment pipelines: ``train(config) -> metrics`` and a Ray Tune trainable.

:func:`train` takes one plain dict (JSON values only, so a sweep row or a Ray Tune trial can carry
it), trains, evaluates and returns a dict of metrics. It is what :func:`cai.sweep.sweep` maps over a
grid, and :func:`tune_trainable` wraps it for Ray Tune (``ray.tune.report`` after every evaluation,
so schedulers such as ASHA can stop trials early)::

    from cai.algorithms.deep.experiment import train
    from cai.sweep import grid, sweep

    configs = grid(algorithm="sac", env="Pendulum-v1", total_steps=20_000, eval_every=2000,
                   target_entropy=[-2.0, -1.0, 0.0], seed=[0, 1])
    df = sweep(train, configs, workers=2)           # one row per configuration, metrics as columns

The configuration keys:

* ``algorithm``: ``"sac"``, ``"sql"`` or ``"soft_dqn"`` (required);
* ``env``: a gymnasium id such as ``"Pendulum-v1"`` (required; the evaluation environment is a
  second instance made from the same id);
* ``total_steps``: environment steps (required);
* ``eval_every`` (default ``total_steps``), ``eval_episodes`` (default 5): the evaluation schedule
  (an :class:`~cai.algorithms.deep.callbacks.EvalCallback`); the final policy is always evaluated;
* ``stop_threshold``, ``patience``, ``min_delta``: early stopping
  (:class:`~cai.algorithms.deep.callbacks.EarlyStopping`), off unless given;
* ``log_dir``: a TensorBoard directory (:class:`~cai.algorithms.deep.callbacks.TensorBoardCallback`);
  ``best_model_path``: save the best evaluated learner there;
* every other key is a field of the algorithm's config dataclass (``SACConfig`` etc.: ``lr``,
  ``target_entropy``, ``hidden_sizes`` as a list, ``seed``, ...); ``progress`` defaults to False.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Dict, Mapping, Optional

import numpy as np

from cai.algorithms.deep.callbacks import BaseCallback, EarlyStopping, EvalCallback, TensorBoardCallback
from cai.algorithms.deep.sac import SAC, SACConfig
from cai.algorithms.deep.soft_dqn import SoftDQN, SoftDQNConfig
from cai.algorithms.deep.sql import SQL, SQLConfig
from cai.mdp.checks import check_positive_int

__all__ = ["ALGORITHMS", "EXPERIMENT_KEYS", "METRICS", "train", "tune_trainable"]

#: ``config["algorithm"]`` -> (learner class, config class).
ALGORITHMS: Dict[str, tuple] = {"sac": (SAC, SACConfig), "sql": (SQL, SQLConfig), "soft_dqn": (SoftDQN, SoftDQNConfig)}

#: Keys of a :func:`train` configuration that are not fields of the algorithm's config.
EXPERIMENT_KEYS = ("algorithm", "env", "total_steps", "eval_every", "eval_episodes", "stop_threshold", "patience",
                   "min_delta", "log_dir", "best_model_path")

#: The metrics :func:`train` returns (and reports after every evaluation), each defined in one line.
METRICS = {
    "eval_return": "mean undiscounted return over the eval_episodes episodes of the latest evaluation",
    "eval_step": "environment step of that evaluation",
    "best_return": "highest eval_return over all evaluations so far",
    "best_step": "environment step of the best evaluation",
    "steps": "environment steps taken",
    "updates": "gradient updates made",
    "episodes": "training episodes finished",
    "alpha": "temperature at the end (SAC's learned exp(log_alpha); the fixed config alpha otherwise)",
    "train_time": "seconds of environment steps and updates (the learner's history_.wall_time)",
    "wall_time": "seconds of the whole train() call, evaluations included",
    "stopped_early": "whether early stopping ended training before total_steps",
}


def _check_config(config: Any):
    """The learner class, its config, the experiment settings; ValueError/TypeError on bad input."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a dict, got {type(config).__name__}")
    algorithm = config.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"config['algorithm']: expected one of {', '.join(map(repr, ALGORITHMS))}, got {algorithm!r}")
    for key in ("env", "total_steps"):
        if key not in config:
            raise ValueError(f"config[{key!r}]: required, got a config without it")
    learner_cls, config_cls = ALGORITHMS[algorithm]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    hyper = {k: v for k, v in config.items() if k not in EXPERIMENT_KEYS}
    unknown = sorted(set(hyper) - fields)
    if unknown:
        raise ValueError(f"config: unknown keys {unknown} for {algorithm!r}; expected the experiment keys "
                         f"{list(EXPERIMENT_KEYS)} or fields of {config_cls.__name__}: {sorted(fields)}")
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
    hyper.setdefault("progress", False)
    hyper["eval_every"] = 0                                  # the EvalCallback evaluates instead
    total = check_positive_int("config['total_steps']", config["total_steps"])
    settings = dict(
        env=config["env"], total_steps=total,
        eval_every=check_positive_int("config['eval_every']", config.get("eval_every", total)),
        eval_episodes=check_positive_int("config['eval_episodes']", config.get("eval_episodes", 5)),
        stop_threshold=config.get("stop_threshold"), patience=config.get("patience"),
        min_delta=config.get("min_delta", 0.0), log_dir=config.get("log_dir"),
        best_model_path=config.get("best_model_path"))
    try:
        learner_config = config_cls(**hyper)
    except TypeError as exc:  # pragma: no cover - unknown keys are caught above
        raise ValueError(f"config: {exc}") from None
    return learner_cls, learner_config, settings


def _eval_env(env: Any) -> Any:
    if isinstance(env, str):
        return env                                           # EvalCallback makes a second instance
    import copy

    return copy.deepcopy(env)


class _Reporter(BaseCallback):
    """Calls ``report(metrics)`` each time the evaluation callback has a new result."""

    def __init__(self, evaluation: EvalCallback, report: Callable[[dict], Any], start: float,
                 stopping: Optional[EarlyStopping]) -> None:
        super().__init__()
        self.evaluation, self.report, self.start, self.stopping, self.seen = evaluation, report, start, stopping, 0

    def on_step(self, local: Dict[str, Any]) -> bool:
        if len(self.evaluation.eval_steps) > self.seen:
            self.seen = len(self.evaluation.eval_steps)
            stopped = self.stopping is not None and self.stopping.stopped_step is not None
            self.report(_metrics(local["learner"], self.evaluation, self.start, stopped))
        return True


def _metrics(learner: Any, evaluation: EvalCallback, start: float, stopped_early: bool) -> Dict[str, Any]:
    hist = learner.history_
    log_alpha = getattr(learner, "log_alpha_", None)
    alpha = float(log_alpha.detach().exp()) if log_alpha is not None else float(getattr(learner.config, "alpha", math.nan))
    return dict(
        eval_return=float(np.mean(evaluation.eval_returns[-1])) if evaluation.eval_returns else math.nan,
        eval_step=evaluation.eval_steps[-1] if evaluation.eval_steps else None,
        best_return=float(evaluation.best_mean_return) if evaluation.eval_returns else math.nan,
        best_step=evaluation.best_step,
        steps=int(learner.num_timesteps_), updates=int(learner.n_updates_), episodes=len(hist.episode_returns),
        alpha=alpha, train_time=float(hist.wall_time), wall_time=time.perf_counter() - start,
        stopped_early=bool(stopped_early))


def train(config: Mapping[str, Any], report: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Dict[str, Any]:
    """Train one deep learner as ``config`` says; evaluate it; return the metrics.

    Args:
        config: The experiment (see the module docstring for the keys): ``algorithm``, ``env``,
            ``total_steps``, the evaluation, early-stopping and logging settings, and the
            algorithm's hyperparameters by their config field names.
        report: Called with the metrics so far after every evaluation (e.g. ``ray.tune.report``);
            None: no reporting.

    Returns:
        dict: the :data:`METRICS` (floats, ints, a bool; ``eval_step``/``best_step`` ints), JSON-ready.
        The final policy is always evaluated: ``eval_step == steps``.

    Raises:
        ValueError: an unknown algorithm or key, a missing ``env`` or ``total_steps``, bad budgets
            or schedules (each names the key); an unknown environment id.
        TypeError: ``config`` not a dict; ``report`` not callable.
    """
    start = time.perf_counter()
    learner_cls, learner_config, s = _check_config(config)
    if report is not None and not callable(report):
        raise TypeError(f"report: expected a callable metrics -> None, got {type(report).__name__}")
    learner = learner_cls(learner_config)
    evaluation = EvalCallback(_eval_env(s["env"]), s["eval_every"], s["eval_episodes"],
                              best_model_path=s["best_model_path"])
    callbacks: list = [evaluation]
    stopping = None
    if s["stop_threshold"] is not None or s["patience"] is not None:
        try:
            stopping = EarlyStopping(threshold=s["stop_threshold"], patience=s["patience"], min_delta=s["min_delta"])
        except ValueError as exc:
            raise ValueError(f"config['stop_threshold'/'patience'/'min_delta']: {exc}") from None
        callbacks.append(stopping)
    if s["log_dir"] is not None:
        callbacks.append(TensorBoardCallback(s["log_dir"]))
    if report is not None:
        callbacks.append(_Reporter(evaluation, report, start, stopping))
    learner.fit(s["env"], s["total_steps"], callback=callbacks)
    stopped = stopping is not None and stopping.stopped_step is not None
    if not evaluation.eval_steps or evaluation.eval_steps[-1] != learner.num_timesteps_:
        evaluation.evaluate(learner, learner.num_timesteps_)        # the final policy, always
        if report is not None:
            report(_metrics(learner, evaluation, start, stopped))
    return _metrics(learner, evaluation, start, stopped)


def tune_trainable(config: Dict[str, Any], report: Optional[Callable[[Dict[str, Any]], Any]] = None) -> None:
    """Ray Tune function trainable: :func:`train` reporting through ``ray.tune.report``.

    Use as ``ray.tune.Tuner(tune_trainable, param_space={...})``; every evaluation becomes one
    Tune result (``training_iteration``), the last one holding the final metrics.

    Args:
        config: A :func:`train` configuration (Tune resolves the search space into it).
        report: Instead of ``ray.tune.report`` (to run the trainable without Tune, e.g. in tests).

    Raises:
        ImportError: ``report`` is None and Ray Tune is missing (``pip install 'control-as-inference[tune]'``).
    """
    if report is None:
        try:
            from ray import tune
        except ImportError as exc:
            raise ImportError("tune_trainable reports to Ray Tune: pip install 'control-as-inference[tune]'") from exc
        report = tune.report
    train(config, report=report)
