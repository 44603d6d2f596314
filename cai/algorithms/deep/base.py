"""What SAC, SQL and soft DQN share as learners: checked input, ``fit`` that resumes, ``save`` / ``load``.

Conventions follow Stable-Baselines3 where users expect them: ``fit`` accepts an environment or a
gymnasium id (``"Pendulum-v1"``), a ``callback`` (a callable or a list, called every step; returning
``False`` stops training), ``reset_num_timesteps=False`` to continue training, ``save(path)`` and the
classmethod ``load(path, env=None)``.

What a checkpoint holds (:meth:`OffPolicyLearner.save`): the config, the spaces, every network's
and optimiser's state (the temperature and its optimiser for SAC), the replay buffer (contents,
write position, sampling RNG), the step and update counters, the training history, the loop's
unfinished episode (current observation, return so far), the RNG states (Python ``random``, NumPy's
global generator, torch's CPU generator and, for a CUDA device, the CUDA generators, and the
learner's own NumPy generator) and the training environment itself when it can be pickled (a
gymnasium environment then keeps its RNG, its physical state and its time-limit counter).

Continuing is exact: ``fit(env, n)`` then ``fit(None, m, reset_num_timesteps=False)`` (or
``save`` / ``load`` between the two) takes the same steps, updates and random draws as
``fit(env, n + m)`` and ends bit for bit in the same state on CPU, provided

* the environment continues where it was: the same object in the same process, or the pickled
  copy a checkpoint restores (``load(path)`` with ``env=None``). An environment that does not
  pickle (a simulator holding native handles) is not saved; resuming then needs ``env=`` and starts
  a new episode, reset with seed ``config.seed + num_timesteps_`` (the unfinished episode is
  dropped from the history), and continues *statistically*, not bit for bit. The same happens
  when a different environment is passed to a resumed ``fit`` or to ``load``;
* nothing else changes the global RNGs *within* a ``fit`` call (between calls does not matter:
  the learner captures the RNG states when ``fit`` returns and restores them when it resumes).

The learners use the global torch generator (network initialisation, policy noise), so ``fit``
seeds it (``config.seed``) on a fresh start and restores it on a resume.
Checkpoints are pickles (``torch.save``): load only files you trust.
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
import os
import pickle
import random
import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from cai.algorithms.deep.loop import Callback, LoopState, TrainingHistory, run_off_policy, seed_everything

__all__ = ["NotFittedError", "OffPolicyLearner", "DiscretePolicyLearner", "make_env", "space_kind", "CHECKPOINT_FORMAT"]

#: Version of the checkpoint layout written by :meth:`OffPolicyLearner.save`.
CHECKPOINT_FORMAT = 1


class NotFittedError(ValueError, AttributeError):
    """A learner was asked to act or save before ``fit`` (or ``load``) built it."""


def make_env(env: Any, name: str = "env") -> Any:
    """An environment from a gymnasium id (made with ``gymnasium.make``) or a gymnasium-API object.

    Args:
        env: An id such as ``"Pendulum-v1"`` or an object with ``reset``, ``step``,
            ``observation_space`` and ``action_space``.
        name: The argument's name, for error messages.

    Returns:
        The environment.

    Raises:
        ImportError: An id was given and gymnasium is not installed.
        ValueError: gymnasium does not know the id.
        TypeError: ``env`` is neither.
    """
    if isinstance(env, str):
        try:
            import gymnasium
        except ImportError as e:  # pragma: no cover - gymnasium is installed in CI
            raise ImportError(f"{name}: making the environment {env!r} needs gymnasium (pip install 'cai[gym]')") from e
        try:
            return gymnasium.make(env)
        except gymnasium.error.Error as e:
            raise ValueError(f"{name}: expected a gymnasium environment id, got {env!r} ({e})") from e
    if not all(hasattr(env, a) for a in ("reset", "step", "observation_space", "action_space")):
        raise TypeError(f"{name}: expected a gymnasium-API environment (reset, step, observation_space, action_space) "
                        f"or an environment id, got {type(env).__name__}")
    return env


def space_kind(space: Any) -> str:
    """``"discrete"`` (has ``n``, no bounds), ``"box"`` (has ``low``, ``high``, ``shape``) or ``"other"``."""
    if hasattr(space, "n") and not hasattr(space, "low"):
        return "discrete"
    if all(hasattr(space, a) for a in ("low", "high", "shape")):
        return "box"
    return "other"


def _same_space(a: Any, b: Any) -> bool:
    kind = space_kind(a)
    if kind != space_kind(b):
        return False
    if kind == "discrete":
        return int(a.n) == int(b.n) and int(getattr(a, "start", 0)) == int(getattr(b, "start", 0))
    if kind == "box":
        return (tuple(a.shape) == tuple(b.shape) and np.array_equal(np.asarray(a.low), np.asarray(b.low))
                and np.array_equal(np.asarray(a.high), np.asarray(b.high)))
    return tuple(getattr(a, "shape", ())) == tuple(getattr(b, "shape", ()))


class OffPolicyLearner:
    """Base of :class:`~cai.algorithms.deep.sac.SAC`, :class:`~cai.algorithms.deep.sql.SQL` and
    :class:`~cai.algorithms.deep.soft_dqn.SoftDQN`.

    Subclasses set ``config_class``, ``action_kind`` (``"box"`` or ``"discrete"``), the attribute
    names of their networks (``_modules``), optimisers (``_optimizers``) and other learned tensors
    (``_tensors``), and implement ``_build(observation_space, action_space)``, ``update(batch)``,
    ``act(obs, deterministic)`` and ``_loop_kwargs()`` (the keyword arguments of
    :func:`~cai.algorithms.deep.loop.run_off_policy`).

    Attributes (after ``fit`` or ``load``):
        num_timesteps_: Environment steps taken so far. n_updates_: Gradient updates so far.
        history_: :class:`~cai.algorithms.deep.loop.TrainingHistory`. buffer_: the replay buffer.
        env_: The training environment the next resumed ``fit`` continues with (None after
            ``load`` of a checkpoint without a picklable environment and without ``env=``).
        observation_space_, action_space_: The spaces the networks were built for.
    """

    config_class: type = object
    action_kind: str = "box"
    _modules: Sequence[str] = ()
    _optimizers: Sequence[str] = ()
    _tensors: Sequence[str] = ()

    def __init__(self, config: Any = None) -> None:
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config: expected a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config

    # ------------------------------------------------------------------ checks
    @property
    def is_fitted(self) -> bool:
        """Whether the learner has been built by ``fit`` or ``load``."""
        return "buffer_" in self.__dict__

    def _check_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__}.{what}: the learner has no networks yet; "
                                 f"call fit(env, total_steps) or {type(self).__name__}.load(path) first")

    def _check_env(self, env, name: str = "env", same_spaces: bool = True) -> Any:
        """``env`` made from an id if needed; its action space of this learner's kind and, with
        ``same_spaces`` on a built learner, its spaces those the networks were built for."""
        env = make_env(env, name)
        kind = space_kind(env.action_space)
        if kind != self.action_kind:
            need = "a continuous (Box)" if self.action_kind == "box" else "a discrete (Discrete)"
            raise ValueError(f"{name}: {type(self).__name__} needs {need} action space, got {env.action_space!r}")
        if same_spaces and self.is_fitted and not (_same_space(env.action_space, self.action_space_)
                                   and tuple(env.observation_space.shape) == tuple(self.observation_space_.shape)):
            raise ValueError(f"{name}: expected the spaces the learner was built for (observations "
                             f"{tuple(self.observation_space_.shape)}, actions {self.action_space_!r}), got "
                             f"observations {tuple(env.observation_space.shape)}, actions {env.action_space!r}")
        return env

    # ------------------------------------------------------------------ building
    def _setup(self, observation_space: Any, action_space: Any) -> None:
        """Seed, then build networks, optimisers and buffer for these spaces; zero the counters."""
        self.rng_ = seed_everything(self.config.seed)
        self.observation_space_, self.action_space_ = observation_space, action_space
        self._build(observation_space, action_space)
        self.history_ = TrainingHistory()
        self.n_updates_ = 0
        self.num_timesteps_ = 0
        self.loop_state_ = LoopState()
        self._rng_snapshot = None

    def _build(self, observation_space: Any, action_space: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _loop_kwargs(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ RNG states
    def _capture_rng(self) -> dict:
        cuda = None
        if torch.device(self.config.device).type == "cuda" and torch.cuda.is_available():
            cuda = torch.cuda.get_rng_state_all()
        return dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(), cuda=cuda,
                    learner=copy.deepcopy(self.rng_.bit_generator.state))

    def _restore_rng(self, state: dict) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        self.rng_.bit_generator.state = copy.deepcopy(state["learner"])

    # ------------------------------------------------------------------ training
    def fit(self, env: Any, total_steps: int, eval_env: Any = None, *,
            callback: Union[None, Callback, Sequence[Callback]] = None,
            reset_num_timesteps: bool = True) -> OffPolicyLearner:
        """Train for ``total_steps`` more environment steps.

        Args:
            env: A gymnasium-API environment or a gymnasium id. With ``reset_num_timesteps=False``,
                None means the environment of the previous ``fit`` (or the one ``load`` restored),
                which continues mid-episode.
            total_steps: Environment steps to take in this call (positive int).
            eval_env: Evaluation environment (or id); None means a copy of ``env``.
            callback: A callable or list of callables, each called after every step with a dict
                of the loop's locals (see :func:`~cai.algorithms.deep.loop.run_off_policy`);
                returning ``False`` stops training. Raising ``KeyboardInterrupt`` from one (or
                pressing Ctrl-C) stops after the current step with the learner consistent.
            reset_num_timesteps: True (default): start from scratch (seed, build networks,
                empty buffer, step 0; a warning if the learner came from ``load``). False: continue the networks, buffer, counters, RNG states
                and the unfinished episode of the previous ``fit`` or of ``load``; on a learner
                that was never fitted it is a fresh start.

        Returns:
            The learner.

        Raises:
            ValueError: ``total_steps`` not a positive integer; an environment with the wrong kind
                of action space, or spaces other than those of the learner being resumed; env None
                without a previous environment.
            TypeError: ``env`` neither an environment nor an id.
        """
        if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
            raise ValueError(f"total_steps: expected a positive integer number of environment steps, "
                             f"got {total_steps!r}")
        resume = (not reset_num_timesteps) and self.is_fitted
        if env is None:
            if not resume or getattr(self, "env_", None) is None:
                raise ValueError("env: expected an environment or a gymnasium id, got None (None is only allowed "
                                 "when resuming with reset_num_timesteps=False a learner that has an environment)")
            env = self.env_
        else:
            env = self._check_env(env, same_spaces=resume)
        eval_env = None if eval_env is None else self._check_env(eval_env, "eval_env", same_spaces=resume)
        if resume:
            if env is not getattr(self, "env_", None):
                self.loop_state_.obs = None  # another environment: start a new episode
            if self._rng_snapshot is not None:
                self._restore_rng(self._rng_snapshot)
        else:
            if getattr(self, "_loaded", False):
                warnings.warn(f"fit: reset_num_timesteps=True starts {type(self).__name__} from scratch and discards "
                              "the loaded networks, buffer and counters; pass reset_num_timesteps=False to continue",
                              UserWarning, stacklevel=2)
            self._setup(env.observation_space, env.action_space)
            self._loaded = False
        self.env_ = env
        self._in_fit = True
        try:
            run_off_policy(self, env, int(total_steps), eval_env, callback=callback, resume=resume,
                           **self._loop_kwargs())
        finally:
            self._in_fit = False
            self._rng_snapshot = self._capture_rng()
        return self

    # ------------------------------------------------------------------ persistence
    def _pickled_env(self) -> Optional[bytes]:
        env = getattr(self, "env_", None)
        if env is None:
            return None
        try:
            return pickle.dumps(env)
        except Exception as e:  # noqa: BLE001 - any failure means "this environment does not pickle"
            warnings.warn(f"env: {type(env).__name__} could not be pickled ({type(e).__name__}: {e}); the "
                          "checkpoint does not hold it, and a resume from it starts a new episode in the "
                          "environment given to load or fit", UserWarning, stacklevel=3)
            return None

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write a checkpoint (see the module docstring for its contents) to ``path``, atomically.

        Called between ``fit`` calls, or during one (a periodic checkpoint or a callback): the
        state saved is that of the last completed step.

        Raises:
            NotFittedError: Before ``fit`` or ``load``.
        """
        self._check_fitted("save")
        rng = self._capture_rng() if getattr(self, "_in_fit", False) or self._rng_snapshot is None \
            else self._rng_snapshot
        state = dict(
            format=CHECKPOINT_FORMAT, cls=type(self).__name__, config=self.config,
            observation_space=self.observation_space_, action_space=self.action_space_,
            modules={k: getattr(self, k).state_dict() for k in self._modules},
            optimizers={k: getattr(self, k).state_dict() for k in self._optimizers},
            tensors={k: getattr(self, k).detach().clone() for k in self._tensors},
            buffer=self.buffer_.state_dict(), rng=rng, n_updates=self.n_updates_, num_timesteps=self.num_timesteps_,
            history=self.history_, loop_state=self.loop_state_, env=self._pickled_env(),
        )
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(state, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], env: Any = None, device: Optional[str] = None) -> OffPolicyLearner:
        """A learner restored from a :meth:`save` checkpoint, ready to act or to resume.

        Args:
            path: The checkpoint file.
            env: The environment (or id) the resumed ``fit`` continues with; it must have the saved
                spaces. None: the environment stored in the checkpoint (which continues the
                unfinished episode exactly), if it could be pickled. A given ``env`` starts a new
                episode at the next ``fit``.
            device: Torch device to build on instead of the saved ``config.device`` (e.g. ``"cpu"``
                for a checkpoint written on a GPU machine).

        Returns:
            The learner; continue with ``fit(None, n, reset_num_timesteps=False)``.

        Raises:
            ValueError: The file is not a checkpoint of this class, or ``env`` has other spaces.
        """
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"path: expected a cai learner checkpoint (format {CHECKPOINT_FORMAT}), got {path!r}")
        if state["cls"] != cls.__name__:
            raise ValueError(f"path: expected a {cls.__name__} checkpoint, got a {state['cls']} checkpoint; "
                             f"use {state['cls']}.load")
        config = state["config"] if device is None else dataclasses.replace(state["config"], device=str(device))
        learner = cls(config)
        outside = learner_rng = None
        try:  # building draws from (and seeds) the global RNGs: leave the caller's streams as they were
            learner.rng_ = np.random.default_rng()
            outside = learner._capture_rng()
            learner._setup(state["observation_space"], state["action_space"])
        finally:
            if outside is not None:
                learner_rng = learner.rng_
                learner._restore_rng(outside)
                learner.rng_ = learner_rng
        dev = torch.device(learner.config.device)
        for k, sd in state["modules"].items():
            getattr(learner, k).load_state_dict(sd)
        with torch.no_grad():
            for k, t in state["tensors"].items():
                getattr(learner, k).copy_(t.to(dev))  # in place: the optimiser holds this tensor
        for k, sd in state["optimizers"].items():
            getattr(learner, k).load_state_dict(sd)
        learner.buffer_.load_state_dict(state["buffer"])
        learner.n_updates_, learner.num_timesteps_ = state["n_updates"], state["num_timesteps"]
        learner.history_, learner.loop_state_ = state["history"], state["loop_state"]
        learner._rng_snapshot = state["rng"]
        learner._loaded = True
        learner.rng_.bit_generator.state = copy.deepcopy(state["rng"]["learner"])
        if env is not None:
            learner.env_ = learner._check_env(env)
            learner.loop_state_.obs = None
        else:
            learner.env_ = None if state["env"] is None else pickle.loads(state["env"])
            if learner.env_ is None:
                learner.loop_state_.obs = None
        return learner


class DiscretePolicyLearner(OffPolicyLearner):
    """An :class:`OffPolicyLearner` with a categorical policy over a ``Discrete(n, start)`` space.

    One home for acting: subclasses give the policy's logits (:meth:`_policy_logits`) and the
    loop's description; greedy actions, samples (from the learner's own generator), the offset of
    the action space and the loop's action plumbing are here.
    """

    #: shown by the progress bar
    loop_desc = "learner"

    def _policy_logits(self, o: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n)`` of the policy for observations ``(B, o)`` (``pi = softmax(logits)``)."""
        raise NotImplementedError

    def _discrete_spaces(self, observation_space, action_space) -> int:
        """Record ``n_actions_`` and ``action_start_`` of the ``Discrete(n, start)`` action space (for
        :meth:`_build`); returns the flattened observation size."""
        self.n_actions_ = int(action_space.n)
        self.action_start_ = int(getattr(action_space, "start", 0))
        return int(np.prod(observation_space.shape))

    @torch.no_grad()
    def policy_probs(self, obs: np.ndarray) -> np.ndarray:
        """``pi(.|s)`` for observations ``(B, o)`` (or one ``(o,)``): ``(B, A)`` (or ``(A,)``).

        Raises:
            NotFittedError: Before ``fit`` or ``load``.
        """
        self._check_fitted("policy_probs")
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.config.device)
        return torch.softmax(self._policy_logits(o).double(), -1).cpu().numpy()

    @torch.no_grad()
    def _action_index(self, obs: np.ndarray, deterministic: bool) -> int:
        """Greedy index (``deterministic``) or a sample of ``pi``, in ``0..n-1``."""
        logits = self._policy_logits(torch.as_tensor(np.asarray(obs, dtype=np.float32),
                                                     device=self.config.device).unsqueeze(0))[0]
        if deterministic:
            return int(logits.argmax())
        p = torch.softmax(logits.double(), -1).cpu().numpy()
        return int(self.rng_.choice(self.n_actions_, p=p / p.sum()))

    def act(self, obs: np.ndarray, deterministic: bool = True) -> int:
        """Environment action: ``argmax pi`` (``deterministic``) or a sample of ``pi``.

        Raises:
            NotFittedError: Before ``fit`` or ``load``.
        """
        self._check_fitted("act")
        return self.action_start_ + self._action_index(obs, deterministic)

    def _loop_kwargs(self) -> dict:
        """The loop: uniform actions for ``learning_starts`` steps, then samples of ``pi``; updates
        every ``train_every`` steps (``updates_per_step`` of them where the config has it);
        evaluations act greedily."""
        start = self.action_start_
        kw = dict(random_action=lambda: int(self.rng_.integers(self.n_actions_)),
                  policy_action=lambda obs: self._action_index(obs, deterministic=False),
                  to_env=None if start == 0 else (lambda a: start + a),
                  train_every=self.config.train_every, desc=self.loop_desc)
        if hasattr(self.config, "updates_per_step"):
            kw["updates_per_step"] = self.config.updates_per_step
        return kw
