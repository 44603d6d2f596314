"""Figures for :mod:`cai.why` (why MaxEnt RL): each takes ``ax=None`` and returns its Axes.

The numbers come from the solvers (:func:`cai.soft_policy_iteration`, :mod:`cai.why`); the
figures only draw them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from cai.dp.policy_iteration import soft_policy_iteration
from cai.dp.soft_vi import soft_value_iteration, value_iteration
from cai.dp.visitation import expected_return
from cai.typing import ArrayLike
from cai.viz.common import _new_ax, _np
from cai.why.exploration import FirstHitTimes, kaplan_meier
from cai.why.finetune import FinetuneTimes
from cai.why.future_entropy import myopic_policy
from cai.why.hard_limit import zero_temperature_limit
from cai.why.meta_pomdp import adaptive_episodes, maxent_meta_policy
from cai.why.robust_dynamics import perturbed_returns
from cai.why.robust_reward import robust_return
from cai.why.temperature import dual_temperature_descent, mean_policy_entropy, temperature_for_entropy

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cai.mdp.tabular import TabularMDP

__all__ = ["policy_iteration_progress", "tie_breaking", "myopic_vs_maxent", "temperature_dual", "robust_reward_curve", "dynamics_robustness",
           "first_hit_survival", "meta_pomdp_episodes", "finetune_survival"]


def _alphas(alphas, default):
    a = np.asarray(default if alphas is None else alphas, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"alphas: expected positive finite temperatures, got {alphas!r}")
    return a


def policy_iteration_progress(mdp: TabularMDP, alpha: float = 1.0, *, ax: Optional[Axes] = None,
                              title: Optional[str] = None) -> Axes:
    """Soft policy iteration's objective per iteration: the start-weighted value and its worst state.

    Curves: ``sum_s p0(s) V^{pi_k}_0(s)`` for each iterate ``pi_k`` (``pi_0`` uniform), with
    soft value iteration's optimum as a dashed line; and the smallest and largest gain
    ``V^{pi_k}_t(s) - V^{pi_{k-1}}_t(s)`` over every state and step. The smallest is never below 0
    (the soft policy improvement theorem); the largest falls to 0 at convergence.

    Returns:
        The Axes.
    """
    hist = []
    soft_policy_iteration(mdp, alpha, history=hist)
    opt = float(soft_value_iteration(mdp, alpha).value)
    v0 = [float((mdp.initial * (h[0] if mdp.horizon is not None else h)).sum()) for h in hist]
    gains = [(float((b - a).min()), float((b - a).max())) for a, b in zip(hist[:-1], hist[1:])]
    ax = _new_ax(ax, figsize=(6, 4))
    k = np.arange(len(v0))
    ax.plot(k, v0, "-o", color="#1f4e79", label=r"$\sum_s p_0(s) V^{\pi_k}_0(s)$")
    ax.axhline(opt, ls="--", color="k", lw=0.8, label="soft value iteration")
    ax.plot(k[1:], [g[0] for g in gains], "-s", ms=3, color="#d95f02",
            label=r"smallest gain $\min_{t,s}(V^{\pi_k} - V^{\pi_{k-1}})$")
    ax.plot(k[1:], [g[1] for g in gains], "--^", ms=3, color="#2ca02c",
            label=r"largest gain $\max_{t,s}(V^{\pi_k} - V^{\pi_{k-1}})$")
    ax.axhline(0.0, color="#d95f02", lw=0.5, ls=":")
    ax.set_xlabel("soft policy iteration step k")
    ax.set_ylabel("soft value (reward units)")
    ax.legend(fontsize=8)
    ax.set_title(title or rf"soft policy iteration, $\alpha$ = {alpha:g}")
    return ax


def tie_breaking(mdp: TabularMDP, state: int, actions: Sequence[int], alphas: Optional[ArrayLike] = None, *, ax: Optional[Axes] = None,
                 title: Optional[str] = None) -> Axes:
    """The soft policy at ``state`` (step 0) against alpha, with its ``alpha -> 0`` limit and hard VI.

    Lines: ``pi^alpha_0(a|state)`` for each of ``actions``; dotted: the limit from
    :func:`cai.why.zero_temperature_limit`; crosses at the left edge: hard value iteration's choice.

    Returns:
        The Axes.
    """
    a = _alphas(alphas, np.logspace(-1.5, 1, 25))
    sol = soft_value_iteration(mdp, torch.as_tensor(a, dtype=mdp.dtype))
    pi = _np(sol.policy_at(0))[:, state]                  # (K, A)
    lim = zero_temperature_limit(mdp)
    lim0 = _np(lim.policy[0] if mdp.horizon is not None else lim.policy)[state]
    hard0 = _np(lim.hard.policy[0] if mdp.horizon is not None else lim.hard.policy)[state]
    names = mdp.action_names or [str(i) for i in range(mdp.n_actions)]
    ax = _new_ax(ax, figsize=(6, 4))
    colors = ["#1f4e79", "#d95f02", "#2ca02c", "#7a0177", "#888888"]
    for i, act in enumerate(actions):
        c = colors[i % len(colors)]
        ax.plot(a, pi[:, act], "-", color=c, label=rf"$\pi^\alpha$({names[act]})")
        ax.axhline(lim0[act], color=c, ls=":", lw=1)
        ax.plot([a.min()], [hard0[act]], "x", color=c, ms=9, mew=2)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("probability at the fork")
    ax.plot([], [], "k:", label=r"$\alpha\to 0$ limit")
    ax.plot([], [], "kx", label="hard value iteration")
    ax.legend(fontsize=8)
    ax.set_title(title or "ties: soft splits, hard picks one")
    return ax


def myopic_vs_maxent(mdp: TabularMDP, state: int, action: int, alphas: Optional[ArrayLike] = None, *, ax: Optional[Axes] = None,
                 title: Optional[str] = None) -> Axes:
    """``pi(action | state)`` at step 0 against alpha: MaxEnt (future entropy) against myopic.

    The myopic policy (:func:`cai.why.myopic_policy`) is a Boltzmann distribution over the hard
    Q-values; the MaxEnt policy is soft value iteration's.

    Returns:
        The Axes.
    """
    a = _alphas(alphas, np.logspace(-1.5, 1.5, 40))
    at = torch.as_tensor(a, dtype=mdp.dtype)
    soft = _np(soft_value_iteration(mdp, at).policy_at(0))[:, state, action]
    my = _np(myopic_policy(mdp, at).policy)
    my = my[:, 0, state, action] if mdp.horizon is not None else my[:, state, action]
    names = mdp.action_names or [str(i) for i in range(mdp.n_actions)]
    sn = mdp.state_names[state] if mdp.state_names else str(state)
    ax = _new_ax(ax, figsize=(6, 4))
    ax.plot(a, soft, "-", color="#1f4e79", label="MaxEnt (entropy of all future steps)")
    ax.plot(a, my, "--", color="#d95f02", label="myopic (entropy of this step only)")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel(f"pi({names[action]} | {sn})")
    ax.legend(fontsize=8)
    ax.set_title(title or "don't ignore future entropy")
    return ax


def temperature_dual(mdp: TabularMDP, target: float, alphas: Optional[ArrayLike] = None, *, alpha0: float = 1.0, lr: float = 0.5,
                     ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """The exact entropy curve ``Hbar(alpha)`` with the target, ``alpha*`` and the dual descent's path.

    ``Hbar`` is :func:`cai.why.mean_policy_entropy` (one batched solve); ``alpha*`` is
    :func:`cai.why.temperature_for_entropy`; the markers are the steps of
    :func:`cai.why.dual_temperature_descent` from ``alpha0``.

    Returns:
        The Axes.
    """
    a = _alphas(alphas, np.logspace(-2.5, 2, 60))
    h = _np(mean_policy_entropy(mdp, torch.as_tensor(a, dtype=mdp.dtype)))
    root = temperature_for_entropy(mdp, target, rtol=1e-9)
    path = dual_temperature_descent(mdp, target, alpha0=alpha0, lr=lr, tol=1e-9)
    ax = _new_ax(ax, figsize=(6, 4))
    ax.plot(a, h, "-", color="#1f4e79", label=r"$\bar H(\alpha)$, exact")
    ax.axhline(target, color="k", lw=0.8, ls="--", label=rf"target {target:.3g} nats")
    ax.axvline(root, color="#2ca02c", lw=0.8, label=rf"bisection $\alpha^*$ = {root:.4g}")
    ax.plot(_np(path.alphas), _np(path.entropies), "o", ms=3, color="#d95f02",
            label=f"dual descent ({len(path.alphas)} exact solves)")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("mean policy entropy per decision (nats)")
    ax.legend(fontsize=8)
    ax.set_title(title or "automatic temperature = the dual of an entropy constraint")
    return ax


def robust_reward_curve(mdp: TabularMDP, beta: float = 1.0, epsilon: float = 0.0, alphas: Optional[ArrayLike] = None, *,
                        ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Worst-case return over the robust reward set, for soft policies across alpha and the hard policy.

    Solid: :func:`cai.why.robust_return` of the soft-optimal policy at each alpha (the return
    under the adversary's reward, budget ``epsilon`` at temperature ``beta``); dashed: the hard
    policy's; dotted: each policy's plain expected return (no adversary). The solid curve peaks at
    ``alpha = beta`` (marked).

    Returns:
        The Axes.
    """
    a = _alphas(alphas, np.logspace(-2, 1.5, 40))
    pol = soft_value_iteration(mdp, torch.as_tensor(a, dtype=mdp.dtype)).policy
    hard = value_iteration(mdp).policy
    rob = _np(robust_return(mdp, pol, beta, epsilon))
    ret = _np(expected_return(mdp, pol))
    ax = _new_ax(ax, figsize=(6, 4))
    ax.plot(a, rob, "-", color="#1f4e79", label="soft policy: worst-case return")
    ax.axhline(float(robust_return(mdp, hard, beta, epsilon)), color="#d95f02", ls="--",
               label="hard policy: worst-case return")
    ax.plot(a, ret, ":", color="#1f4e79", label="soft policy: return (no adversary)")
    ax.axhline(float(expected_return(mdp, hard)), color="#d95f02", ls=":", lw=0.8, label="hard policy: return")
    ax.axvline(beta, color="k", lw=0.6, label=rf"$\alpha = \beta$ = {beta:g}")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$ of the soft policy")
    ax.set_ylabel("expected return")
    ax.legend(fontsize=7)
    ax.set_title(title or rf"robust reward ($\beta$ = {beta:g}, $\epsilon$ = {epsilon:g})")
    return ax


def dynamics_robustness(train: TabularMDP, test: TabularMDP, alphas: Optional[ArrayLike] = None, *,
                        ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Exact returns of soft policies (over alpha) and the hard policy, in the training and the test world.

    Numbers from :func:`cai.why.perturbed_returns`: each policy is solved in ``train`` and its
    expected return (no entropy term) computed exactly in both worlds.

    Returns:
        The Axes.
    """
    a = _alphas(alphas, np.logspace(-2, 1, 40))
    pr = perturbed_returns(train, test, a)
    ax = _new_ax(ax, figsize=(6, 4))
    ax.plot(a, _np(pr.soft_test), "-", color="#1f4e79", label="soft policy, test world")
    ax.plot(a, _np(pr.soft_train), ":", color="#1f4e79", label="soft policy, training world")
    ax.axhline(pr.hard_test, color="#d95f02", ls="-", lw=1.2, label="hard policy, test world")
    ax.axhline(pr.hard_train, color="#d95f02", ls=":", lw=1, label="hard policy, training world")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$ of the soft policy")
    ax.set_ylabel("expected return")
    ax.legend(fontsize=7)
    change = test.metadata.get("perturbed")
    ax.set_title(title or (f"cell {tuple(change[:2])} becomes {change[2]} at test time" if change else "test world"))
    return ax


def first_hit_survival(results: Sequence[FirstHitTimes], labels: Optional[Sequence[str]] = None, *,
                       ax: Optional[Axes] = None, title: Optional[str] = None,
                       ylabel: str = "fraction of seeds without the far reward yet", found: str = "found") -> Axes:
    """Kaplan–Meier curves: the fraction of seeds that have not yet collected the far reward.

    One step curve per :class:`cai.why.FirstHitTimes` (from :func:`cai.why.first_hit_times`), from
    :func:`cai.why.kaplan_meier`, drawn to the budget; a curve that ends above 0 at the budget
    says that fraction of seeds never found the reward (censored). Dotted: 1/2 (the median).
    ``ylabel`` names the event (:func:`finetune_survival` counts a different one).

    Args:
        results: one :class:`cai.why.FirstHitTimes` per curve.
        labels: one legend label per result (default: each result's ``method``).
        ax: the Axes to draw on (default: a new figure).
        title: the title (default: the far-reward one).
        ylabel: the y-axis label, naming the event not yet seen.
        found: the legend's word for the event, as in ``"<label> (found 75% of 8)"``.

    Returns:
        The Axes.

    Raises:
        ValueError: no results, or ``labels`` of the wrong length.
    """
    if not results:
        raise ValueError("results: expected at least one FirstHitTimes, got none")
    if labels is not None and len(labels) != len(results):
        raise ValueError(f"labels: expected {len(results)} labels, got {len(labels)}")
    ax = _new_ax(ax, figsize=(6, 4))
    colors = ["#1f4e79", "#d95f02", "#2ca02c", "#7a0177", "#888888", "#e6ab02"]
    for i, r in enumerate(results):
        ev, surv = kaplan_meier(r.times, r.found)
        x = np.concatenate([[0.0], ev, [float(r.budget)]])
        y = np.concatenate([[1.0], surv, [surv[-1] if surv.size else 1.0]])
        lab = labels[i] if labels is not None else r.method
        ax.step(x, y, where="post", color=colors[i % len(colors)],
                label=f"{lab} ({found} {r.fraction_found:.0%} of {r.times.size})")
    ax.axhline(0.5, color="k", lw=0.6, ls=":")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(left=0)                                  # counts: symlog would otherwise show negative ticks
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("sampled transitions (symlog axis)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title or "time to the far reward (Kaplan-Meier, censored at the budget)")
    return ax


def meta_pomdp_episodes(mdp: TabularMDP, goals: Sequence[int], goal_prior: ArrayLike, alphas: Optional[ArrayLike] = None, *,
                        correct_paths: bool = True, ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Expected episodes until the hidden goal is reached, for MaxEnt policies with the reward ``log p(g)``.

    Solid: :func:`cai.why.maxent_meta_policy` with ``scale = 1`` (the reward ``log p(g)``, less
    the path-count term when ``correct_paths``) at each temperature; its goal distribution is
    ``p^(1/alpha)``, so it touches the optimum ``(sum_g sqrt p(g))^2`` (dashed) at ``alpha = 2``
    (marked). The point at ``alpha = 1`` is probability matching (``q = p``). Without the
    correction the goals reached by more paths are over-visited and no temperature is optimal
    (unless every goal has as many paths). The hard policy
    (``alpha -> 0``) needs infinitely many episodes. Dotted: :func:`cai.why.adaptive_episodes`, an
    agent that remembers its failures (outside the class the claim is about).

    Args:
        mdp, goals, goal_prior: the goal-reaching world, its ``K`` goal states and ``(K,)`` ``p(g)``,
            as in :func:`cai.why.maxent_meta_policy`.
        alphas: the temperatures of the curve (default: 40 from 0.4 to 20, log-spaced).
        correct_paths: subtract the path-count term ``alpha log w(g)`` from the reward.
        ax: the Axes to draw on (default: a new figure).
        title: the title.

    Returns:
        The Axes.

    Raises:
        ValueError: for bad temperatures, and as :func:`cai.why.maxent_meta_policy`.
    """
    a = _alphas(alphas, np.logspace(np.log10(0.4), np.log10(20.0), 40))
    eps = np.array([float(maxent_meta_policy(mdp, goals, goal_prior, float(x), scale=1.0,
                                             correct_paths=correct_paths).episodes) for x in a])
    at2 = maxent_meta_policy(mdp, goals, goal_prior, 2.0, scale=1.0, correct_paths=correct_paths)
    at1 = maxent_meta_policy(mdp, goals, goal_prior, 1.0, scale=1.0, correct_paths=correct_paths)
    ax = _new_ax(ax, figsize=(6, 4))
    reward = r"$\log p(g) - \alpha \log w(g)$" if correct_paths else r"$\log p(g)$"
    ax.plot(a, eps, "-", color="#1f4e79", label=rf"MaxEnt, reward {reward}, temperature $\alpha$")
    ax.axhline(float(at2.optimal_episodes), color="#d95f02", ls="--",
               label=rf"optimum $(\sum_g \sqrt{{p(g)}})^2$ = {float(at2.optimal_episodes):.3f}")
    ax.plot([2.0], [float(at2.episodes)], "o", color="#d95f02",
            label=(r"$\alpha = 2$: $q \propto \sqrt{p}$" if correct_paths else rf"$\alpha = 2$: {float(at2.episodes):.3f}"))
    ax.plot([1.0], [float(at1.episodes)], "s", color="#888888",
            label=(r"$\alpha = 1$: probability matching" if correct_paths else r"$\alpha = 1$") + f", {float(at1.episodes):.3f}")
    memory = float(adaptive_episodes(goal_prior))
    ax.axhline(memory, color="k", ls=":", lw=0.8, label=rf"agent with memory: {memory:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel(r"temperature $\alpha$")
    ax.set_ylabel("expected episodes until the hidden goal")
    ax.legend(fontsize=7)
    ax.set_title(title or "goal-reaching meta-POMDP: episodes until the hidden goal")
    return ax


def finetune_survival(results: Sequence[FinetuneTimes], labels: Optional[Sequence[str]] = None, *,
                      ax: Optional[Axes] = None, title: Optional[str] = None) -> Axes:
    """Kaplan–Meier curves: the fraction of seeds whose greedy policy has not yet reached the target return.

    One step curve per :class:`cai.why.FinetuneTimes` (from :func:`cai.why.finetune_times`: one
    start of soft Q-learning on the changed task), drawn as in :func:`first_hit_survival`.

    Args:
        results: one :class:`cai.why.FinetuneTimes` per curve, all with the same target return.
        labels: one legend label per result (default: ``"<start> start"``).
        ax: the Axes to draw on (default: a new figure).
        title: the title (default: names the target return).

    Returns:
        The Axes.

    Raises:
        ValueError: no results, results with different target returns (the y-axis names one), or
            ``labels`` of the wrong length.
    """
    if not results:
        raise ValueError("results: expected at least one FinetuneTimes, got none")
    if len({r.target for r in results}) > 1:
        raise ValueError(f"results: expected one target return, got {sorted({r.target for r in results})}")
    labels = list(labels) if labels is not None else [f"{r.start} start" for r in results]
    target = results[0].target
    return first_hit_survival([r.hits for r in results], labels, ax=ax,
                              title=title or f"fine-tuning: samples until the greedy return reaches {target:.3g}",
                              ylabel="fraction of seeds below the target return", found="reached it in")
