r"""Tabular soft Q-learning from sampled transitions (and the hard-max Q-learning contrast).

Soft value iteration needs the model; soft Q-learning replaces the expectation over ``s'`` by
sampled transitions and moves ``Q`` towards the soft TD target with a step size ``eta``::

    y        = r(s,a) + gamma * V(s'),      V(s') = alpha log sum_a' rho(a'|s') exp(Q(s',a') / alpha)
    Q(s,a)  <- Q(s,a) + eta_n(s,a) * (y - Q(s,a))

(finite horizon: ``Q_t`` with target ``r_t + gamma V_{t+1}(s')`` and ``V_T = r_T``). Its fixed
point is the soft Q of :func:`cai.soft_value_iteration`. With the max semiring
(``V(s') = max_a' Q(s',a')``, :func:`q_learning`) it is ordinary Q-learning, whose fixed point
is the hard Q of :func:`cai.value_iteration`. Both are off-policy: any behaviour that tries
every allowed action converges (with Robbins–Monro steps ``sum eta = inf``, ``sum eta^2 < inf``,
e.g. :class:`PolynomialStepSize` with ``1/2 < power <= 1``). The default behaviour is Boltzmann
in the current ``Q`` (the soft-optimal policy's form) mixed with weight ``epsilon = 0.2`` with
``u(a|s)``, the action prior normalised over the allowed actions (uniform for the counting measure)::

    b(a|s) = (1 - epsilon) * rho(a|s) exp(Q(s,a) / behaviour_alpha) / Z(s) + epsilon * u(a|s)

The mixture is what makes the default converge: a pure Boltzmann behaviour on the *estimated*
``Q`` gives an action whose estimate lags by ``dQ`` a probability ``exp(-dQ / behaviour_alpha)``,
so once one action's estimate has grown (say at a rewarding goal, where every action is equally
good) the others are practically never tried again and keep their initial value; the
convergence theorem's "every allowed action is tried infinitely often" fails in practice. With
``epsilon > 0`` every allowed action has probability at least ``epsilon * u(a|s)`` in every
visited state, whatever ``Q`` is. Since the targets do not depend on the behaviour, the fixed
point is unchanged. This is dithering, not directed, exploration: it does not make far states
likely. Where reaching a state takes a long specific path within the horizon (the ``two-route``
world: 12 steps down one of two corridors), neither it nor a uniform behaviour visits every
state a soft-optimal agent visits within a few hundred thousand samples; the stationary 3x3
grid and the ``chain`` and ``lottery`` worlds converge in 100k-300k samples (tests). Optimistic
initialisation (``q_init`` above ``Q*``) adds directed exploration: on ``two-route`` it reaches
an error of 0.2-0.3 where the agent goes in 300k samples (``q_init = 30``; 14.5 with 0). It is
not the default because it needs a bound on ``Q*`` and a loose one costs: the bias decays slowly
through self-loops. Max error on the discounted 3x3 grid after 300k samples (seeds 0-2, 32 / 256
parallel episodes): ``q_init = 0``: 0.28-2.85 / 0.45-0.65; 30 (just above ``max Q* = 22.5``):
0.25-0.42 / 0.48-0.64; 114 (the bound ``(max r + alpha log |A|) / (1 - gamma)``): 0.19-0.45 /
2.7-3.2.

Transitions are simulated from the MDP in ``n_envs`` parallel episodes; updates that hit the
same ``(t, s, a)`` in one batch are averaged (a minibatch step). The same backups over actions
as the core are used (:func:`cai.ops.backup.soft_max`, :func:`cai.ops.backup.hard_max`).

References:
    Watkins and Dayan (1992), "Q-learning", Machine Learning 8.
    Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement learning with deep energy-based
    policies", ICML (soft Q-learning).
    Even-Dar and Mansour (2003), "Learning rates for Q-learning", JMLR (polynomial steps).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Tuple, Union

import torch
from tqdm.auto import tqdm

from cai.exact.sampling import transition_rows
from cai.mdp.checks import as_tensor, check_policy, check_positive_int
from cai.mdp.tabular import TabularMDP, check_model
from cai.ops.backup import hard_max, soft_max
from cai.typing import Alpha, ArrayLike

__all__ = ["PolynomialStepSize", "TDResult", "soft_q_learning", "q_learning"]


@dataclass(frozen=True)
class PolynomialStepSize:
    """``eta(n) = scale / (offset + n) ** power`` for the ``n``-th update (0-based) of an entry.

    Robbins–Monro for ``1/2 < power <= 1``; ``power = 1, offset = 1, scale = 1`` averages the
    targets. Even-Dar and Mansour (2003) show that Q-learning with ``1/2 < power < 1`` converges in
    a time polynomial in ``1 / (1 - gamma)`` (``power = 1``: exponential); the initial error decays
    faster the smaller ``power``, the noise slower. The default 0.6 suits the small worlds here:
    on the 3x3 grid of the tests (discount 0.9, values up to 22) soft Q-learning's error after 600k
    samples is 0.2-0.4 with 0.6 against 0.8-2.4 with 0.8 (32 and 256 parallel episodes, 3 seeds).
    """

    scale: float = 1.0
    power: float = 0.6
    offset: float = 1.0

    def __post_init__(self):
        if not (self.scale > 0 and self.power > 0 and self.offset > 0):
            raise ValueError(f"PolynomialStepSize: expected scale > 0, power > 0, offset > 0, got {self}")

    def __call__(self, n: torch.Tensor) -> torch.Tensor:
        return self.scale / (self.offset + n) ** self.power


class TDResult(NamedTuple):
    """The result of :func:`soft_q_learning` / :func:`q_learning`.

    Attributes:
        Q: ``(T, S, A)`` or ``(S, A)`` learned Q (``-inf`` at forbidden actions).
        V: ``(T+1, S)`` or ``(S,)`` its soft (or hard) maximum; ``V_T = r_T``.
        policy, log_policy: the soft-optimal (or greedy) policy of ``Q``.
        n_samples: transitions used.
        visits: sampled transitions per ``(t, s, a)`` / ``(s, a)``.
        history: list of ``(samples, max |Q - reference|)`` (empty without a reference).
        samples_to_tol: transitions used when the error first fell to ``tol`` (else ``None``).
        first_hit: with ``stop_at``: the 1-based index of the first sampled transition from a
            ``stop_at`` pair (samples of one parallel step counted in environment order), else
            ``None`` (never sampled within ``n_samples``, or no ``stop_at``).
    """

    Q: torch.Tensor
    V: torch.Tensor
    policy: torch.Tensor
    log_policy: torch.Tensor
    n_samples: int
    visits: torch.Tensor
    history: List[Tuple[int, float]]
    samples_to_tol: Optional[int]
    first_hit: Optional[int] = None


StepSize = Union[float, PolynomialStepSize, Callable[[torch.Tensor], torch.Tensor]]


def _initial_q(q_init, shape, forbidden, dt, dev) -> torch.Tensor:
    """``Q`` at the start: a constant or a full table (e.g. another task's solution), ``-inf`` where forbidden."""
    if isinstance(q_init, bool):
        raise ValueError(f"q_init: expected a finite initial value or a {shape} table, got {q_init!r}")
    if isinstance(q_init, numbers.Real):
        if not math.isfinite(q_init):
            raise ValueError(f"q_init: expected a finite initial value, got {q_init!r}")
        Q = torch.full(shape, float(q_init), dtype=dt, device=dev)
    else:
        try:
            Q = as_tensor("q_init", q_init, dt, dev).clone()
        except TypeError as exc:
            raise ValueError(f"q_init: expected a finite initial value or a {shape} table, got {q_init!r}") from exc
        if tuple(Q.shape) != shape:
            raise ValueError(f"q_init: expected a number or a table of shape {shape}, got shape {tuple(Q.shape)}")
        if not bool(torch.isfinite(Q[~forbidden]).all()):
            raise ValueError("q_init: expected finite values at every allowed action (non-finite only where forbidden)")
    return torch.where(forbidden, torch.full_like(Q, -float("inf")), Q)


def _td_learning(mdp, alpha, log_prior, aggregate, value_fn, behaviour, behaviour_alpha, epsilon, q_init, n_samples,
                 n_envs, step_size, reset_prob, reference, tol, eval_every, generator, progress, desc,
                 stop_at=None) -> TDResult:
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    g = mdp.gamma
    dt, dev = mdp.dtype, mdp.device
    check_positive_int("n_samples", n_samples)
    check_positive_int("n_envs", n_envs)
    check_positive_int("eval_every", eval_every)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (0 <= epsilon <= 1):
        raise ValueError(f"epsilon: expected an exploration probability in [0, 1], got {epsilon!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if step_size is None:
        step_size = PolynomialStepSize()
    if isinstance(step_size, (int, float)) and not isinstance(step_size, bool):
        if not (0 < step_size <= 1):
            raise ValueError(f"step_size: expected a constant in (0, 1] or a schedule, got {step_size!r}")
        const = float(step_size)
        step_fn = lambda n: torch.full_like(n, const)  # noqa: E731
    elif callable(step_size):
        step_fn = step_size
    else:
        raise ValueError(f"step_size: expected a float, a PolynomialStepSize or a callable, got {step_size!r}")
    if T is None:
        if reset_prob is None:
            reset_prob = 1.0 - g
        if not (0 < reset_prob <= 1):
            raise ValueError(f"reset_prob: expected a probability in (0, 1], got {reset_prob!r}")
    # forbidden actions: -inf reward (any successor for r(s,a,s')) or zero prior probability
    forbidden = ~mdp.allowed                                  # (S, A) or (T, S, A)
    if log_prior is not None:
        forbidden = forbidden | torch.isneginf(log_prior)
    shape = (T, S, A) if T is not None else (S, A)
    Q = _initial_q(q_init, shape, forbidden.expand(shape), dt, dev)
    visits = torch.zeros(shape, dtype=dt, device=dev)       # sampled transitions per entry
    updates = torch.zeros(shape, dtype=dt, device=dev)      # (minibatch) updates per entry
    beh_fixed = None
    if not isinstance(behaviour, str):
        b = as_tensor("behaviour", behaviour, dt, dev)
        beh_fixed = check_policy(b, (T, S, A) if (T is not None and b.dim() == 3) else (S, A), dt, dev,
                                 name="behaviour")
        if bool(((beh_fixed == 0) & ~forbidden.expand(beh_fixed.shape)).any()):
            raise ValueError("behaviour: expected positive probability on every allowed action "
                             "(off-policy learning needs full support)")
    elif behaviour not in ("boltzmann", "uniform", "greedy"):
        raise ValueError(f"behaviour: expected 'boltzmann', 'greedy', 'uniform' or a policy array, got {behaviour!r}")
    if stop_at is not None:
        stop_at = torch.as_tensor(stop_at, device=dev)
        if stop_at.dtype != torch.bool or tuple(stop_at.shape) != (S, A):
            raise ValueError(f"stop_at: expected a boolean (S, A) = {(S, A)} mask, got "
                             f"{stop_at.dtype} of shape {tuple(stop_at.shape)}")
    if reference is not None:
        reference = as_tensor("reference", reference, dt, dev)
        if tuple(reference.shape) != shape:
            raise ValueError(f"reference: expected shape {shape}, got {tuple(reference.shape)}")
    ok_ref = None if reference is None else torch.isfinite(reference)
    beta = torch.as_tensor(behaviour_alpha, dtype=dt, device=dev)
    uniform_logits = torch.where(forbidden, -float("inf"), 0.0).to(dt)
    if log_prior is not None:
        uniform_logits = uniform_logits + log_prior

    def normalised(logits):
        m = logits.amax(-1, keepdim=True)
        p = torch.exp(logits - torch.where(torch.isfinite(m), m, torch.zeros_like(m)))
        return p / p.sum(-1, keepdim=True)

    def behaviour_probs(Qt, s, t):
        if beh_fixed is not None:
            return (beh_fixed[t] if beh_fixed.dim() == 3 else beh_fixed)[s]
        uniform = normalised((uniform_logits[t] if uniform_logits.dim() == 3 else uniform_logits)[s])
        if behaviour == "uniform":
            return uniform
        if behaviour == "greedy":
            # epsilon-greedy: the maximisers of Q (ties split evenly), mixed with u(a|s)
            q = Qt[s]
            best = torch.where(q == q.amax(-1, keepdim=True), 0.0, -float("inf")).to(dt)
            return (1.0 - epsilon) * normalised(best) + epsilon * uniform
        boltzmann = normalised(Qt[s] / beta + (0.0 if log_prior is None else log_prior[s]))
        # epsilon-mixture: every allowed action keeps probability >= epsilon * u(a|s)
        return (1.0 - epsilon) * boltzmann + epsilon * uniform

    def values_next(t_next, s_next):
        if T is not None and t_next == T:
            return mdp.terminal_rewards[s_next]
        Qn = Q[t_next] if T is not None else Q
        return value_fn(Qn)[s_next]

    def update(t, s, a, y):
        Qt = Q[t] if T is not None else Q
        vt = visits[t] if T is not None else visits
        ut = updates[t] if T is not None else updates
        flat = s * A + a
        cnt = torch.zeros(S * A, dtype=dt, device=dev).index_add_(0, flat, torch.ones_like(y))
        err = torch.zeros(S * A, dtype=dt, device=dev).index_add_(0, flat, y - Qt.reshape(-1)[flat])
        hit = cnt > 0
        n_prev = ut.reshape(-1)
        eta = torch.where(hit, step_fn(n_prev), torch.zeros_like(n_prev))
        delta = torch.where(hit, eta * err / torch.where(hit, cnt, torch.ones_like(cnt)), torch.zeros_like(cnt))
        Qt.reshape(-1).add_(torch.where(torch.isfinite(Qt.reshape(-1)), delta, torch.zeros_like(delta)))
        vt.reshape(-1).add_(cnt)
        ut.reshape(-1).add_(hit.to(dt))

    history: List[Tuple[int, float]] = []
    samples_to_tol = None
    done = 0
    next_eval = 0

    def evaluate():
        nonlocal samples_to_tol, next_eval
        if reference is None:
            return False
        e = (Q - reference).abs()
        err = float(torch.where(ok_ref, e, torch.zeros_like(e)).max())
        history.append((done, err))
        next_eval = done + eval_every
        if tol is not None and err <= tol and samples_to_tol is None:
            samples_to_tol = done
            return True
        return False

    first_hit = None
    bar = tqdm(total=n_samples, disable=not progress, desc=desc)
    stop = evaluate()
    s = torch.multinomial(mdp.initial.expand(n_envs, S), 1, generator=generator).squeeze(-1)
    t = 0
    while done < n_samples and not stop:
        if T is not None and t == 0:
            s = torch.multinomial(mdp.initial.expand(n_envs, S), 1, generator=generator).squeeze(-1)
        Qt = Q[t] if T is not None else Q
        a = torch.multinomial(behaviour_probs(Qt, s, t if T is not None else None), 1,
                              generator=generator).squeeze(-1)
        s2 = torch.multinomial(transition_rows(mdp, s * A + a), 1, generator=generator).squeeze(-1)
        if stop_at is not None:
            hits = torch.nonzero(stop_at[s, a]).reshape(-1)
            if hits.numel() > 0 and done + int(hits[0]) < n_samples:
                first_hit = done + int(hits[0]) + 1
                stop = True
        r = mdp.reward_at(t if T is not None else None)
        r = r[s, a, s2] if mdp.reward_layout == "sas" else r[s, a]
        with torch.no_grad():
            y = r + g * values_next(t + 1 if T is not None else None, s2)
            update(t if T is not None else None, s, a, y)
        done += n_envs
        bar.update(n_envs)
        if T is not None:
            t = (t + 1) % T
            s = s2
        else:
            reset = torch.rand(n_envs, generator=generator, dtype=dt, device=dev) < reset_prob
            if bool(reset.any()):
                fresh = torch.multinomial(mdp.initial.expand(n_envs, S), 1, generator=generator).squeeze(-1)
                s2 = torch.where(reset, fresh, s2)
            s = s2
        if done >= next_eval:
            stop = evaluate() or stop
    bar.close()
    if reference is not None and (not history or history[-1][0] != done):
        evaluate()
    V, log_pi = aggregate(Q)
    if T is not None:
        V = torch.cat([V, mdp.terminal_rewards.unsqueeze(0)], 0)
    return TDResult(Q, V, torch.exp(log_pi), log_pi, done, visits, history, samples_to_tol, first_hit)


def soft_q_learning(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, n_samples: int = 100_000,
                    n_envs: int = 32, step_size: Optional[StepSize] = None,
                    behaviour: Union[str, ArrayLike] = "boltzmann", behaviour_alpha: Optional[float] = None,
                    epsilon: float = 0.2, q_init: Union[float, ArrayLike] = 0.0,
                    reset_prob: Optional[float] = None, reference: Optional[ArrayLike] = None, tol: Optional[float] = None,
                    eval_every: int = 1000, generator: Optional[torch.Generator] = None,
                    progress: bool = False, stop_at: Optional[ArrayLike] = None) -> TDResult:
    r"""Tabular soft Q-learning with the soft TD target ``r + gamma * alpha log sum rho exp(Q/alpha)``.

    Args:
        mdp: :class:`~cai.TabularMDP` (finite horizon: time-indexed ``Q_t``; stationary with a
            discount < 1: one ``Q``). Unbatched.
        alpha: temperature > 0 of the soft backup.
        action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        n_samples: number of sampled transitions.
        n_envs: parallel episodes (one batched update per step).
        step_size: a constant in (0, 1], a :class:`PolynomialStepSize` or a callable mapping the
            per-entry count of previous updates ``(..., S, A)`` to step sizes. An update moves
            ``Q(s,a)`` towards the mean target of the batch's samples of ``(s,a)``.
        behaviour: ``"boltzmann"`` (``pi ∝ rho exp(Q / behaviour_alpha)`` from the current Q),
            ``"greedy"`` (the maximisers of the current Q, ties split evenly; with ``epsilon``:
            epsilon-greedy), ``"uniform"`` (the prior, or uniform over allowed actions) or a fixed policy array
            ``(S, A)`` / ``(T, S, A)`` with full support.
        behaviour_alpha: Boltzmann temperature (default ``alpha``: the current soft policy).
        epsilon: weight of the uniform policy (the action prior, restricted to allowed actions)
            in the ``"boltzmann"`` and ``"greedy"`` behaviours, in ``[0, 1]``: ``b = (1 - epsilon) * Boltzmann +
            epsilon * uniform`` (see the module docstring); ``0`` gives pure Boltzmann, which can
            stop trying actions whose estimates lag. Not used by the other behaviours.
        q_init: initial value of every allowed entry of ``Q``, or a full table of the shape of
            ``Q`` (``(T, S, A)`` or ``(S, A)``; finite at allowed actions, e.g. another task's
            solution to fine-tune from, see :mod:`cai.why.finetune`). A value above ``Q*`` (an upper
            bound: ``(max r + alpha log |A|) / (1 - gamma)``, or for a horizon ``T`` that many
            steps' worth) is optimism: untried actions look best, so the Boltzmann behaviour seeks
            them out (directed exploration; see the module docstring). The first update of an
            entry replaces it when the step size starts at 1 (the default schedule), but
            bootstrapping from untried successors keeps some optimism until they are tried.
        reset_prob: stationary MDPs only: per-step probability of restarting from ``p0``
            (default ``1 - gamma``).
        reference: ``Q`` to track ``max |Q - reference|`` against (e.g. soft VI's ``.Q``).
        tol: with a ``reference``, stop once the error is at most ``tol``.
        eval_every: samples between error evaluations.
        generator: ``torch.Generator`` for reproducibility.
        progress: show a tqdm progress bar.
        stop_at: optional boolean ``(S, A)`` mask (at every step ``t``): stop at the first sampled
            transition from a masked pair and record its index in ``TDResult.first_hit`` (the
            samples of the other parallel episodes of that step are still used for the update).

    Returns:
        :class:`TDResult`.

    Raises:
        ValueError: invalid arguments (named), or a batched MDP.
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "soft_q_learning")
    if mdp.batch_shape != torch.Size([]) or a.dim() != 0:
        raise ValueError(f"mdp: expected an unbatched MDP and a scalar alpha, got reward batch "
                         f"{tuple(mdp.batch_shape)} and alpha of shape {tuple(a.shape)}")
    beta = float(a) if behaviour_alpha is None else float(behaviour_alpha)
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"behaviour_alpha: expected a temperature > 0, got {behaviour_alpha!r}")
    agg = lambda Q: soft_max(Q, a, log_prior)  # noqa: E731
    return _td_learning(mdp, a, log_prior, agg, lambda Q: agg(Q)[0], behaviour, beta, epsilon, q_init, n_samples, n_envs,
                        step_size, reset_prob, reference, tol, eval_every, generator, progress, "soft Q-learning",
                        stop_at)


def q_learning(mdp: TabularMDP, *, n_samples: int = 100_000, n_envs: int = 32,
               step_size: Optional[StepSize] = None, behaviour: Union[str, ArrayLike] = "boltzmann", behaviour_alpha: float = 1.0,
               epsilon: float = 0.2, q_init: Union[float, ArrayLike] = 0.0, reset_prob: Optional[float] = None, reference: Optional[ArrayLike] = None,
               tol: Optional[float] = None,
               eval_every: int = 1000, generator: Optional[torch.Generator] = None,
               progress: bool = False, stop_at: Optional[ArrayLike] = None) -> TDResult:
    r"""Tabular (hard-max) Q-learning: target ``r + gamma max_a' Q(s', a')``; the ``alpha -> 0`` contrast.

    Converges to the Q of :func:`cai.value_iteration`. The behaviour is Boltzmann in the current
    ``Q`` at temperature ``behaviour_alpha`` mixed with the uniform policy with weight ``epsilon``
    (from ``Q = q_init``) by default (exploration only: it does not enter the target);
    ``behaviour="greedy"`` is epsilon-greedy (used by :mod:`cai.why.exploration`). Other
    arguments as in :func:`soft_q_learning`; the result's policy is greedy.
    """
    a, _ = check_model(mdp, 1.0, None, "q_learning")
    if mdp.batch_shape != torch.Size([]):
        raise ValueError(f"mdp: expected an unbatched MDP, got reward batch {tuple(mdp.batch_shape)}")
    if not (isinstance(behaviour_alpha, (int, float)) and math.isfinite(behaviour_alpha) and behaviour_alpha > 0):
        raise ValueError(f"behaviour_alpha: expected a temperature > 0, got {behaviour_alpha!r}")
    agg = lambda Q: hard_max(Q)  # noqa: E731
    # in the loop only the max semiring's value is needed (hard_max also builds the greedy policy)
    return _td_learning(mdp, a, None, agg, lambda Q: Q.amax(-1), behaviour, float(behaviour_alpha), epsilon, q_init, n_samples,
                        n_envs, step_size, reset_prob, reference, tol, eval_every, generator, progress, "Q-learning", stop_at)
