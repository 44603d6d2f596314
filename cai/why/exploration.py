r"""Exploration on a deceptive chain: samples until the far reward is first collected.

On :func:`cai.worlds.chain` (a small reward one step from the start, a large one ``n - 2`` steps
away) a learner that has found the small reward is tempted to keep collecting it. This module
counts, per seed, the sampled transitions until the learner first *acts in a goal state* (the
transition that pays the far reward), for two behaviours that differ only in how they explore:

* ``"soft_q"``: :func:`cai.soft_q_learning` acting with its own MaxEnt policy
  ``b(a|s) ∝ exp(Q(s,a) / alpha)`` (``epsilon = 0``: no uniform mixture, the exploration is the
  Boltzmann policy itself);
* ``"epsilon_greedy"``: :func:`cai.q_learning` with the epsilon-greedy behaviour (the maximisers of
  ``Q``, ties split evenly, mixed with weight ``epsilon`` with the uniform policy).

Both start from ``Q = 0`` (``q_init``) and run one episode at a time (``n_envs = 1``), so the
count is exact. A seed that never collects the far reward within ``budget`` samples is *censored*
at the budget, not dropped: the summary reports the fraction found with a Wilson score interval
and the Kaplan–Meier median of the first-hit time with a percentile-bootstrap interval, which is
``inf`` where fewer than half the seeds are known to have found it.

References:
    Kaplan and Meier (1958), "Nonparametric estimation from incomplete observations", JASA 53.
    Wilson (1927), "Probable inference, the law of succession, and statistical inference", JASA 22.
    Efron and Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 (percentile interval).
    Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement learning with deep energy-based
    policies", ICML (MaxEnt exploration).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from statistics import NormalDist
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from cai.algorithms.tabular.soft_q import q_learning, soft_q_learning
from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["METHODS", "first_hit_samples", "FirstHitTimes", "first_hit_times", "wilson_interval", "kaplan_meier",
           "censored_median", "bootstrap_median_interval"]

METHODS = ("soft_q", "epsilon_greedy")


def _goal_mask(mdp: TabularMDP, goal) -> torch.Tensor:
    if goal is None:
        goal = [mdp.n_states - 1]
    idx = np.asarray(goal).reshape(-1)
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= mdp.n_states:
        raise ValueError(f"goal: expected state indices in [0, {mdp.n_states}), got {goal!r}")
    mask = torch.zeros(mdp.n_states, mdp.n_actions, dtype=torch.bool, device=mdp.device)
    mask[torch.as_tensor(idx, device=mdp.device)] = True
    return mask


def first_hit_samples(mdp: TabularMDP, method: str, *, budget: int, goal: Optional[Sequence[int]] = None,
                      alpha: float = 0.1, epsilon: float = 0.1, step_size: float = 0.5, q_init: float = 0.0,
                      seed: int = 0) -> Optional[int]:
    """Sampled transitions until the learner first acts in a goal state, or ``None`` within ``budget``.

    Args:
        mdp: unbatched :class:`~cai.TabularMDP` (e.g. :func:`cai.worlds.chain`).
        method: ``"soft_q"`` (soft Q-learning at temperature ``alpha`` acting with its Boltzmann
            policy, no uniform mixture) or ``"epsilon_greedy"`` (Q-learning, epsilon-greedy).
        budget: the most samples to draw.
        goal: goal states (default: the last state, the chain's far end).
        alpha: soft Q-learning's temperature (``"soft_q"`` only).
        epsilon: the uniform weight of the epsilon-greedy behaviour (``"epsilon_greedy"`` only).
        step_size: constant TD step size in (0, 1] for both.
        q_init: initial ``Q`` for both.
        seed: seeds the ``torch.Generator`` of the run.

    Returns:
        The 1-based index of the first sample taken in a goal state, or ``None`` (censored).

    Raises:
        ValueError: an unknown ``method``, bad ``goal`` or (from the learners) other arguments.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    seed = _check_seed("seed", seed)
    mask = _goal_mask(mdp, goal)
    gen = torch.Generator(device=mdp.device).manual_seed(seed)
    common = dict(n_samples=budget, n_envs=1, step_size=step_size, q_init=q_init, generator=gen, stop_at=mask)
    if method == "soft_q":
        res = soft_q_learning(mdp, alpha, behaviour="boltzmann", epsilon=0.0, **common)
    else:
        res = q_learning(mdp, behaviour="greedy", epsilon=epsilon, **common)
    return res.first_hit


def wilson_interval(k: int, n: int, level: float = 0.95) -> Tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    ``(p + z^2/2n ± z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, ``z`` the two-sided normal
    quantile of ``level``.

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials, ``>= 1``.
        level: coverage in (0, 1).

    Returns:
        ``(low, high)`` in ``[0, 1]``.

    Raises:
        ValueError: invalid counts or level.

    References:
        Wilson (1927), JASA 22.
    """
    check_positive_int("n", n)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k: expected an integer in [0, {n}], got {k!r}")
    if not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _check_times(times, found):
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    f = np.asarray(found).reshape(-1)
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"times: expected a non-empty array of finite times, got {times!r}")
    if f.dtype != np.bool_ or f.shape != t.shape:
        raise ValueError(f"found: expected a boolean array of shape {t.shape}, got {f.dtype} of shape {f.shape}")
    return t, f


def kaplan_meier(times: ArrayLike, found: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """The Kaplan–Meier estimate of ``P(first-hit time > t)`` from right-censored times.

    ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)`` over the distinct observed times ``t_i``, ``d_i``
    hits at ``t_i``, ``n_i`` runs still at risk (time ``>= t_i``; a run censored at ``t_i`` counts
    as at risk there).

    Args:
        times: ``(N,)`` first-hit times, or censoring times where not ``found``.
        found: ``(N,)`` booleans: ``True`` where the time is an observed hit.

    Returns:
        ``(event_times, survival)``: the distinct observed times, increasing, and ``S`` just after
        each (``(K,)`` each; ``K = 0`` when nothing was found).

    Raises:
        ValueError: mismatched or non-finite inputs.
    """
    t, f = _check_times(times, found)
    ev = np.unique(t[f])
    at_risk = (t[None, :] >= ev[:, None]).sum(1)
    hits = (t[None, :] == ev[:, None]) & f[None, :]
    return ev, np.cumprod(1.0 - hits.sum(1) / at_risk)


def censored_median(times: ArrayLike, found: ArrayLike) -> float:
    """The Kaplan–Meier median: the first observed time with ``S(t) <= 1/2``; ``inf`` if there is none.

    Args:
        times, found: as in :func:`kaplan_meier`.

    Returns:
        The median first-hit time (``inf``: fewer than half are known to hit).

    Raises:
        ValueError: as in :func:`kaplan_meier`.
    """
    ev, surv = kaplan_meier(times, found)
    below = np.nonzero(surv <= 0.5 + 1e-12)[0]
    return float(ev[below[0]]) if below.size else math.inf


def bootstrap_median_interval(times: ArrayLike, found: ArrayLike, level: float = 0.95, n_boot: int = 2000,
                              seed: int = 0) -> Tuple[float, float]:
    """Percentile-bootstrap interval of :func:`censored_median` (runs resampled with replacement).

    Args:
        times, found: as in :func:`kaplan_meier`.
        level: coverage in (0, 1).
        n_boot: bootstrap resamples.
        seed: seeds NumPy's generator.

    Returns:
        ``(low, high)``; ``high = inf`` where more than ``(1 - level)/2`` of the resamples have no
        median.

    Raises:
        ValueError: invalid inputs.

    References:
        Efron and Tibshirani (1993), ch. 13.
    """
    t, f = _check_times(times, found)
    if not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level!r}")
    check_positive_int("n_boot", n_boot)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, t.size, size=(n_boot, t.size))
    meds = np.array([censored_median(t[i], f[i]) for i in idx])
    lo, hi = np.quantile(meds, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(lo), float(hi)


@dataclass(frozen=True)
class FirstHitTimes:
    """First-hit times over seeds, censored at the budget (:func:`first_hit_times`).

    Attributes:
        method: ``"soft_q"`` or ``"epsilon_greedy"``.
        times: ``(N,)`` first-hit sample per seed, ``budget`` where not found.
        found: ``(N,)`` whether the far reward was collected within the budget.
        budget: the censoring time.
        fraction_found: ``found.mean()``.
        fraction_interval: Wilson score interval of the fraction found, coverage ``level``.
        median: Kaplan–Meier median first-hit time (``inf``: fewer than half found it).
        median_interval: percentile-bootstrap interval of the median, coverage ``level``.
        level: the coverage of both intervals (0.95 unless asked otherwise).
    """

    method: str
    times: np.ndarray
    found: np.ndarray
    budget: int
    fraction_found: float
    fraction_interval: Tuple[float, float]
    median: float
    median_interval: Tuple[float, float]
    level: float = 0.95

    def summary(self) -> str:
        """One line: the fraction found and the censored median, each with its interval and method."""
        f0, f1 = self.fraction_interval
        m0, m1 = self.median_interval
        return (f"{self.method}: found in {self.fraction_found:.0%} of {self.times.size} seeds "
                f"({self.level:.0%} Wilson {f0:.0%}-{f1:.0%}); Kaplan-Meier median first hit {self.median:g} samples "
                f"({self.level:.0%} bootstrap {m0:g}-{m1:g}; inf = not found by half the seeds within {self.budget})")


def _check_seed(name: str, v: object) -> int:
    """A run seed: an integer (NumPy's too), not a bool; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {v!r}")
    return int(v)


def _check_seeds(seeds: Sequence[int], level: float) -> List[int]:
    """The run seeds as ints (at least one) and the intervals' ``level``, checked before any run."""
    seeds = [seeds] if isinstance(seeds, (str, bytes)) else list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    seeds = [_check_seed("seeds", s) for s in seeds]
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level: expected a coverage in (0, 1), got {level!r}")
    return seeds


def _summarise_hits(label: str, hits: Sequence[Optional[int]], budget: int, level: float, n_boot: int) -> FirstHitTimes:
    """Per-seed first hits (``None``: censored at ``budget``) as :class:`FirstHitTimes` with both intervals."""
    found = np.array([h is not None for h in hits])
    times = np.array([budget if h is None else h for h in hits], dtype=np.int64)
    return FirstHitTimes(label, times, found, int(budget), float(found.mean()),
                         wilson_interval(int(found.sum()), len(hits), level), censored_median(times, found),
                         bootstrap_median_interval(times, found, level, n_boot), float(level))


def first_hit_times(mdp: TabularMDP, method: str, *, budget: int, seeds: Sequence[int], goal: Optional[Sequence[int]] = None,
                    alpha: float = 0.1, epsilon: float = 0.1, step_size: float = 0.5, q_init: float = 0.0,
                    level: float = 0.95, n_boot: int = 2000) -> FirstHitTimes:
    """:func:`first_hit_samples` for each seed, summarised with censoring-aware intervals.

    Args:
        mdp, method, budget, goal, alpha, epsilon, step_size, q_init: as in
            :func:`first_hit_samples`.
        seeds: the run seeds (one run each).
        level: coverage of both intervals.
        n_boot: bootstrap resamples for the median's interval.

    Returns:
        :class:`FirstHitTimes`.

    Raises:
        ValueError: no seeds, a seed that is not an integer, a bad ``level``, or as in
            :func:`first_hit_samples`.
    """
    seeds = _check_seeds(seeds, level)
    hits = [first_hit_samples(mdp, method, budget=budget, goal=goal, alpha=alpha, epsilon=epsilon,
                              step_size=step_size, q_init=q_init, seed=s) for s in seeds]
    return _summarise_hits(method, hits, budget, level, n_boot)
