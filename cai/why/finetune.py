r"""Fine-tuning from a broad prior: samples until a changed task is solved, from three starts.

A policy learned on one task is the starting point on a changed one (issue 15, item 7). The pair
of tasks (:func:`finetune_tasks`): a grid with two routes from ``S`` to ``G``, the upper one two
moves shorter (6 against 8; return 4 against 2, step cost 1, goal 10, horizon 12); on the
*changed* task a wall blocks the upper corridor (:func:`cai.why.perturb_cell`), so the old
optimal route is now a dead end and the new optimum (return 2) is the lower route.

The learner is :func:`cai.soft_q_learning` on the changed task, with the same settings for every
start (one episode at a time, temperature ``alpha``, constant step ``step_size``, Boltzmann
behaviour at ``alpha`` mixed with weight ``epsilon`` with the uniform policy, the same budget and
seeds); only its initial ``Q`` differs (:func:`initial_q`):

* ``"soft"``: the old task's soft Q at the same ``alpha`` (:func:`cai.soft_value_iteration`); the
  learner's initial Boltzmann policy *is* the old MaxEnt policy;
* ``"hard"``: the old task's hard Q (:func:`cai.value_iteration`, the ``alpha -> 0`` solution),
  in the same reward units, unscaled; its greedy policy *is* the old hard policy;
* ``"scratch"``: ``Q = 0``.

The measure. After every ``eval_every`` episodes the learner's *greedy* policy (the first
arg-max of its ``Q``, :func:`cai.ops.backup.hard_max`: what one would deploy) is evaluated
exactly on the changed task (:func:`cai.dp.expected_return`, no rollouts). The count is the
number of sampled transitions when that return first reaches the target::

    target = R_uniform + fraction * (R* - R_uniform)

``R*`` the changed task's optimal return, ``R_uniform`` the uniform policy's (defaults:
``fraction = 0.9``). A seed that does not reach it within ``budget`` samples is censored at the
budget; over seeds the summary is that of :mod:`cai.why.exploration` (fraction reaching it with a
Wilson interval, Kaplan–Meier median with a percentile-bootstrap interval).

What it shows (``benchmarks/bench_finetune.py``, 30 seeds, table in ``benchmarks/README.md``):
every start's greedy policy takes the blocked corridor at first (return ``-12``). On this pair, at
``alpha = 1`` the soft start reaches the target sooner than the hard one (median 1092 samples,
95% interval 1032-1140, against 1248, 1224-1320); at ``alpha = 0.3`` they tie (660 against 648).
From scratch the goal, 8 moves away, takes far longer (``alpha = 0.3``: median 2364, 90% of seeds
within 3000 samples; ``alpha = 1``: no seed within 3000). Both old solutions already value the
open route correctly; the learner must lower the blocked route's values at every step ``t`` of its
time-indexed ``Q``, so the broad prior's advantage is modest.

Where the old routes tie exactly (:func:`cai.worlds.two_route`, same wall) the *hard* start is far
faster (median 12-36 samples against 120-180). Value iteration's ``Q`` ties the two routes at the
fork, and its first arg-max takes the blocked one; but the hard ``Q`` lacks the entropy terms of
the soft target, so the first visit to the open route raises its value above the blocked one and
the greedy policy switches. The soft ``Q`` is already the learner's fixed point on the open route:
nothing there rises, and the greedy policy switches only once the blocked route's values have
fallen. A broad prior is not automatically a faster start.

References:
    Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement learning with deep energy-based
    policies", ICML, §6 (MaxEnt policies as initialisations for fine-tuning).
    Eysenbach and Levine (2022), "Maximum Entropy RL (Provably) Solves Some Robust RL Problems",
    ICLR.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from cai.algorithms.tabular.soft_q import soft_q_learning
from cai.dp.soft_vi import soft_value_iteration, value_iteration
from cai.dp.visitation import expected_return
from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP, uniform_action_prior
from cai.ops.backup import hard_max
from cai.why.exploration import FirstHitTimes, _check_seed, _check_seeds, _summarise_hits
from cai.why.robust_dynamics import perturb_cell
from cai.worlds.builders import gridworld

__all__ = ["STARTS", "FINETUNE_LAYOUT", "finetune_tasks", "initial_q", "greedy_policy", "target_return",
           "finetune_samples", "FinetuneTimes", "finetune_times"]

STARTS = ("soft", "hard", "scratch")

#: Two routes from S to G: the upper one 6 moves, the lower one 8.
FINETUNE_LAYOUT = """
#######
#.....#
#S###G#
#.###.#
#.....#
#######
"""


def finetune_tasks(*, wall: Tuple[int, int] = (1, 3), horizon: int = 12) -> Tuple[TabularMDP, TabularMDP]:
    """The old task and the changed one: :data:`FINETUNE_LAYOUT`, then a wall on its upper corridor.

    Args:
        wall: the ``(row, col)`` cell that becomes a wall on the changed task.
        horizon: the episode length of both.

    Returns:
        ``(old, new)``: :class:`~cai.TabularMDP` with the same states and actions.

    Raises:
        ValueError: from :func:`cai.worlds.gridworld` / :func:`cai.why.perturb_cell`.
    """
    old = gridworld(FINETUNE_LAYOUT, horizon=horizon)
    return old, perturb_cell(old, wall, "wall")


def _check_task(name, m):
    if not isinstance(m, TabularMDP):
        raise TypeError(f"{name}: expected a cai.TabularMDP, got {type(m).__name__}")
    if m.horizon is None or len(m.batch_shape):
        raise ValueError(f"{name}: expected a finite-horizon MDP without reward batch, got horizon={m.horizon}, "
                         f"batch shape {tuple(m.batch_shape)}")


def _check_pair(old, new):
    for name, m in (("old", old), ("new", new)):
        _check_task(name, m)
    if (old.n_states, old.n_actions, old.horizon) != (new.n_states, new.n_actions, new.horizon):
        raise ValueError(f"new: expected the old task's (S, A, T) = {(old.n_states, old.n_actions, old.horizon)}, "
                         f"got {(new.n_states, new.n_actions, new.horizon)}")
    if not bool((old.allowed == new.allowed).all()):
        raise ValueError("new: expected the same allowed actions as the old task")


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (0 < alpha < math.inf):
        raise ValueError(f"alpha: expected a positive finite temperature, got {alpha!r}")
    return float(alpha)


def initial_q(old: TabularMDP, start: str, alpha: float = 1.0) -> torch.Tensor:
    """The learner's initial ``Q`` for a start: the old task's soft Q, its hard Q, or zeros.

    Args:
        old: the old (training) task, finite horizon, unbatched.
        start: ``"soft"`` (soft value iteration's ``Q`` at ``alpha``), ``"hard"`` (value
            iteration's ``Q``) or ``"scratch"`` (0).
        alpha: the temperature of the soft start.

    Returns:
        ``(T, S, A)``; ``-inf`` at forbidden actions.

    Raises:
        TypeError: ``old`` is not a :class:`~cai.TabularMDP`.
        ValueError: an unknown ``start``, a bad ``alpha``, or ``old`` without a finite horizon or with a
            reward batch.
    """
    if not isinstance(start, str) or start not in STARTS:
        raise ValueError(f"start: expected one of {STARTS}, got {start!r}")
    _check_task("old", old)
    alpha = _check_alpha(alpha)
    if start == "soft":
        return soft_value_iteration(old, alpha).Q
    if start == "hard":
        return value_iteration(old).Q
    shape = (old.horizon, old.n_states, old.n_actions)
    return torch.where(old.allowed.expand(shape), 0.0, -math.inf).to(old.dtype)


def greedy_policy(Q: torch.Tensor) -> torch.Tensor:
    """The greedy policy of ``Q``: the first arg-max (:func:`cai.ops.backup.hard_max`), as probabilities.

    Args:
        Q: ``(..., A)``.

    Returns:
        ``Q``'s shape, one-hot on the last axis.

    Raises:
        TypeError: ``Q`` is not a floating-point tensor.
        ValueError: ``Q`` has no action axis, an empty one, or NaN entries.
    """
    if not isinstance(Q, torch.Tensor) or not Q.is_floating_point():
        raise TypeError(f"Q: expected a floating-point torch.Tensor of shape (..., A), got {type(Q).__name__}"
                        + (f" of dtype {Q.dtype}" if isinstance(Q, torch.Tensor) else ""))
    if Q.dim() < 1 or Q.shape[-1] < 1 or bool(torch.isnan(Q).any()):
        raise ValueError(f"Q: expected shape (..., A) with A >= 1 and no NaN, got shape {tuple(Q.shape)}")
    return torch.exp(hard_max(Q)[1])


def target_return(new: TabularMDP, fraction: float = 0.9) -> Tuple[float, float, float]:
    """The return to reach on the changed task: ``R_uniform + fraction * (R* - R_uniform)``.

    Args:
        new: the changed task (finite horizon, unbatched).
        fraction: in (0, 1].

    Returns:
        ``(target, R*, R_uniform)``: ``R*`` of value iteration's policy, ``R_uniform`` of the
        uniform policy over the allowed actions, both by :func:`cai.dp.expected_return`.

    Raises:
        TypeError: ``new`` is not a :class:`~cai.TabularMDP`.
        ValueError: a bad ``fraction``, or ``new`` without a finite horizon or with a reward batch.
    """
    _check_task("new", new)
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (0 < fraction <= 1):
        raise ValueError(f"fraction: expected a number in (0, 1], got {fraction!r}")
    best = float(expected_return(new, value_iteration(new).policy))
    uni = float(expected_return(new, uniform_action_prior(new)))
    return uni + float(fraction) * (best - uni), best, uni


def _run(old, new, start, alpha, budget, target, epsilon, step_size, eval_every, seed):
    """Samples until the greedy return on ``new`` first reaches ``target`` (checked every chunk), or None."""
    Q = initial_q(old, start, alpha)
    if float(expected_return(new, greedy_policy(Q))) >= target:
        return 0
    gen = torch.Generator(device=new.device).manual_seed(seed)
    done, chunk = 0, new.horizon * eval_every
    while done < budget:
        n = min(chunk, budget - done)
        Q = soft_q_learning(new, alpha, n_samples=n, n_envs=1, step_size=step_size, behaviour="boltzmann",
                            epsilon=epsilon, q_init=Q, generator=gen).Q
        done += n
        if float(expected_return(new, greedy_policy(Q))) >= target:
            return done
    return None


def finetune_samples(old: TabularMDP, new: TabularMDP, start: str, *, budget: int, alpha: float = 1.0,
                     fraction: float = 0.9, epsilon: float = 0.1, step_size: float = 0.5, eval_every: int = 1,
                     seed: int = 0) -> Optional[int]:
    """Sampled transitions on ``new`` until the learner's greedy policy first reaches the target return.

    The learner is :func:`cai.soft_q_learning` on ``new`` from :func:`initial_q` (one episode at a
    time); every ``eval_every`` episodes (``horizon * eval_every`` samples, the resolution of the
    count) its greedy policy's return on ``new`` is computed exactly and compared with
    :func:`target_return`. The run continues the same generator from chunk to chunk; with a
    constant step size nothing else carries over. Each chunk is one learner call, which draws its
    start state afresh, so a seed's run (not only the count's resolution) depends on ``eval_every``:
    compare starts at one ``eval_every``.

    Args:
        old: the task the start was solved on.
        new: the changed task (same states, actions, horizon and allowed actions).
        start: ``"soft"``, ``"hard"`` or ``"scratch"`` (:func:`initial_q`).
        budget: the most samples.
        alpha: the learner's temperature (and the soft start's).
        fraction: the target's place between the uniform policy's return (0) and the optimum (1).
        epsilon: the uniform weight in the learner's Boltzmann behaviour.
        step_size: constant TD step size in (0, 1].
        eval_every: episodes between exact evaluations.
        seed: seeds the run's ``torch.Generator``.

    Returns:
        The samples used when the target was first met (0 if the start meets it), or ``None``
        (censored at ``budget``).

    Raises:
        TypeError, ValueError: a bad pair of tasks, start, budget, seed or (from the learner) setting.
    """
    _check_pair(old, new)
    budget, eval_every = check_positive_int("budget", budget), check_positive_int("eval_every", eval_every)
    seed = _check_seed("seed", seed)
    target = target_return(new, fraction)[0]
    return _run(old, new, start, alpha, budget, target, epsilon, step_size, eval_every, seed)


@dataclass(frozen=True)
class FinetuneTimes:
    """Samples to the target return over seeds, censored at the budget (:func:`finetune_times`).

    Attributes:
        start: ``"soft"``, ``"hard"`` or ``"scratch"``.
        hits: :class:`cai.why.FirstHitTimes` of the seeds (``found``: reached the target).
        target: the target return; ``optimum``, ``uniform``: ``R*`` and ``R_uniform`` of the changed task.
        initial_return: the start's greedy policy's exact return on the changed task.
    """

    start: str
    hits: FirstHitTimes
    target: float
    optimum: float
    uniform: float
    initial_return: float

    def summary(self) -> str:
        """One line: the start's initial return, the fraction reaching the target and the median, with intervals."""
        h = self.hits
        f0, f1 = h.fraction_interval
        m0, m1 = h.median_interval
        return (f"{self.start} start (greedy return on the changed task before fine-tuning "
                f"{self.initial_return:.3g}): reached return >= {self.target:.3g} in {h.fraction_found:.0%} of {h.times.size} seeds ({h.level:.0%} Wilson "
                f"{f0:.0%}-{f1:.0%}); Kaplan-Meier median {h.median:g} samples ({h.level:.0%} bootstrap {m0:g}-{m1:g}; "
                f"inf = not reached by half within {h.budget})")


def finetune_times(old: TabularMDP, new: TabularMDP, start: str, *, budget: int, seeds: Sequence[int],
                   alpha: float = 1.0, fraction: float = 0.9, epsilon: float = 0.1, step_size: float = 0.5,
                   eval_every: int = 1, level: float = 0.95, n_boot: int = 2000) -> FinetuneTimes:
    """:func:`finetune_samples` for each seed, summarised as in :func:`cai.why.first_hit_times`.

    Args:
        old, new, start, budget, alpha, fraction, epsilon, step_size, eval_every: as in
            :func:`finetune_samples`.
        seeds: the run seeds (one run each).
        level: coverage of both intervals.
        n_boot: bootstrap resamples for the median's interval.

    Returns:
        :class:`FinetuneTimes`.

    Raises:
        ValueError: no seeds, a seed that is not an integer, a bad ``level``, or as in
            :func:`finetune_samples`.
    """
    seeds = _check_seeds(seeds, level)
    hits = [finetune_samples(old, new, start, budget=budget, alpha=alpha, fraction=fraction, epsilon=epsilon,
                             step_size=step_size, eval_every=eval_every, seed=s) for s in seeds]
    ft = _summarise_hits(start, hits, budget, level, n_boot)
    target, best, uni = target_return(new, fraction)
    init = float(expected_return(new, greedy_policy(initial_q(old, start, alpha))))
    return FinetuneTimes(start, ft, target, best, uni, init)
