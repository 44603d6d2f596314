r"""The automatic temperature, exactly: the dual of entropy-constrained RL on a tabular MDP.

Soft Actor-Critic's automatic temperature (Haarnoja et al. 2018b, §5) solves a constrained
problem: maximise the expected return subject to a minimum expected policy entropy per decision::

    max_pi  E_pi[ sum_t gamma^t r_t ]   s.t.   (1/D) E_pi[ sum_t gamma^t H(pi_t(.|s_t)) ] >= H_target

with ``D = sum_t gamma^t`` the (policy-independent) expected number of decisions of a finite
horizon ``T``: every decision counts, weighted by the on-policy state distribution. Its
Lagrangian with multiplier ``alpha >= 0`` is the MaxEnt objective minus ``alpha * D * H_target``,
so the dual function is soft value iteration's value::

    g(alpha)  = max_pi E[sum_t gamma^t (r_t + alpha H_t)] - alpha D H_target = V^soft(alpha) - alpha D H_target
    g'(alpha) = D (Hbar(alpha) - H_target)            (envelope theorem; Hbar: mean entropy below)

``g`` is convex (a maximum of functions affine in alpha), so ``Hbar(alpha)`` is non-decreasing
and the optimal temperature solves ``Hbar(alpha*) = H_target``. SAC runs stochastic gradient
descent on ``g`` (on ``log alpha``) with one gradient step of the policy per step of alpha;
:func:`dual_temperature_descent` runs the same descent with an exact solve at each step, and
:func:`temperature_for_entropy` finds the root by bisection on the exact entropy curve.

The target: with ``|A|`` discrete actions the mean entropy lies in ``[Hbar(0+), Hbar(inf)]``
(``Hbar(inf) = log |A|`` when every action is allowed everywhere), so targets are usually a
fraction of ``log |A|`` (discrete SAC, Christodoulou 2019, uses ``0.98 log |A|``). SAC's
continuous default ``H_target = -dim(A)`` is a *differential* entropy (nats; it can be
negative): for a Gaussian per action dimension it asks for a standard deviation of
``exp(-1) / sqrt(2 pi e) ≈ 0.089`` before the tanh squashing, a heuristic "fairly but not fully
deterministic" level with no discrete counterpart.

References:
    Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel and Levine (2018),
    "Soft Actor-Critic Algorithms and Applications", §5 (the dual problem and the ``-dim(A)``
    target); Christodoulou (2019), "Soft Actor-Critic for Discrete Action Settings".
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch

from cai.dp.soft_vi import soft_value_iteration
from cai.dp.visitation import policy_marginals
from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP, check_model
from cai.typing import Alpha

__all__ = ["mean_policy_entropy", "temperature_for_entropy", "dual_temperature_descent", "TemperatureDescent"]


def _check(mdp, fn):
    check_model(mdp, 1.0, None, fn)
    if mdp.horizon is None:
        raise ValueError(f"{fn}: mdp: expected a finite horizon, got horizon=None")
    if len(mdp.batch_shape) or mdp.terminal_rewards.dim() > 1:
        raise ValueError(f"{fn}: mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")


def mean_policy_entropy(mdp: TabularMDP, alpha: Alpha) -> torch.Tensor:
    r"""Mean entropy per decision of the soft-optimal policy, weighted by where it goes.

    ::

        Hbar(alpha) = sum_t sum_s mu_t(s) H(pi^alpha_t(.|s)) / sum_t sum_s mu_t(s)

    with ``mu_t`` the on-policy (alive) state marginals, ``sum_s mu_t(s) = gamma^t``. Every
    decision counts, also in states where the actions do not matter (unlike the display-oriented
    entropy of :func:`cai.report.sweeps.sweep_temperature`, which skips them): this is the
    quantity whose derivative the dual needs.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch (counting measure).
        alpha: temperature > 0, a scalar or a ``(K,)`` batch (one batched soft VI call).

    Returns:
        ``alpha``'s shape: the mean entropy in nats.

    Raises:
        TypeError, ValueError: for a bad MDP or temperature.
    """
    _check(mdp, "mean_policy_entropy")
    a, _ = check_model(mdp, alpha, None, "mean_policy_entropy")
    return _entropy_and_value(mdp, a)[0]


def _entropy_and_value(mdp, a):
    """``(Hbar(a), D, V^soft(a))`` from one soft value iteration and the on-policy marginals."""
    sol = soft_value_iteration(mdp, a)
    pi, log_pi = sol.policy, sol.log_policy                       # (*k, T, S, A)
    H = -torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi)).sum(-1)
    mu = policy_marginals(mdp, pi).state[..., :-1, :]             # (*k, T, S)
    D = mu.sum((-1, -2))
    return (mu * H).sum((-1, -2)) / D, D, sol.value


def _check_target(target):
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(target):
        raise ValueError(f"target: expected a finite entropy in nats, got {target!r}")
    return float(target)


def temperature_for_entropy(mdp: TabularMDP, target: float, *, lo: float = 1e-3, hi: float = 1e3,
                            points: int = 33, rtol: float = 1e-12) -> float:
    r"""``alpha*`` with ``Hbar(alpha*) = target``, by bisection on the exact entropy curve.

    Each round evaluates :func:`mean_policy_entropy` on ``points`` temperatures log-spaced over
    the current bracket in *one* batched soft value iteration call, and keeps the sub-interval
    where ``Hbar - target`` changes sign (a ``points - 1``-section search; ``Hbar`` is
    non-decreasing, see the module docstring). It stops when the bracket is narrower than
    ``rtol`` relative.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch.
        target: the required mean entropy per decision, in nats.
        lo, hi: the initial bracket of temperatures.
        points: temperatures per batched call (>= 3).
        rtol: relative width of the final bracket.

    Returns:
        ``alpha*`` (the geometric midpoint of the final bracket).

    Raises:
        ValueError: if ``target`` is outside ``[Hbar(lo), Hbar(hi)]`` (the message gives both), or
            for a bad bracket.
    """
    _check(mdp, "temperature_for_entropy")
    target = _check_target(target)
    if not (0 < lo < hi < math.inf):
        raise ValueError(f"lo, hi: expected 0 < lo < hi < inf, got lo={lo!r}, hi={hi!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 3:
        raise ValueError(f"points: expected an integer >= 3, got {points!r}")
    ends = mean_policy_entropy(mdp, torch.tensor([lo, hi], dtype=mdp.dtype))
    if not (float(ends[0]) <= target <= float(ends[1])):
        raise ValueError(f"target: expected a mean entropy in [{float(ends[0]):.6g}, {float(ends[1]):.6g}] "
                         f"nats (reachable with alpha in [{lo:g}, {hi:g}]), got {target!r}")
    a, b = math.log(lo), math.log(hi)
    while b - a > rtol:
        grid = torch.linspace(a, b, points, dtype=mdp.dtype)
        h = mean_policy_entropy(mdp, torch.exp(grid))
        i = int(torch.searchsorted(h.contiguous(), torch.tensor([target], dtype=h.dtype)).item())
        i = min(max(i, 1), points - 1)
        a, b = float(grid[i - 1]), float(grid[i])
    return math.exp((a + b) / 2)


class TemperatureDescent(NamedTuple):
    """The path of :func:`dual_temperature_descent`.

    Attributes:
        alpha: the final temperature.
        alphas: ``(n,)`` the temperature at every step (the first is ``alpha0``).
        entropies: ``(n,)`` the mean entropy ``Hbar`` of the soft-optimal policy at each.
        dual: ``(n,)`` the dual function ``g(alpha) = V^soft(alpha) - alpha D H_target``.
    """

    alpha: float
    alphas: torch.Tensor
    entropies: torch.Tensor
    dual: torch.Tensor


def dual_temperature_descent(mdp: TabularMDP, target: float, *, alpha0: float = 1.0, lr: float = 0.5,
                             steps: int = 500, tol: float = 1e-12) -> TemperatureDescent:
    r"""SAC's temperature update with exact solves: gradient descent on the dual in ``log alpha``.

    ::

        log alpha_{k+1} = log alpha_k - lr * (Hbar(alpha_k) - H_target)

    (``dg/d log alpha = alpha D (Hbar - H_target)``; like SAC, the step drops the positive factor
    ``alpha D``.) Each ``Hbar(alpha_k)`` is exact (:func:`mean_policy_entropy`).

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP` without reward batch.
        target: the required mean entropy per decision, in nats.
        alpha0: the starting temperature.
        lr: step size on ``log alpha`` (converges when ``lr * dHbar/dlog alpha < 2`` near the root).
        steps: the most steps.
        tol: stop when ``|Hbar(alpha) - target| <= tol``.

    Returns:
        :class:`TemperatureDescent`.

    Raises:
        ValueError: for a bad MDP, target, ``alpha0``, ``lr`` or ``steps``.
    """
    _check(mdp, "dual_temperature_descent")
    target = _check_target(target)
    for name, v in (("alpha0", alpha0), ("lr", lr)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (0 < v < math.inf):
            raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    check_positive_int("steps", steps, "an integer >= 1")
    la = math.log(alpha0)
    alphas, ents, duals = [], [], []
    for _ in range(steps):
        a = math.exp(la)
        h, D, v = (float(x) for x in _entropy_and_value(mdp, torch.tensor(a, dtype=mdp.dtype)))
        alphas.append(a)
        ents.append(h)
        duals.append(v - a * D * target)
        if abs(h - target) <= tol:
            break
        la -= lr * (h - target)
    t = lambda x: torch.tensor(x, dtype=mdp.dtype)  # noqa: E731
    return TemperatureDescent(alphas[-1], t(alphas), t(ents), t(duals))
