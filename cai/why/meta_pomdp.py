r"""MaxEnt RL solves a goal-reaching meta-POMDP (Eysenbach and Levine, 2019), exactly.

What was retrieved and what is derived here. The paper's abstract (arXiv 1910.01913) states that
"MaxEnt RL can be used to solve a certain class of POMDPs" in which the task (the goal) is
uncertain. Its body, with the exact construction, could not be retrieved when this was written;
the statement below (a hidden goal, episodes repeated with one policy until one reaches the goal,
the optimum ``q ∝ sqrt p`` and the reward ``log p`` at ``alpha = 2``) is the form we recall from
the paper, and every constant is derived here, not copied.

The meta-POMDP. A goal ``g`` is drawn from ``p(g)`` once and never shown to the agent. The agent
runs episodes of a finite-horizon MDP, always with the same policy ``pi`` (it keeps no memory from
one episode to the next: this is the class of policies the claim is about), until an episode
ends in ``g``. With ``q_pi(g) = P_pi(s_T = g)`` (for absorbing goals: the probability that one
episode reaches ``g``), the number of episodes is geometric given ``g``, so::

    E[N] = sum_g p(g) / q_pi(g)                                        (+inf if some q_pi(g) = 0 < p(g))

Its minimum over the simplex (Lagrange: ``p(g) / q(g)^2 = lambda``) is at::

    q*(g) = sqrt(p(g)) / sum_h sqrt(p(h)),     E*[N] = (sum_g sqrt(p(g)))^2

(the objective is convex in ``q``, so this is the global minimum). Every goal distribution is
achievable by some Markov policy when the dynamics are deterministic, every episode ends at a
goal and every goal can be reached (a flow on the time-unrolled graph), so ``q*`` is the optimum
over policies.

MaxEnt RL finds it. With deterministic dynamics, one start state and only a terminal reward
``r(s_T)``, soft value iteration at temperature ``alpha`` gives trajectories
``p(tau) ∝ prod_t rho(a_t|s_t) exp(r(s_T) / alpha)`` (``rho = 1`` on allowed actions for the
entropy objective, or a normalised prior for the KL objective), so::

    q_soft(g) ∝ w(g) exp(r(g) / alpha),     w(g) = sum over action sequences ending at g of prod_t rho(a_t|s_t)

``w`` is the goal distribution of MaxEnt RL with no reward (:func:`maxent_goal_weights`); in a
bandit or a tree ``w`` is constant (one path per goal, counting prior), on a lattice it is a
binomial coefficient. The reward::

    r(g) = scale * log p(g) - alpha * log w(g)          (scale = 1/2 at alpha = 1: the paper's reward)

gives ``q_soft ∝ p^(scale / alpha)``: exactly ``q*`` when ``scale / alpha = 1/2``, i.e. the reward
``log p(g)`` at temperature 2 or ``(1/2) log p(g)`` at temperature 1. Without the correction
(``correct_paths=False``) goals reached by more paths are over-visited. The reward ``log p`` at
``alpha = 1`` (probability matching, ``q = p``) gives ``E[N] = K`` (the number of goals), worse
than ``(sum sqrt p)^2`` unless ``p`` is uniform (Cauchy-Schwarz); the hard policy (``alpha -> 0``)
always aims at the most likely goal and never reaches the others: ``E[N] = inf``.

The claim is about memoryless policies. An agent that remembers its failures and tries the goals
in order of decreasing ``p`` without repeating one needs ``sum_k k p_(k)`` episodes
(:func:`adaptive_episodes`), fewer still: MaxEnt RL is optimal in the class of policies that do
not adapt across episodes, not among all POMDP policies.

References:
    Eysenbach and Levine (2019), "If MaxEnt RL is the Answer, What is the Question?",
    arXiv:1910.01913 (the abstract's claim; the construction here is derived, see above).
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from cai.dp.soft_vi import soft_value_iteration
from cai.dp.visitation import policy_marginals
from cai.exact.sampling import sample_trajectories
from cai.mdp.checks import ROW_SUM_TOL, as_tensor, check_distribution, check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["expected_episodes", "optimal_reach", "adaptive_episodes", "goal_reach", "maxent_goal_weights", "meta_reward",
           "maxent_meta_policy", "MetaPolicy", "simulate_episodes"]


class MetaPolicy(NamedTuple):
    """A MaxEnt policy for the goal-reaching meta-POMDP, with its exact numbers.

    Attributes:
        mdp: the goal-reaching MDP it solves (zero step rewards, :func:`meta_reward` as the
            terminal reward).
        policy: ``(T, S, A)`` the soft-optimal policy.
        reach: ``(K,)`` ``q_pi(g) = P(s_T = g)`` per goal.
        episodes: ``()`` the expected number of episodes ``sum_g p(g) / q_pi(g)``.
        optimal_reach: ``(K,)`` ``q*(g) ∝ sqrt(p(g))``.
        optimal_episodes: ``()`` ``(sum_g sqrt(p(g)))^2``.
    """

    mdp: TabularMDP
    policy: torch.Tensor
    reach: torch.Tensor
    episodes: torch.Tensor
    optimal_reach: torch.Tensor
    optimal_episodes: torch.Tensor


def _prior(goal_prior, positive: bool = False) -> torch.Tensor:
    p = as_tensor("goal_prior", goal_prior, torch.float64, None)
    if p.dim() != 1 or p.numel() < 1:
        raise ValueError(f"goal_prior: expected a 1-D probability vector, got shape {tuple(p.shape)}")
    p = check_distribution("goal_prior", p, p.numel(), torch.float64, None)
    if positive and bool((p <= 0).any()):
        raise ValueError(f"goal_prior: expected every goal's probability > 0 (drop goals that never occur), got {p.tolist()}")
    return p


def expected_episodes(goal_prior: ArrayLike, reach: ArrayLike) -> torch.Tensor:
    r"""The expected number of episodes until one ends in the hidden goal: ``sum_g p(g) / q(g)``.

    Given the goal, the episodes are independent trials with success probability ``q(g)``, so
    their number is geometric with mean ``1 / q(g)``; goals with ``p(g) = 0`` add nothing.

    Args:
        goal_prior: ``(K,)`` ``p(g)``, non-negative, summing to 1.
        reach: ``(*b, K)`` ``q(g)`` per goal, in ``[0, 1]`` with ``sum_g q(g) <= 1``.

    Returns:
        ``(*b,)`` float64; ``+inf`` where some goal with ``p(g) > 0`` has ``q(g) = 0``.

    Raises:
        ValueError: for a prior that is not a probability vector, or ``reach`` of the wrong shape
            or outside ``[0, 1]`` / summing above 1.
    """
    p = _prior(goal_prior)
    q = as_tensor("reach", reach, torch.float64, None)
    if q.dim() < 1 or q.shape[-1] != p.numel():
        raise ValueError(f"reach: expected shape (*b, {p.numel()}), got {tuple(q.shape)}")
    if not bool(torch.isfinite(q).all()) or bool((q < 0).any()) or bool((q > 1).any()) or \
            bool((q.sum(-1) > 1 + ROW_SUM_TOL).any()):
        raise ValueError("reach: expected probabilities in [0, 1] summing to at most 1 over the goals")
    p = p.to(q.device)
    terms = torch.where(p > 0, p / q, torch.zeros_like(q))         # p/0 = inf where p > 0
    return terms.sum(-1)


def optimal_reach(goal_prior: ArrayLike) -> torch.Tensor:
    r"""The goal distribution that minimises :func:`expected_episodes`: ``q*(g) ∝ sqrt(p(g))``.

    Args:
        goal_prior: ``(K,)`` ``p(g)``.

    Returns:
        ``(K,)`` float64; the minimum is ``(sum_g sqrt(p(g)))^2``.

    Raises:
        ValueError: for a prior that is not a probability vector.
    """
    s = _prior(goal_prior).sqrt()
    return s / s.sum()


def adaptive_episodes(goal_prior: ArrayLike) -> torch.Tensor:
    r"""Expected episodes of an agent that remembers: it tries the goals by decreasing ``p``, each once.

    ``sum_k k p_(k)`` with ``p_(1) >= p_(2) >= ...``: the best history-dependent strategy when one
    episode can end in one chosen goal (by the rearrangement inequality). MaxEnt RL's
    ``(sum sqrt p)^2`` is the best a *memoryless* policy can do; this is the bound it leaves.

    Args:
        goal_prior: ``(K,)`` ``p(g)``.

    Returns:
        ``()`` float64.

    Raises:
        ValueError: for a prior that is not a probability vector.
    """
    p = torch.sort(_prior(goal_prior), descending=True).values
    return (torch.arange(1, p.numel() + 1, dtype=p.dtype) * p).sum()


def _check_mdp(mdp, goals, fn):
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"{fn}: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
    if mdp.horizon is None:
        raise ValueError(f"{fn}: mdp: expected a finite horizon (one episode), got horizon=None")
    if mdp.gamma != 1.0:
        raise ValueError(f"{fn}: mdp: expected no discount (an episode ends at its horizon), got discount={mdp.discount!r}")
    if len(mdp.batch_shape):
        raise ValueError(f"{fn}: mdp: expected an MDP without reward batch, got batch shape {tuple(mdp.batch_shape)}")
    S = mdp.n_states
    if isinstance(goals, (torch.Tensor, np.ndarray)) and goals.ndim == 1 and \
            (goals.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8) or
             (isinstance(goals, np.ndarray) and np.issubdtype(goals.dtype, np.integer))):
        goals = goals.tolist()                                      # a 1-D integer array of indices
    if isinstance(goals, (str, bytes)) or not isinstance(goals, Sequence) or len(goals) < 1 or \
            any(isinstance(g, bool) or not isinstance(g, numbers.Integral) or not 0 <= g < S for g in goals) or \
            len(set(int(g) for g in goals)) != len(goals):
        raise ValueError(f"goals: expected a non-empty sequence of distinct state indices in [0, {S}), got {goals!r}")
    return [int(g) for g in goals]


def _check_deterministic(mdp, fn):
    P = mdp.dense_transitions()
    allowed = mdp.allowed if mdp.reward_layout != "tsa" else mdp.allowed.any(0)
    if bool(((P.max(-1).values < 1 - ROW_SUM_TOL) & allowed).any()):
        raise ValueError(f"{fn}: mdp: expected deterministic dynamics on every allowed action "
                         "(with noise soft VI's goal distribution is not ∝ w exp(r / alpha))")
    if float(mdp.initial.max()) < 1 - ROW_SUM_TOL:
        raise ValueError(f"{fn}: mdp: expected one start state (initial of a single 1), got initial={mdp.initial.tolist()}")


def _zero_reward(mdp: TabularMDP, terminal: Optional[torch.Tensor] = None) -> TabularMDP:
    """The same MDP with every step reward 0 (forbidden actions, -inf, kept) and the given terminal reward."""
    r = torch.where(torch.isneginf(mdp.rewards), mdp.rewards, torch.zeros_like(mdp.rewards))
    term = torch.zeros(mdp.n_states, dtype=mdp.dtype, device=mdp.device) if terminal is None else terminal
    return mdp.replace(rewards=r, reward_layout=mdp.reward_layout, terminal_rewards=term)


def goal_reach(mdp: TabularMDP, policy: ArrayLike, goals: Sequence[int]) -> torch.Tensor:
    r"""``q_pi(g) = P_pi(s_T = g)`` for each goal: where one episode under ``policy`` ends.

    From the exact forward marginals (:func:`cai.policy_marginals`). For absorbing goal states it
    is the probability that the episode reaches ``g`` at all.

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP`.
        policy: ``(*b, T, S, A)`` or ``(S, A)``.
        goals: ``K`` distinct state indices (a sequence, or a 1-D integer array or tensor).

    Returns:
        ``(*b, K)``.

    Raises:
        TypeError, ValueError: for a bad MDP, policy or goal list.
    """
    g = _check_mdp(mdp, goals, "goal_reach")
    return policy_marginals(mdp, policy).state[..., -1, g]


def maxent_goal_weights(mdp: TabularMDP, goals: Sequence[int], action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""The goal distribution of MaxEnt RL with no reward: ``w(g) ∝ sum_{a_0..a_{T-1} -> g} prod_t rho(a_t|s_t)``.

    Soft value iteration on the MDP with every reward set to 0 (forbidden actions kept), pushed
    forward by :func:`goal_reach`. With the counting prior (``action_prior=None``) ``w(g)`` is
    the fraction of allowed action sequences that end at ``g`` (on :func:`~cai.worlds.goal_lattice`,
    ``binomial(T, i) / 2^T``); with a normalised prior it is where the prior policy ends.

    Args:
        mdp: a finite-horizon, undiscounted :class:`~cai.TabularMDP` with deterministic dynamics
            and one start state.
        goals: ``K`` distinct state indices; every state an episode can end in must be one.
        action_prior: ``None`` or an ``(S, A)`` normalised prior (as in :func:`cai.soft_value_iteration`).

    Returns:
        ``(K,)``, summing to 1.

    Raises:
        TypeError, ValueError: for a bad MDP or goal list, stochastic dynamics or start, a goal
            that no episode reaches, or an episode that can end outside the goals.
    """
    g = _check_mdp(mdp, goals, "maxent_goal_weights")
    _check_deterministic(mdp, "maxent_goal_weights")
    zero = _zero_reward(mdp)
    w = goal_reach(zero, soft_value_iteration(zero, 1.0, action_prior).policy, g)
    if abs(float(w.sum()) - 1.0) > 1e-9:
        raise ValueError(f"goals: expected every state an episode can end in to be a goal; {1 - float(w.sum()):.3g} "
                         "of the episodes end elsewhere")
    if bool((w <= 0).any()):
        raise ValueError(f"goals: expected every goal reachable at the horizon, got unreachable goals "
                         f"{[gi for gi, wi in zip(g, w.tolist()) if wi <= 0]}")
    return w


def meta_reward(mdp: TabularMDP, goals: Sequence[int], goal_prior: ArrayLike, alpha: float = 1.0, *, scale: float = 0.5,
                correct_paths: bool = True, action_prior: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""The terminal reward ``r(g) = scale * log p(g) - alpha * log w(g)`` on the goals (0 elsewhere).

    Soft value iteration at temperature ``alpha`` with this terminal reward ends in goal ``g``
    with probability ``∝ p(g)^(scale / alpha)``; ``scale / alpha = 1/2`` is the meta-POMDP optimum.
    ``w`` is :func:`maxent_goal_weights`; ``correct_paths=False`` drops the ``- alpha log w`` term.

    Args:
        mdp, goals, action_prior: as :func:`maxent_goal_weights`.
        goal_prior: ``(K,)`` ``p(g) > 0``, summing to 1.
        alpha: the temperature the reward is meant for, > 0.
        scale: the weight of ``log p``: ``0.5`` at ``alpha = 1`` is the paper's reward.
        correct_paths: subtract ``alpha log w(g)``, the bias towards goals reached by more paths.

    Returns:
        ``(S,)`` finite terminal rewards.

    Raises:
        TypeError, ValueError: as :func:`maxent_goal_weights`, and for a bad prior, ``alpha`` or ``scale``.
    """
    g = _check_mdp(mdp, goals, "meta_reward")
    p = _prior(goal_prior, positive=True)
    if p.numel() != len(g):
        raise ValueError(f"goal_prior: expected one probability per goal ({len(g)}), got {p.numel()}")
    for name, v in (("alpha", alpha), ("scale", scale)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    w = maxent_goal_weights(mdp, g, action_prior)
    r = torch.zeros(mdp.n_states, dtype=mdp.dtype, device=mdp.device)
    val = scale * torch.log(p).to(mdp.dtype).to(mdp.device)
    if correct_paths:
        val = val - alpha * torch.log(w)
    r[g] = val
    return r


def maxent_meta_policy(mdp: TabularMDP, goals: Sequence[int], goal_prior: ArrayLike, alpha: float = 1.0, *,
                       scale: float = 0.5, correct_paths: bool = True,
                       action_prior: Optional[ArrayLike] = None) -> MetaPolicy:
    r"""Solve the goal-reaching meta-POMDP with soft value iteration and report its exact numbers.

    Builds the goal-reaching MDP (step rewards 0, :func:`meta_reward` as the terminal reward),
    runs :func:`cai.soft_value_iteration` at ``alpha``, and evaluates the policy's
    :func:`goal_reach` and :func:`expected_episodes` against the optimum :func:`optimal_reach`.
    With the defaults (``scale = 1/2``, ``alpha = 1``) ``reach`` equals ``optimal_reach``.

    Args:
        mdp, goals, goal_prior, alpha, scale, correct_paths, action_prior: as :func:`meta_reward`.

    Returns:
        :class:`MetaPolicy`.

    Raises:
        TypeError, ValueError: as :func:`meta_reward`.
    """
    r = meta_reward(mdp, goals, goal_prior, alpha, scale=scale, correct_paths=correct_paths, action_prior=action_prior)
    task = _zero_reward(mdp, r)
    pi = soft_value_iteration(task, alpha, action_prior).policy
    q = goal_reach(task, pi, goals)
    qs = optimal_reach(goal_prior)
    return MetaPolicy(task, pi, q, expected_episodes(goal_prior, q), qs, expected_episodes(goal_prior, qs))


def simulate_episodes(mdp: TabularMDP, policy: ArrayLike, goals: Sequence[int], goal_prior: ArrayLike, n: int, *,
                      generator: Optional[torch.Generator] = None, max_episodes: int = 1000) -> torch.Tensor:
    r"""Brute force: play the meta-POMDP ``n`` times and count the episodes each needed.

    Each run draws a hidden goal from ``goal_prior``, then samples whole episodes from ``policy``
    and the MDP's dynamics (:func:`cai.sample_trajectories`) until one ends in that goal. Used to
    check :func:`expected_episodes` (mean within a few standard errors).

    Args:
        mdp: a finite-horizon :class:`~cai.TabularMDP`.
        policy: ``(T, S, A)`` or ``(S, A)``.
        goals: ``K`` distinct state indices.
        goal_prior: ``(K,)`` ``p(g)``.
        n: number of runs, a positive integer.
        generator: a ``torch.Generator`` for reproducibility.
        max_episodes: runs still searching after this many episodes are censored: ``+inf``.

    Returns:
        ``(n,)`` float64 episode counts (``+inf`` where censored).

    Raises:
        TypeError, ValueError: for a bad MDP, policy, goal list, prior, ``n``, ``max_episodes`` or
            ``generator``.
    """
    g = _check_mdp(mdp, goals, "simulate_episodes")
    p = _prior(goal_prior)
    if p.numel() != len(g):
        raise ValueError(f"goal_prior: expected one probability per goal ({len(g)}), got {p.numel()}")
    n, max_episodes = check_positive_int("n", n), check_positive_int("max_episodes", max_episodes)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    target = torch.tensor(g, device=mdp.device)[torch.multinomial(p.to(mdp.device), int(n), replacement=True,
                                                                   generator=generator)]
    counts = torch.full((int(n),), math.inf, dtype=torch.float64)
    active = torch.arange(int(n))
    for k in range(1, int(max_episodes) + 1):
        end = sample_trajectories(mdp, policy, active.numel(), generator=generator).states[:, -1]
        hit = end == target[active]
        counts[active[hit.cpu()]] = float(k)
        active = active[~hit.cpu()]
        if active.numel() == 0:
            break
    return counts
