"""Reusable training callbacks for the deep learners: evaluation, checkpoints, early stopping, TensorBoard.

A callback is what ``fit(..., callback=...)`` calls after every environment step with a dict of the
training loop's locals (:func:`~cai.algorithms.deep.loop.run_off_policy` lists them: ``learner``,
``step``, ``reward``, ``episode_done``, ``losses``, ``history``, ...); returning ``False`` stops training
after that step. The classes here follow Stable-Baselines3's feel::

    from cai.algorithms.deep import SAC
    from cai.algorithms.deep.callbacks import CallbackList, CheckpointCallback, EarlyStopping, EvalCallback

    evaluation = EvalCallback("Pendulum-v1", eval_every=1000, n_episodes=5, best_model_path="best.pt")
    callbacks = CallbackList([evaluation, EarlyStopping(threshold=-200.0, patience=5),
                              CheckpointCallback(5000, "ckpt_{step}.pt")])
    SAC().fit("Pendulum-v1", 50_000, callback=callbacks)

Every evaluation, the loop's own (``config.eval_every``) or an :class:`EvalCallback`'s, is recorded in
the learner's ``history_`` (``eval_steps``, ``eval_returns``): :class:`EarlyStopping` and
:class:`TensorBoardCallback` read them there, so they work with either source (put them after the
:class:`EvalCallback` in the list: callbacks run in order). Use one source, not both at once.
Time spent in callbacks counts in ``history_.wall_time`` (the loop's own evaluations do not).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from cai.algorithms.deep.base import make_env
from cai.algorithms.deep.loop import Callback, checkpoint_file, evaluate_policy, evaluation_seed
from cai.mdp.checks import check_positive_int

__all__ = ["BaseCallback", "CallbackList", "EvalCallback", "CheckpointCallback", "EarlyStopping",
           "TensorBoardCallback"]


class BaseCallback:
    """A training callback object: ``callback(locals) -> bool`` counts the call and runs :meth:`on_step`.

    Subclasses override :meth:`on_step` and, if they need them, :meth:`on_training_start` and
    :meth:`on_training_end` (called by the loop at the start and the end of every ``fit``).

    Attributes:
        n_calls: Steps this callback has been called on (over every ``fit`` it was passed to).
        learner: The learner of the last call (None before the first).
    """

    def __init__(self) -> None:
        self.n_calls = 0
        self.learner: Any = None

    def __call__(self, local: Dict[str, Any]) -> bool:
        self.n_calls += 1
        self.learner = local["learner"]
        return self.on_step(local) is not False

    def on_step(self, local: Dict[str, Any]) -> bool:
        """Called after every environment step; return ``False`` to stop training.

        Args:
            local: The training loop's locals (see :func:`~cai.algorithms.deep.loop.run_off_policy`).

        Returns:
            Whether training goes on.
        """
        return True

    def on_training_start(self, local: Dict[str, Any]) -> None:
        """Called before the first step of a ``fit`` with ``learner``, ``total_steps``, ``history``."""
        self.learner = local["learner"]

    def on_training_end(self, local: Dict[str, Any]) -> None:
        """Called when a ``fit`` ends (normally, stopped by a callback, or by an exception)."""


class CallbackList(BaseCallback):
    """Several callbacks as one, called in order; training stops if any returns ``False``.

    Every callback is called at every step (a stop requested by the first does not skip the others
    at that step), as with a plain list passed to ``fit``.

    Args:
        callbacks: Callables ``(locals) -> bool | None`` (callback objects or functions).

    Raises:
        TypeError: ``callbacks`` is not a sequence of callables.
    """

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        super().__init__()
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks: expected a list of callables, got {type(callbacks).__name__}")
        for i, c in enumerate(callbacks):
            if not callable(c):
                raise TypeError(f"callbacks[{i}]: expected a callable, got {type(c).__name__}")
        self.callbacks = list(callbacks)

    def on_step(self, local: Dict[str, Any]) -> bool:
        keep_going = True
        for c in self.callbacks:
            keep_going = (c(local) is not False) and keep_going
        return keep_going

    def on_training_start(self, local: Dict[str, Any]) -> None:
        super().on_training_start(local)
        for c in self.callbacks:
            if hasattr(c, "on_training_start"):
                c.on_training_start(local)

    def on_training_end(self, local: Dict[str, Any]) -> None:
        for c in self.callbacks:
            if hasattr(c, "on_training_end"):
                c.on_training_end(local)


class EvalCallback(BaseCallback):
    """Evaluate the learner every ``eval_every`` steps; keep the best mean return (and the best model).

    An evaluation runs ``n_episodes`` full episodes of ``learner.act(obs)`` on
    ``eval_env`` with :func:`~cai.algorithms.deep.loop.evaluate_policy`, episode ``i`` reset with seed
    ``seed + i`` where ``seed`` is, by default, the loop's own
    :func:`~cai.algorithms.deep.loop.evaluation_seed` (so ``EvalCallback(env, N, k)`` gives exactly the
    numbers of ``config.eval_every=N, eval_episodes=k``). The returns are appended to the learner's
    ``history_.eval_steps`` / ``eval_returns`` as well as to this object's lists.

    Args:
        eval_env: Evaluation environment or gymnasium id (not the training environment object).
        eval_every: Evaluate when the learner's step count is a multiple of this (positive int).
        n_episodes: Episodes per evaluation (positive int).
        best_model_path: Where to ``save`` the learner each time the mean return beats the best so
            far (None: do not save).
        deterministic: Passed to ``act(obs, deterministic=...)``; None (default): the learner's own
            default, as the loop's evaluations use (deterministic for SAC and soft DQN, sampled for SQL).
        seed: Fixed seed of every evaluation's first episode (the same start states each time);
            None: the loop's per-step seed.
        record_in_history: Append each evaluation to the learner's ``history_``.

    Attributes:
        eval_steps: Step of each evaluation. eval_returns: Its episode returns (one list each).
        last_mean_return: Mean return of the latest evaluation (nan before the first).
        best_mean_return: Highest mean return so far (-inf before the first); best_step: its step.

    Raises:
        ValueError: ``eval_every`` or ``n_episodes`` not a positive integer; an unknown environment id.
        TypeError: ``eval_env`` neither an environment nor an id.
    """

    def __init__(self, eval_env: Any, eval_every: int, n_episodes: int = 5, *,
                 best_model_path: Union[str, os.PathLike, None] = None, deterministic: Optional[bool] = None,
                 seed: Optional[int] = None, record_in_history: bool = True) -> None:
        super().__init__()
        self.eval_env = make_env(eval_env, "eval_env")
        self.eval_every = check_positive_int("eval_every", eval_every)
        self.n_episodes = check_positive_int("n_episodes", n_episodes)
        self.best_model_path = None if best_model_path is None else os.fspath(best_model_path)
        self.deterministic = None if deterministic is None else bool(deterministic)
        self.seed = seed
        self.record_in_history = bool(record_in_history)
        self.eval_steps: List[int] = []
        self.eval_returns: List[List[float]] = []
        self.last_mean_return = math.nan
        self.best_mean_return = -math.inf
        self.best_step: Optional[int] = None

    def evaluate(self, learner: Any, step: int) -> List[float]:
        """Evaluate ``learner`` now, record the result as that of ``step``; return the episode returns.

        Saves the learner to ``best_model_path`` when the mean beats the best so far.
        """
        seed = evaluation_seed(learner.config.seed, step) if self.seed is None else int(self.seed)
        act = learner.act if self.deterministic is None else (lambda obs: learner.act(obs, deterministic=self.deterministic))
        returns = evaluate_policy(self.eval_env, act, self.n_episodes, seed=seed)
        self.eval_steps.append(int(step))
        self.eval_returns.append(returns)
        if self.record_in_history:
            learner.history_.eval_steps.append(int(step))
            learner.history_.eval_returns.append(list(returns))
        self.last_mean_return = float(np.mean(returns))
        if self.last_mean_return > self.best_mean_return:
            self.best_mean_return, self.best_step = self.last_mean_return, int(step)
            if self.best_model_path is not None:
                learner.save(self.best_model_path)
        return returns

    def on_step(self, local: Dict[str, Any]) -> bool:
        if local["step"] % self.eval_every == 0:
            self.evaluate(local["learner"], local["step"])
        return True


class CheckpointCallback(BaseCallback):
    """Save the learner every ``save_every`` steps to ``path`` (``{step}`` in it: the step count).

    Each file is a full :meth:`~cai.algorithms.deep.base.OffPolicyLearner.save` checkpoint: ``load``
    it and ``fit(None, n, reset_num_timesteps=False)`` continues exactly where the run was.

    Args:
        save_every: Save when the learner's step count is a multiple of this (positive int).
        path: File path or pattern such as ``"runs/sac_{step}.pt"`` (without ``{step}`` the one file
            is overwritten, atomically). Its directory is created if missing.

    Attributes:
        saved_paths: The files written, in order.

    Raises:
        ValueError: ``save_every`` not a positive integer.
        TypeError: ``path`` not a string or path.
    """

    def __init__(self, save_every: int, path: Union[str, os.PathLike]) -> None:
        super().__init__()
        self.save_every = check_positive_int("save_every", save_every)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a file path or pattern with {{step}}, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.saved_paths: List[str] = []

    def on_step(self, local: Dict[str, Any]) -> bool:
        step = local["step"]
        if step % self.save_every == 0:
            path = checkpoint_file(self.path, step)
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            local["learner"].save(path)
            self.saved_paths.append(path)
        return True


class EarlyStopping(BaseCallback):
    """Stop training when the evaluation mean return reaches ``threshold`` or stops improving.

    Reads the evaluations recorded in the learner's ``history_`` (by the loop's ``config.eval_every``
    or by an :class:`EvalCallback` placed before this one); it acts only at a step where a new
    evaluation appeared. With ``patience=K`` it stops at the ``K``-th evaluation in a row whose mean
    return does not beat the best by more than ``min_delta``, the best being the last mean that did
    (as Keras's ``EarlyStopping``).

    Args:
        threshold: Stop as soon as an evaluation's mean return is ``>= threshold`` (None: no threshold).
        patience: Evaluations without improvement tolerated (positive int; None: never stop for that).
        min_delta: Improvement needed to reset the patience count (``>= 0``).

    Attributes:
        stopped_step: Step at which this callback stopped training (None if it did not).
        reason: ``"threshold"`` or ``"patience"`` (None if it did not stop).
        best_mean_return: The last evaluation mean that counted as an improvement.
        bad_evaluations: Evaluations since then.

    Raises:
        ValueError: Neither ``threshold`` nor ``patience`` given; a non-finite threshold; bad
            ``patience`` or ``min_delta``.
    """

    def __init__(self, threshold: Optional[float] = None, patience: Optional[int] = None,
                 min_delta: float = 0.0) -> None:
        super().__init__()
        if threshold is None and patience is None:
            raise ValueError("threshold, patience: expected at least one stopping rule, got neither")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                      or not math.isfinite(threshold)):
            raise ValueError(f"threshold: expected a finite number, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)
        self.patience = None if patience is None else check_positive_int("patience", patience)
        if (isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not math.isfinite(min_delta)
                or min_delta < 0):
            raise ValueError(f"min_delta: expected a finite number >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.best_mean_return = -math.inf
        self.bad_evaluations = 0
        self.stopped_step: Optional[int] = None
        self.reason: Optional[str] = None
        self._seen = 0

    def on_training_start(self, local: Dict[str, Any]) -> None:
        super().on_training_start(local)
        self._seen = len(local["history"].eval_returns)      # judge the evaluations of this fit onwards

    def on_step(self, local: Dict[str, Any]) -> bool:
        history = local["history"]
        keep_going = True
        while self._seen < len(history.eval_returns):
            mean = float(np.mean(history.eval_returns[self._seen]))
            self._seen += 1
            if mean > self.best_mean_return + self.min_delta:
                self.best_mean_return, self.bad_evaluations = mean, 0
            else:
                self.bad_evaluations += 1
            if self.threshold is not None and mean >= self.threshold:
                self.reason = "threshold"
            elif self.patience is not None and self.bad_evaluations >= self.patience:
                self.reason = "patience"
            else:
                continue
            self.stopped_step, keep_going = local["step"], False
        return keep_going


def _summary_writer_class() -> type:
    """torch's ``SummaryWriter``; a clear ImportError naming the extra when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ImportError("TensorBoardCallback needs the tensorboard package: "
                          "pip install 'control-as-inference[tensorboard]'") from exc
    return SummaryWriter


class TensorBoardCallback(BaseCallback):
    """Write the training curves of ``history_`` to TensorBoard with torch's ``SummaryWriter``.

    Scalars (the global step is the environment step at which the value was recorded in ``history_``):

    * ``train/<name>``: each curve of ``history_.losses`` (logged every ``config.log_every``
      updates): SAC's ``critic``, ``actor``, ``alpha_loss``, ``alpha`` (the temperature) and
      ``entropy``; soft DQN's ``loss``, ``q_mean``; SQL's losses;
    * ``rollout/episode_return``: the undiscounted return of each finished training episode;
    * ``eval/mean_return``: the mean return over the episodes of each evaluation (the loop's own or
      an :class:`EvalCallback`'s placed before this one).

    Only what is recorded during the ``fit`` calls this callback is passed to is written; entries
    are written at the step they appear and flushed every ``flush_every`` steps and at the end of
    each ``fit`` (the writer is closed then and reopened, appending to ``log_dir``, by a later ``fit``).

    Args:
        log_dir: Directory of the event files (created if missing).
        flush_every: Flush to disk every this many steps (positive int).

    Raises:
        ImportError: The tensorboard package is missing (``pip install 'control-as-inference[tensorboard]'``);
            raised here, not at the first step.
        ValueError: ``flush_every`` not a positive integer.
    """

    def __init__(self, log_dir: Union[str, os.PathLike], flush_every: int = 1000) -> None:
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir: expected a directory path, got {type(log_dir).__name__}")
        self.log_dir = os.fspath(log_dir)
        self.flush_every = check_positive_int("flush_every", flush_every)
        self._writer_class = _summary_writer_class()
        self.writer: Any = None
        self._written: Dict[str, int] = {}

    def on_training_start(self, local: Dict[str, Any]) -> None:
        super().on_training_start(local)
        history = local["history"]
        self._written = {"episodes": len(history.episode_returns), "evals": len(history.eval_returns),
                         **{f"loss:{k}": len(v) for k, v in history.losses.items()}}
        if self.writer is None:
            self.writer = self._writer_class(log_dir=self.log_dir)

    def _write_new(self, history: Any) -> None:
        w, done = self.writer, self._written
        for name, curve in history.losses.items():
            key = f"loss:{name}"
            for step, value in curve[done.get(key, 0):]:
                w.add_scalar(f"train/{name}", value, step)
            done[key] = len(curve)
        for step, value in zip(history.episode_steps[done["episodes"]:], history.episode_returns[done["episodes"]:]):
            w.add_scalar("rollout/episode_return", value, step)
        done["episodes"] = len(history.episode_returns)
        for step, returns in zip(history.eval_steps[done["evals"]:], history.eval_returns[done["evals"]:]):
            w.add_scalar("eval/mean_return", float(np.mean(returns)), step)
        done["evals"] = len(history.eval_returns)

    def on_step(self, local: Dict[str, Any]) -> bool:
        if self.writer is None:                 # called outside fit (no start hook): open now
            self.on_training_start(dict(learner=local["learner"], history=local["history"]))
        self._write_new(local["history"])
        if local["step"] % self.flush_every == 0:
            self.writer.flush()
        return True

    def on_training_end(self, local: Dict[str, Any]) -> None:
        if self.writer is not None:
            self._write_new(local["history"])
            self.close()

    def close(self) -> None:
        """Flush and close the event file (a later ``fit`` opens a new one in ``log_dir``)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
