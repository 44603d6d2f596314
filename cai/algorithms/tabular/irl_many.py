r"""Many demonstration sets on one MDP in one call: batched MaxEnt IRL.

:func:`fit_many` runs the optimisation of :meth:`MaxEntIRL.fit` for ``B`` demonstration sets at
once. The rewards of all sets are stacked into one ``(B, S, A)`` batch, so each iteration is
*one* call of :func:`cai.soft_value_iteration` (or :func:`cai.backward_messages`) on a
``TabularMDP(..., reward_layout="sa")`` with a leading batch dimension, and (for the causal
variant on a finite horizon) one batched :func:`~cai.dp.visitation.policy_marginals`.

Each set keeps its own optimiser state and its own stopping rule: Adam and SGD act entry by
entry, and a set whose gradient falls below ``tol`` is frozen at that iteration, so the result
equals a loop of single :meth:`MaxEntIRL.fit` calls (the tests check 1e-8).

:func:`log_likelihood_many` is the batched likelihood (``B`` weight vectors, ``B`` sets), the
form :class:`~cai.algorithms.tabular.bayes_irl.BayesianIRL` uses for many datasets.
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence

import torch
from tqdm.auto import tqdm

from cai.algorithms.tabular.irl import (
    CAUSAL,
    Demonstrations,
    IRLStep,
    MaxEntIRL,
    empirical_visitation,
    validate_demonstrations,
)
from cai.dp.visitation import policy_marginals, policy_visitation
from cai.mdp.checks import as_tensor
from cai.typing import ArrayLike

__all__ = ["ManyIRLFit", "fit_many", "log_likelihood_many"]


class ManyIRLFit(NamedTuple):
    """The result of :func:`fit_many` (the attributes of ``B`` single fits, stacked).

    Attributes:
        weights: ``(B, F)`` learned weights.
        reward: ``(B, S, A)`` learned rewards ``phi @ weights``.
        policy: the demonstrator model's policy, ``(B, T, S, A)`` or ``(B, S, A)``.
        visitation: ``(B, S, A)`` expected visitation under the learned rewards.
        empirical_visitation: ``(B, S, A)`` each set's empirical visitation.
        n_iter: ``(B,)`` long; the iteration each set stopped at (as ``MaxEntIRL.n_iter_``).
        history: ``B`` lists of :class:`~cai.algorithms.tabular.irl.IRLStep`.
    """

    weights: torch.Tensor
    reward: torch.Tensor
    policy: torch.Tensor
    visitation: torch.Tensor
    empirical_visitation: torch.Tensor
    n_iter: torch.Tensor
    history: List[List[IRLStep]]


class _Row(NamedTuple):
    """The parts of one row of a batched solution that the single-set code reads."""

    policy: torch.Tensor
    log_policy: torch.Tensor
    V0: torch.Tensor


def _check_learner(irl) -> None:
    if not isinstance(irl, MaxEntIRL):
        raise TypeError(f"irl: expected a cai MaxEntIRL, got {type(irl).__name__}")
    if irl.reward_model is not None:
        raise ValueError("irl: expected a linear reward (reward_model=None) for batched fits, got a reward module")


def _validate_sets(irl: MaxEntIRL, demonstration_sets) -> List[Demonstrations]:
    if isinstance(demonstration_sets, (str, bytes)) or not isinstance(demonstration_sets, Sequence):
        raise TypeError(f"demonstration_sets: expected a list of demonstration sets, got "
                        f"{type(demonstration_sets).__name__}")
    if len(demonstration_sets) == 0:
        raise ValueError("demonstration_sets: expected at least one demonstration set, got none")
    out = []
    for b, d in enumerate(demonstration_sets):
        try:
            out.append(d if isinstance(d, Demonstrations) else validate_demonstrations(d, irl.mdp))
        except (ValueError, TypeError) as e:
            raise type(e)(f"demonstration_sets[{b}]: {e}") from e
    return out


def _rows(sol) -> _Row:
    """The batched solution's policy, log-policy and ``V_0``, each computed once."""
    return _Row(sol.policy, sol.log_policy, sol.V0)


def _row(rows: _Row, b: int) -> _Row:
    return _Row(rows.policy[b], rows.log_policy[b], rows.V0[b])


def _expected_visitation(irl: MaxEntIRL, mdp_r, sol, q0: torch.Tensor, same_start: bool) -> torch.Tensor:
    """``(B, S, A)`` expected visitation of every row of a batched solution."""
    B = q0.shape[0]
    if irl.variant == CAUSAL and irl.mdp.horizon is not None and same_start:
        return policy_marginals(irl.mdp, sol.policy, q0[0]).visitation       # one batched pass
    rows = []
    for b in range(B):
        if irl.variant == CAUSAL:
            if irl.mdp.horizon is None:
                rows.append(policy_visitation(irl.mdp, sol.policy[b], q0[b]))
            else:
                rows.append(policy_marginals(irl.mdp, sol.policy[b], q0[b]).visitation)
        else:                                      # the exact variant's forward pass, row by row
            mdp_b, sol_b = irl.solve(mdp_r.rewards[b])
            rows.append(irl.expected_visitation(mdp_b, sol_b, q0[b]))
    return torch.stack(rows)


def fit_many(irl: MaxEntIRL, demonstration_sets: Sequence, *, progress: bool = False) -> ManyIRLFit:
    r"""Fit ``irl``'s linear reward to each of ``B`` demonstration sets, all in one batched solve.

    Equivalent to ``[copy(irl).fit(d) for d in demonstration_sets]`` (same hyperparameters,
    same initial weights, same optimiser, same stopping rule per set), but each iteration solves
    the ``B`` demonstrator models in one call of the core's batched soft value iteration (or
    backward messages). ``irl`` itself is not modified.

    Args:
        irl: a configured :class:`~cai.algorithms.tabular.irl.MaxEntIRL` with a linear reward.
        demonstration_sets: a non-empty list of ``B`` demonstration sets, each anything
            :func:`~cai.algorithms.tabular.irl.validate_demonstrations` accepts. Sets may have
            different sizes and (on a stationary MDP) lengths.
        progress: show a tqdm progress bar.

    Returns:
        :class:`ManyIRLFit` (weights ``(B, F)``, rewards ``(B, S, A)``, ...).

    Raises:
        TypeError: ``irl`` not a ``MaxEntIRL``, or ``demonstration_sets`` not a list.
        ValueError: a reward module, no sets, or a bad set (the message names its index).
    """
    _check_learner(irl)
    sets = _validate_sets(irl, demonstration_sets)
    mdp, alpha, phi = irl.mdp, irl._alpha, irl._phi
    B, F = len(sets), irl.n_features
    d_emp = torch.stack([empirical_visitation(d, mdp) for d in sets])            # (B, S, A)
    q0 = torch.stack([irl._initial(d) for d in sets])                            # (B, S)
    same_start = irl.initial == "mdp"
    S, A = mdp.n_states, mdp.n_actions
    phi_flat = phi.reshape(S * A, F).contiguous()                                # (S*A, F)
    mu_emp = d_emp.reshape(B, S * A) @ phi_flat
    w = torch.zeros(B, F, dtype=mdp.dtype, device=mdp.device) if irl.init_weights is None else \
        as_tensor("init_weights", irl.init_weights, mdp.dtype, mdp.device).expand(B, F).clone()
    opt = (torch.optim.Adam if irl.optimizer == "adam" else torch.optim.SGD)([w], lr=irl.lr)
    done = torch.zeros(B, dtype=torch.bool, device=mdp.device)
    n_iter = torch.zeros(B, dtype=torch.long)
    history: List[List[IRLStep]] = [[] for _ in range(B)]
    final_w, final_r, final_pi, final_d = w.clone(), None, None, None
    bar = tqdm(range(irl.n_iter + 1), disable=not progress, desc=f"MaxEntIRL x{B} ({irl.variant})")
    for it in bar:
        with torch.no_grad():
            r = (w @ phi_flat.t()).reshape(B, S, A)
            mdp_r, sol = irl.solve(r)
            sol = _rows(sol)
            d = _expected_visitation(irl, mdp_r, sol, q0, same_start)
            g = (mu_emp - d.reshape(B, S * A) @ phi_flat) / alpha - irl.l2 * w
            gap = g.abs().max(-1).values
        if final_r is None:
            final_r, final_pi, final_d = r.clone(), sol.policy.clone(), d.clone()
        stop = ~done & ((gap <= irl.tol) | (it == irl.n_iter))
        for b in (~done).nonzero().flatten().tolist():
            ll = float(irl._log_likelihood(sets[b], r[b], _row(sol, b)))
            history[b].append(IRLStep(it, ll, float(gap[b])))
        idx = stop.nonzero().flatten()
        if idx.numel():
            final_w[idx], final_r[idx], final_pi[idx], final_d[idx] = w[idx], r[idx], sol.policy[idx], d[idx]
            n_iter[idx.cpu()] = it
            done |= stop
        bar.set_postfix(active=int((~done).sum()))
        if bool(done.all()):
            break
        keep = w.detach()[done].clone()
        w.grad = -g
        opt.step()
        with torch.no_grad():
            w[done] = keep                                    # a converged set stays where it stopped
    bar.close()
    return ManyIRLFit(final_w.detach(), final_r, final_pi, final_d, d_emp, n_iter, history)


def log_likelihood_many(irl: MaxEntIRL, demonstration_sets: Sequence, weights: ArrayLike) -> torch.Tensor:
    r"""Each set's mean log-likelihood under its own weights, in one batched solve.

    ``out[b] = irl.log_likelihood(demonstration_sets[b], weights=weights[b])``.

    Args:
        irl: a configured :class:`~cai.algorithms.tabular.irl.MaxEntIRL` (linear reward).
        demonstration_sets: ``B`` demonstration sets (see :func:`fit_many`).
        weights: ``(B, F)`` weights; differentiable.

    Returns:
        ``(B,)`` tensor, differentiable in ``weights``.

    Raises:
        ValueError: ``weights`` of the wrong shape, or a bad set.
    """
    _check_learner(irl)
    sets = _validate_sets(irl, demonstration_sets)
    w = as_tensor("weights", weights, irl.mdp.dtype, irl.mdp.device)
    if tuple(w.shape) != (len(sets), irl.n_features):
        raise ValueError(f"weights: expected shape (B, F) = ({len(sets)}, {irl.n_features}), got {tuple(w.shape)}")
    r = torch.einsum("saf,bf->bsa", irl._phi, w)
    _, sol = irl.solve(r)
    sol = _rows(sol)
    return torch.stack([irl._log_likelihood(sets[b], r[b], _row(sol, b)) for b in range(len(sets))])
