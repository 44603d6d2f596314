"""Pieces shared by the deep learners: seeding, the training-curve record, evaluation, the off-policy loop.

Environments follow the gymnasium API (``reset(seed=...) -> (obs, info)``,
``step(a) -> (obs, reward, terminated, truncated, info)``, ``observation_space.shape``,
``action_space.shape/low/high`` or ``action_space.n``). gymnasium itself is not imported here.
"""

from __future__ import annotations

import contextlib
import copy
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import gymnasium  # noqa: F401 - annotations

__all__ = ["seed_everything", "LoopConfig", "TrainingHistory", "LoopState", "Callback", "evaluate_policy",
           "evaluation_seed", "checkpoint_file", "ActionScaler", "setup_box_learner", "deferred_keyboard_interrupt",
           "run_off_policy"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a NumPy generator for the learner's own draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


@dataclass
class LoopConfig:
    """Settings every deep learner's config shares (its own fields follow these).

    Attributes:
        eval_every: Evaluate every this many environment steps (0: never).
        eval_episodes: Episodes per evaluation.
        log_every: Record losses every this many updates.
        seed: Seed of torch, NumPy, the replay buffer and the environment.
        device: Torch device.
        progress: Show a tqdm progress bar.
        checkpoint_every: Save the learner every this many environment steps (0: never); the
            save happens at a step boundary, after that step's updates and evaluation.
        checkpoint_path: Where to save; ``{step}`` in it is replaced by the step count (else the
            one file is overwritten, atomically). Required when ``checkpoint_every > 0``.
    """

    eval_every: int = 0
    eval_episodes: int = 10
    log_every: int = 100
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    checkpoint_every: int = 0
    checkpoint_path: Optional[str] = None


@dataclass
class TrainingHistory:
    """Training-curve record, appended to while a learner trains.

    Attributes:
        episode_steps: Environment step at which each training episode ended.
        episode_returns: Undiscounted return of each training episode.
        eval_steps: Environment step of each evaluation.
        eval_returns: Returns of the evaluation episodes at that step (one list per evaluation).
        losses: Name -> list of ``(step, value)`` pairs, logged every ``log_every`` updates.
        wall_time: Seconds spent in ``fit`` (environment steps and updates, evaluations excluded),
            summed over the ``fit`` calls of a resumed learner.
        env_steps: Environment steps taken so far, over every ``fit`` call (the learner's ``num_timesteps_``).
    """

    episode_steps: List[int] = field(default_factory=list)
    episode_returns: List[float] = field(default_factory=list)
    eval_steps: List[int] = field(default_factory=list)
    eval_returns: List[List[float]] = field(default_factory=list)
    losses: dict = field(default_factory=dict)
    wall_time: float = 0.0
    env_steps: int = 0

    def log(self, step: int, **values: float) -> None:
        """Append ``(step, value)`` to each named loss curve."""
        for key, value in values.items():
            self.losses.setdefault(key, []).append((step, float(value)))

    @property
    def steps_per_second(self) -> float:
        """Environment steps per second of training wall time."""
        return self.env_steps / self.wall_time if self.wall_time > 0 else float("nan")


def evaluate_policy(env: Any, act: Callable[[np.ndarray], np.ndarray], n_episodes: int, seed: Optional[int] = None,
                    max_steps: int = 100_000) -> List[float]:
    """Run ``n_episodes`` full episodes of ``act`` (observation -> environment action); return their returns."""
    returns = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + i)
        total, done, steps = 0.0, False, 0
        while not done and steps < max_steps:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
            steps += 1
        returns.append(total)
    return returns


def evaluation_seed(seed: int, step: int) -> int:
    """Seed of the first evaluation episode after ``step`` environment steps of a learner seeded ``seed``.

    Episode ``i`` of that evaluation resets with ``evaluation_seed(seed, step) + i``; the loop's own
    evaluations (``config.eval_every``) and :class:`~cai.algorithms.deep.callbacks.EvalCallback` share it.
    """
    return seed + 10_000 + step - 1


def checkpoint_file(pattern: Union[str, Any], step: int) -> str:
    """The checkpoint path for ``step``: ``{step}`` in ``pattern`` replaced by the step count."""
    return str(pattern).replace("{step}", str(step))


class ActionScaler:
    """Affine map between the learner's ``[-1, 1]^d`` and a Box action space ``[low, high]``."""

    def __init__(self, action_space: Any) -> None:
        self.low = np.asarray(action_space.low, dtype=np.float64)
        self.high = np.asarray(action_space.high, dtype=np.float64)
        if not (np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high))):
            raise ValueError(f"action_space: expected finite bounds, got low={self.low}, high={self.high}")

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """``[-1, 1]^d -> [low, high]``."""
        return (self.low + 0.5 * (np.asarray(action, dtype=np.float64) + 1.0) * (self.high - self.low)).astype(np.float32)


def setup_box_learner(learner: Any, observation_space: Any, action_space: Any) -> Tuple[int, int, torch.device]:
    """Size a learner for a Box action space (the caller has seeded; see :func:`seed_everything`).

    Sets ``learner.action_dim_`` and ``learner.scaler_``; returns ``(obs_dim, action_dim, device)``.
    """
    obs_dim = int(np.prod(observation_space.shape))
    learner.action_dim_ = int(np.prod(action_space.shape))
    learner.scaler_ = ActionScaler(action_space)
    return obs_dim, learner.action_dim_, torch.device(learner.config.device)


@dataclass
class LoopState:
    """Where the training loop stands between two ``fit`` calls (saved with the learner).

    Attributes:
        obs: The observation the next step acts on (None: the next ``fit`` starts a new episode).
        episode_return: Undiscounted return of the unfinished episode so far.
        episode_length: Steps of the unfinished episode so far.
    """

    obs: Any = None
    episode_return: float = 0.0
    episode_length: int = 0


#: A training callback: called after every environment step with a dict of the loop's locals
#: (see :func:`run_off_policy`); returning ``False`` stops training after that step. Reusable
#: callback classes are in :mod:`cai.algorithms.deep.callbacks`.
Callback = Callable[[dict], Optional[bool]]


@contextlib.contextmanager
def deferred_keyboard_interrupt() -> Iterator[Callable[[], bool]]:
    """Hold a Ctrl-C (SIGINT) until the caller reaches a safe point.

    Yields a function telling whether a SIGINT arrived; the caller raises ``KeyboardInterrupt``
    at its next consistent state. A second SIGINT raises at once (an escape from a hung step).
    Only in the main thread and only while Python's default SIGINT handler is installed;
    elsewhere SIGINT behaves as usual and the function always returns False.
    """
    hit = [False]
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return

    def handler(signum, frame):
        if hit[0]:
            raise KeyboardInterrupt
        hit[0] = True

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: hit[0]
    finally:
        signal.signal(signal.SIGINT, old)


def _as_callbacks(callback: Union[None, Callback, Sequence[Callback]]) -> List[Callback]:
    if callback is None:
        return []
    callbacks = list(callback) if isinstance(callback, (list, tuple)) else [callback]
    for c in callbacks:
        if not callable(c):
            raise TypeError(f"callback: expected a callable or a list of callables, got {type(c).__name__}")
    return callbacks


def _call_hooks(callbacks: List[Callback], name: str, local: dict) -> None:
    """Call ``callback.<name>(local)`` on each callback that has such a method (every one, even if one raises)."""
    error = None
    for c in callbacks:
        hook = getattr(c, name, None)
        if hook is None:
            continue
        try:
            hook(local)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other hooks ran
            error = error or exc
    if error is not None:
        raise error


def run_off_policy(agent: Any, env: Any, total_steps: int, eval_env: Any = None, *, random_action: Callable[[], Any],
                   policy_action: Callable[[np.ndarray], Any], to_env: Optional[Callable[[Any], Any]] = None,
                   updates_per_step: int = 1, train_every: int = 1, desc: str = "",
                   callback: Union[None, Callback, Sequence[Callback]] = None, resume: bool = False) -> TrainingHistory:
    """The off-policy training loop shared by SAC, SQL and soft DQN; fills ``agent.history_``.

    Steps are counted by ``agent.num_timesteps_`` (0 on a fresh start, kept on ``resume``); every
    schedule below uses that global count ``n``. Each environment step:

    1. act: ``random_action()`` while ``n < config.learning_starts``, then ``policy_action(obs)``;
       the environment gets ``to_env(action)``, the replay buffer ``action``;
    2. store the transition and record finished episodes (step count, undiscounted return);
    3. learn: from ``n + 1 = learning_starts`` on, every ``train_every`` steps, ``updates_per_step``
       calls of ``agent.update(agent.buffer_.sample(config.batch_size))``; losses are logged whenever
       ``agent.n_updates_`` is a multiple of ``config.log_every``;
    4. ``agent.num_timesteps_ = n + 1``: the step is complete;
    5. every ``config.eval_every`` steps, run ``config.eval_episodes`` episodes of ``agent.act`` on
       ``eval_env`` (this time is excluded from ``history_.wall_time``);
    6. every ``config.checkpoint_every`` steps, ``agent.save(config.checkpoint_path)``;
    7. call each callback with a dict: ``learner``, ``step`` (= ``n + 1``), ``obs``, ``action``,
       ``reward``, ``next_obs``, ``terminated``, ``truncated``, ``episode_done``, ``episode_return``
       (of the episode that just ended, else None), ``losses`` (of this step's last update, else
       None) and ``history``. A callback returning ``False`` stops training here.

    A callback object may also have ``on_training_start(local)`` and ``on_training_end(local)``
    methods (see :mod:`cai.algorithms.deep.callbacks`), called before the first step of this call
    and when it ends (normally, stopped, or by an exception) with ``learner``, ``total_steps`` and
    ``history``.

    A ``KeyboardInterrupt`` (Ctrl-C, held by :func:`deferred_keyboard_interrupt` until the step
    is complete, or raised by a callback) leaves the learner consistent: the step counter, the
    buffer, the networks and ``history_`` describe the same completed steps, and ``fit(...,
    reset_num_timesteps=False)`` continues from there.

    Args:
        agent: A built learner with ``config`` (``learning_starts``, ``batch_size``, ``log_every``,
            ``eval_every``, ``eval_episodes``, ``seed``, ``progress``, optionally ``checkpoint_every``
            and ``checkpoint_path``), ``buffer_``, ``history_``, ``n_updates_``,
            ``update(batch) -> dict of 0-dim tensors``, ``act(obs)`` and, for checkpoints, ``save(path)``.
        env: Training environment (gymnasium API); reset with ``config.seed`` on a fresh start.
        total_steps: Environment steps to take in this call.
        eval_env: Evaluation environment; None means a deep copy of ``env`` taken before any reset.
        random_action: Warm-up action (draws from the learner's own generator).
        policy_action: Behaviour action for an observation after the warm-up.
        to_env: Map from the buffer's action to the environment's; None means identity.
        updates_per_step: Gradient updates per training step.
        train_every: Environment steps between training steps.
        desc: Progress-bar label.
        callback: A :data:`Callback`, a list of them, or None.
        resume: Continue from ``agent.num_timesteps_`` and ``agent.loop_state_`` (its ``obs`` None:
            start a new episode, the environment reset with seed ``config.seed + num_timesteps_``)
            instead of starting at step 0 with ``env.reset(seed=config.seed)``.

    Returns:
        TrainingHistory: ``agent.history_``.
    """
    cfg = agent.config
    callbacks = _as_callbacks(callback)
    ckpt_every = getattr(cfg, "checkpoint_every", 0) or 0
    ckpt_path = getattr(cfg, "checkpoint_path", None)
    if ckpt_every and not ckpt_path:
        raise ValueError("checkpoint_path: expected a file path when checkpoint_every > 0, got None")
    eval_env = copy.deepcopy(env) if eval_env is None else eval_env
    hist = agent.history_
    state = getattr(agent, "loop_state_", None)
    if not resume or state is None:
        agent.num_timesteps_ = 0
        obs, _ = env.reset(seed=cfg.seed)
        state = agent.loop_state_ = LoopState(obs=obs)
    elif state.obs is None:
        obs, _ = env.reset(seed=cfg.seed + agent.num_timesteps_)
        state.obs, state.episode_return, state.episode_length = obs, 0.0, 0
    end = agent.num_timesteps_ + total_steps
    _call_hooks(callbacks, "on_training_start", dict(learner=agent, total_steps=total_steps, history=hist))
    t_start = time.perf_counter()
    bar = tqdm(total=total_steps, disable=not cfg.progress, desc=desc, mininterval=1.0)
    try:
        with deferred_keyboard_interrupt() as interrupted:
            while agent.num_timesteps_ < end:
                step = agent.num_timesteps_
                obs = state.obs
                # 1. act: uniform at first, then the behaviour policy
                action = random_action() if step < cfg.learning_starts else policy_action(obs)
                next_obs, reward, terminated, truncated, _ = env.step(action if to_env is None else to_env(action))
                # 2. store, episode bookkeeping
                agent.buffer_.add(obs, action, reward, next_obs, terminated)
                state.episode_return += float(reward)
                state.episode_length += 1
                episode_done, finished_return = bool(terminated or truncated), None
                if episode_done:
                    finished_return = state.episode_return
                    hist.episode_steps.append(step + 1)
                    hist.episode_returns.append(finished_return)
                    state.obs, _ = env.reset()
                    state.episode_return, state.episode_length = 0.0, 0
                else:
                    state.obs = next_obs
                # 3. learn
                losses = None
                if step + 1 >= cfg.learning_starts and (step + 1) % train_every == 0:
                    for _ in range(updates_per_step):
                        losses = agent.update(agent.buffer_.sample(cfg.batch_size))
                        if agent.n_updates_ % cfg.log_every == 0:
                            hist.log(step + 1, **{k: v.item() for k, v in losses.items()})
                # 4. the step is complete
                agent.num_timesteps_ = hist.env_steps = step + 1
                bar.update(1)
                # 5. evaluate (not timed)
                if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                    hist.wall_time += time.perf_counter() - t_start
                    hist.eval_steps.append(step + 1)
                    hist.eval_returns.append(evaluate_policy(eval_env, agent.act, cfg.eval_episodes,
                                                             seed=evaluation_seed(cfg.seed, step + 1)))
                    t_start = time.perf_counter()
                # 6. checkpoint
                if ckpt_every and (step + 1) % ckpt_every == 0:
                    now = time.perf_counter()
                    hist.wall_time += now - t_start
                    t_start = now
                    agent.save(checkpoint_file(ckpt_path, step + 1))
                # 7. callbacks
                keep_going = True
                if callbacks:
                    local = dict(learner=agent, step=step + 1, obs=obs, action=action, reward=reward,
                                 next_obs=next_obs, terminated=terminated, truncated=truncated,
                                 episode_done=episode_done, episode_return=finished_return, losses=losses,
                                 history=hist)
                    for c in callbacks:
                        keep_going = (c(local) is not False) and keep_going
                if interrupted():
                    raise KeyboardInterrupt
                if not keep_going:
                    break
    finally:
        bar.close()
        hist.wall_time += time.perf_counter() - t_start
        hist.env_steps = agent.num_timesteps_
        _call_hooks(callbacks, "on_training_end", dict(learner=agent, total_steps=total_steps, history=hist))
    return hist
