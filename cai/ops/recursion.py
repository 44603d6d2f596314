"""The backward recursion shared by exact inference and dynamic programming.

:func:`backward` runs ``Q_t = backup(V_{t+1})`` and ``V_t = aggregate(Q_t)`` for ``t = T-1..0``
(finite horizon), or iterates the same pair to a fixed point (stationary problem). Callers pick
the successor mode of the backup over ``s'`` (:data:`~cai.ops.backup.LOG_EXPECTATION` or
:data:`~cai.ops.backup.EXPECTATION`) and the semiring over actions; nothing
else differs between backward messages, soft value iteration, hard value iteration and soft
policy evaluation.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional

import torch

from cai.mdp.checks import check_positive_int, check_tol
from cai.ops.backup import LOG_EXPECTATION, q_backup, successor_mode

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP
    from cai.ops.values_step import SoftValueStep

__all__ = ["ConvergenceWarning", "DivergenceError", "Recursion", "backward", "batch_shape_of", "check_keep", "KEEP",
           "span_bounds",
           "DIVERGENCE_TOL"]

#: A spectral-radius bound counts as ``>= 1`` when it exceeds ``1`` by more than this: ``~5e3``
#: float64 epsilons, above the rounding of one backup's log-ratio of values.
DIVERGENCE_TOL = 1e-12


#: What a backward solve stores (``keep=``): ``"all"`` every step's ``V``, ``Q`` and policy;
#: ``"values"`` every step's ``V`` (``Q`` and the policy recomputed from it on demand); ``"first"``
#: every ``V`` and step 0's ``Q`` and policy; ``"V0"`` only ``V_0`` (memory independent of ``T``;
#: the solution then has ``V0``, ``value`` and the evidence or ELBO, and no ``V``, ``Q`` or policy).
KEEP = ("all", "values", "first", "V0")


def check_keep(keep: str) -> str:
    """Validate a ``keep=`` argument (one of :data:`KEEP`).

    Args:
        keep: the value passed.

    Returns:
        ``keep``.

    Raises:
        ValueError: naming ``keep`` for anything else.
    """
    if not isinstance(keep, str) or keep not in KEEP:
        raise ValueError(f"keep: expected one of {', '.join(repr(k) for k in KEEP)}, got {keep!r}")
    return keep


class ConvergenceWarning(UserWarning):
    """A stationary iteration stopped at ``max_iter`` above its tolerance."""


class DivergenceError(ValueError):
    """The stationary exact-inference problem has no finite solution (spectral radius >= 1)."""


def batch_shape_of(mdp: TabularMDP, alpha: torch.Tensor) -> torch.Size:
    """The broadcast of the reward batch shape, the terminal-reward batch and alpha's shape."""
    try:
        return torch.broadcast_shapes(mdp.batch_shape, mdp.terminal_rewards.shape[:-1], alpha.shape)
    except RuntimeError as exc:
        raise ValueError(
            f"alpha: expected a shape that broadcasts against the reward batch shape "
            f"{tuple(mdp.batch_shape)}, got {tuple(alpha.shape)}"
        ) from exc


@dataclass(frozen=True)
class Recursion:
    """Raw output of :func:`backward` (lists are in time order)."""

    V: List[torch.Tensor]
    Q: List[Optional[torch.Tensor]]
    log_policy: List[Optional[torch.Tensor]]
    iterations: Optional[int] = None
    residual: Optional[float] = None
    error_bound: Optional[float] = None
    #: ``keep="V0"`` on a finite horizon: ``V`` holds ``V_0`` alone and ``Q``, ``log_policy`` are empty
    first_value_only: bool = False
    #: ``(V (*b, T+1, S), Q (*b, T, S, A), log pi (*b, T, S, A))`` when the steps were written into
    #: preallocated outputs (the lists then hold views of them; ``Q``, ``log pi`` ``None`` when only
    #: the values were kept; with ``keep="all"`` views of batch-last memory, see
    #: :meth:`cai.ops.values_step.SoftValueStep.outputs`), else ``None``
    stacked: Optional[tuple] = None


def span_bounds(diff: torch.Tensor, gamma: float) -> tuple:
    r"""MacQueen's bounds on the fixed point from one Bellman residual.

    For an operator ``B`` that is monotone and shifts by ``gamma c`` when its argument shifts by a
    constant ``c`` (the hard, soft and policy-evaluation backups with a discount ``gamma < 1``),
    ``diff = B(V) - V`` bounds the fixed point ``V*`` state by state::

        B(V) + gamma/(1-gamma) min_s diff  <=  V*  <=  B(V) + gamma/(1-gamma) max_s diff

    (``B(B(V)) - B(V) <= B(V + max diff) - B(V) = gamma max diff``, and so on geometrically). The
    midpoint ``B(V) + shift`` with ``shift = gamma/(1-gamma) (min diff + max diff) / 2`` is then
    within ``bound = gamma/(1-gamma) (max diff - min diff) / 2`` of ``V*`` in sup norm: half the
    span seminorm, which shrinks faster than the sup norm whenever the dynamics mix.

    Args:
        diff: ``(*b, S)`` the residual ``B(V) - V`` (finite).
        gamma: the discount, in ``(0, 1)``.

    Returns:
        ``(shift, bound)``: ``shift`` of shape ``(*b, 1)`` to add to ``B(V)``, and ``bound``
        (a float: the largest over the batch).

    References:
        MacQueen (1966), "A modified dynamic programming method for Markovian decision
        problems", J. Math. Anal. Appl. 14; Puterman (1994), "Markov Decision Processes", §6.6.3.
    """
    k = gamma / (1.0 - gamma)
    lo, hi = diff.amin(-1, keepdim=True), diff.amax(-1, keepdim=True)
    shift = (lo + hi) * (0.5 * k)
    bound = ((hi - lo) * (0.5 * k)).max().item() if diff.numel() else 0.0
    return shift, bound


Aggregate = Callable[[torch.Tensor, Optional[int]], tuple]


def backward(
    mdp: TabularMDP,
    alpha: torch.Tensor,
    mode: str,
    aggregate: Aggregate,
    keep: str = "all",
    tol: float = 1e-10,
    max_iter: int = 10_000,
    v_init: Optional[torch.Tensor] = None,
    batch_shape: tuple = (),
    step: Optional[SoftValueStep] = None,
) -> Recursion:
    """Run the backward recursion.

    Args:
        mdp: a :class:`~cai.TabularMDP`.
        alpha: temperature tensor broadcastable to the batch.
        mode: the successor mode, :data:`~cai.ops.backup.LOG_EXPECTATION` or
            :data:`~cai.ops.backup.EXPECTATION` (see :func:`cai.ops.backup.q_backup`).
        aggregate: ``aggregate(Q_t, t) -> (V_t, log_pi_t)``; ``log_pi_t`` may be ``None``.
        keep: ``"all"`` stores ``Q`` and the policy for every step; ``"values"`` stores only
            ``V`` (Q and the policy are recomputed lazily from V); ``"first"`` keeps step 0 only;
            ``"V0"`` keeps ``V_0`` alone (finite horizon: memory independent of ``T``; stationary
            problems have a single ``V`` and behave as ``"values"``).
        tol: stationary problems stop when the returned values are guaranteed to lie within
            ``tol * max(1, max |V|)`` of the fixed point in sup norm. With the expectation
            backup (value iteration, soft value iteration, policy evaluation) and a discount
            ``gamma < 1`` that guarantee is MacQueen's span bound (:func:`span_bounds`): the
            iteration stops when ``gamma/(1-gamma) span(V_new - V) / 2 <= tol * scale`` and
            returns the midpoint of the bounds (``V_new`` plus a constant per batch member; ``Q``
            gets the same constant, so ``V = aggregate(Q)`` still holds exactly). Exact
            inference (the log-expectation backup) stops when ``max |V_new - V| <= tol * scale``.
            Under autograd the expectation backup uses the sup-norm bound
            ``gamma/(1-gamma) max |V_new - V|`` instead, so that the derivatives converge too.
        max_iter: stationary iteration limit (then a :class:`ConvergenceWarning`).
        v_init: stationary starting point ``(*batch, S)`` (default 0).
        batch_shape: a further batch shape the aggregator brings (e.g. a batch of policies),
            broadcast with the rewards' and alpha's.
        step: optional fused values-only backup ``step(V_{t+1}, t, with_live) -> V_t`` (or
            ``(V_t, V_live)``, or ``None`` to decline), the same map as ``aggregate(backup(.))``
            (:class:`cai.ops.values_step.SoftValueStep`). It runs where no ``Q`` is stored: every step
            under ``keep="values"``, steps after the first under ``keep="first"``, and every
            stationary iteration but a final general one that yields ``Q`` and the policy. Where a
            step stores ``Q``, ``step.full(V_{t+1}, t) -> (V_t, Q_t, log_pi_t)`` (or ``None``) runs
            instead of the general backup when it answers (:meth:`SoftValueStep.full`); with
            ``keep="all"`` or ``"values"`` on a finite horizon, a step with ``step.outputs(b, T,
            keep) -> (V, Q, log_pi)`` (``Q``, ``log_pi`` ``None`` for ``"values"``) has every step
            written into those preallocated tensors (``out=`` of ``step`` and ``step.full``;
            :attr:`Recursion.stacked`).

    Returns:
        :class:`Recursion`.
    """
    max_iter = check_positive_int("max_iter", max_iter, "an integer >= 1")
    check_keep(keep)
    tol = check_tol("tol", tol)
    mode = successor_mode(mode)
    b = torch.broadcast_shapes(batch_shape_of(mdp, alpha), batch_shape)
    S = mdp.n_states
    if mdp.horizon is not None:
        T = mdp.horizon
        V: List[Optional[torch.Tensor]] = [None] * (T + 1)
        Qs: List[Optional[torch.Tensor]] = [None] * T
        pis: List[Optional[torch.Tensor]] = [None] * T
        if keep == "V0":
            v = mdp.terminal_rewards.expand(*b, S)
            for t in range(T - 1, -1, -1):
                v_t = step(v, t) if step is not None else None
                v = v_t if v_t is not None else aggregate(q_backup(mdp, t, v, alpha, mode), t)[0]
            return Recursion(V=[v], Q=[], log_policy=[], first_value_only=True)
        V[T] = mdp.terminal_rewards.expand(*b, S)
        # keep="all" (or "values") with the fused step: every step is written into preallocated
        # (*b, T, ...) outputs, which the solution uses as they are (no stacking pass at the end)
        outs = step.outputs(b, T, keep) if keep in ("all", "values") and hasattr(step, "outputs") else None
        if outs is not None:
            V[T] = outs[0].select(-2, T).copy_(V[T])
        for t in range(T - 1, -1, -1):
            store = keep == "all" or (keep == "first" and t == 0)
            vo = None if outs is None else outs[0].select(-2, t)
            v_t = None
            if step is not None and not store:
                v_t = step(V[t + 1], t) if vo is None else step(V[t + 1], t, out=vo)
            if v_t is not None:
                V[t] = v_t
                continue
            here = None if outs is None or not store else (vo, outs[1].select(-3, t), outs[2].select(-3, t))
            full = step.full(V[t + 1], t, out=here) if step is not None and store else None
            if full is not None:
                V[t], Qs[t], pis[t] = full
                continue
            Q = q_backup(mdp, t, V[t + 1], alpha, mode)
            V[t], log_pi = aggregate(Q, t)
            if vo is not None:
                for dst, src in zip(here or (vo,), (V[t], Q, log_pi)):
                    dst.copy_(src)
                V[t] = vo
                if here is not None:
                    Q, log_pi = here[1:]
            if store:
                Qs[t], pis[t] = Q, log_pi
        return Recursion(V=V, Q=Qs, log_policy=pis, stacked=outs)

    # stationary: iterate to a fixed point
    v = torch.zeros(*b, S, dtype=mdp.dtype, device=mdp.device) if v_init is None else v_init.expand(*b, S)
    check = mode == LOG_EXPECTATION
    span = not check and mdp.gamma < 1
    shift = None
    residual = bound = math.inf
    it = 0
    v_prev = Q = log_pi = None
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported after the loop
        fused = step(v, None, with_live=check) if step is not None else None
        if fused is not None:
            Q = log_pi = None
            v_new, v_live = fused if check else (fused, None)
        elif check:
            Q, Q_live = q_backup(mdp, None, v, alpha, mode, with_live=True)
            v_live, _ = aggregate(Q_live, None)
        else:
            Q = q_backup(mdp, None, v, alpha, mode)
        if check:
            # Collatz-Wielandt: rho(M) >= min_s (M z)_s / z_s with z = exp(V / alpha) > 0.
            log_ratio = ((v_live - v) / alpha.unsqueeze(-1)).amin(-1)
            if bool((log_ratio > DIVERGENCE_TOL).any()):
                lr = log_ratio.max().item()
                bound = f"{math.exp(lr):.6g}" if lr < 700 else f"exp({lr:.6g})"
                raise DivergenceError(
                    "backward_messages: the stationary exact-inference problem diverges: the "
                    "linear operator M[s, s'] = gamma * sum_a rho(a|s) exp(r(s,a)/alpha) P(s'|s,a) "
                    f"has spectral radius >= {bound} >= 1, so the "
                    "evidence is infinite. Lower the discount, lower the rewards (or raise alpha "
                    "with negative rewards), or use a normalised action prior with rewards <= 0."
                )
        if Q is not None:
            v_new, log_pi = aggregate(Q, None)
        diff = v_new.detach() - v.detach()
        residual = diff.abs().max().item() if diff.numel() else 0.0
        if math.isnan(residual):          # -inf - -inf: a state whose value is -inf
            residual = diff.nan_to_num(0.0).abs().max().item()
        shift, bound = None, residual
        if span:
            if v_new.requires_grad or not math.isfinite(residual):
                # under autograd the derivatives of V converge only in sup norm (a constant shift
                # would not carry them): the sup-norm bound gamma/(1-gamma) max|diff|
                bound = residual * mdp.gamma / (1.0 - mdp.gamma)
            else:
                shift, bound = span_bounds(diff, mdp.gamma)
        scale = max(1.0, v_new.detach().abs().max().item()) if v_new.numel() else 1.0
        v_prev, v = v, v_new
        if bound <= tol * scale:
            break
    else:
        warnings.warn(
            f"stationary iteration did not converge in max_iter={max_iter} iterations: "
            f"error bound {bound:.3g} > tol {tol:g} (relative); raise max_iter or tol",
            ConvergenceWarning, stacklevel=3,
        )
    if Q is None:
        # the last iteration was fused: one general backup from the same point yields Q and the
        # policy (and V again, up to rounding)
        Q = q_backup(mdp, None, v_prev, alpha, mode)
        v, log_pi = aggregate(Q, None)
    if shift is not None:
        # the midpoint of MacQueen's bounds; the same constant on Q keeps V = aggregate(Q) (every
        # aggregate commutes with adding a constant to Q) and leaves the policy unchanged
        v = v + shift
        Q = Q + shift.unsqueeze(-1)
    elif not span:
        bound = None
    # V = aggregate(Q) holds exactly; V is within error_bound of the fixed point (when not None)
    return Recursion(V=[v], Q=[Q], log_policy=[log_pi], iterations=it, residual=residual, error_bound=bound)
