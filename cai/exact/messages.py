r"""Exact inference in the control-as-inference graphical model.

Backward messages ``beta_t(s, a) = p(O_{t:T-1} | s_t, a_t)`` and ``beta_t(s) = p(O_{t:T-1} | s_t)``
are reported in reward units, ``Q = alpha log beta_t(s, a)`` and ``V = alpha log beta_t(s)``::

    V_T(s)    = r_T(s)
    Q_t(s,a)  = r_t(s,a) + alpha * log(gamma * sum_s' P(s'|s,a) exp(V_{t+1}(s')/alpha) + 1 - gamma)
    V_t(s)    = alpha * log sum_a rho(a|s) exp(Q_t(s,a)/alpha)
    pi_t(a|s) = rho(a|s) exp((Q_t(s,a) - V_t(s))/alpha)           = p(a_t | s_t, O_{t:T-1})
    log p(O)  = log sum_s p0(s) exp(V_0(s)/alpha)

Forward messages multiply in the posterior dynamics
``p(s'|s,a,O) = gamma P(s'|s,a) exp((V_{t+1}(s') - Q_t(s,a) + r_t(s,a))/alpha)`` (which is not
``P``: exact inference assumes the agent controls its luck, the optimism of docs/design.md §2.3).

References:
    Levine (2018), "Reinforcement Learning and Control as Probabilistic Inference: Tutorial and
    Review", §2.3 and §3; Ziebart (2010), PhD thesis, ch. 6.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Optional

import numpy as np
import torch

from cai.mdp.checks import check_initial, check_positive_int, check_tol
from cai.mdp.io import load_arrays, save_arrays
from cai.mdp.tabular import TabularMDP, check_model
from cai.methods import EXACT
from cai.ops.backup import LOG_EXPECTATION, action_log_weights, action_operator, exact_successor, q_backup, soft_max
from cai.ops.logspace import log_matmul_exp, logsumexp, transpose_csr
from cai.ops.recursion import DIVERGENCE_TOL, ConvergenceWarning, DivergenceError, Recursion, backward, check_keep
from cai.ops.values_step import SoftValueStep
from cai.solution import Solution
from cai.typing import Alpha, ArrayLike, PathLike

__all__ = [
    "backward_messages",
    "forward_messages",
    "posterior_dynamics",
    "ForwardMessages",
    "DivergenceError",
    "LINEAR_SOLVE_MAX_STATES",
]

#: Largest state count for the dense linear-solve route and the spectral-radius check: a dense
#: float64 ``(S, S)`` system is ``8 S^2`` bytes, 200 MB at 5000 states, and its solve ``O(S^3)``.
LINEAR_SOLVE_MAX_STATES = 5000


def backward_messages(mdp: TabularMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *, method: str = "iterate", keep: str = "all",
                      tol: float = 1e-10, max_iter: int = 10_000) -> Solution:
    """Exact backward messages: soft Q, V, the posterior policy and the log evidence.

    Args:
        mdp: :class:`~cai.TabularMDP`.
        alpha: temperature > 0, scalar or batch (broadcast against the reward batch).
        action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        method: stationary problems only: ``"iterate"`` (backups to a fixed point, with a
            divergence check) or ``"linear"`` (a direct solve of ``z = M z + b`` in
            ``z = exp(V / alpha)``, docs/design.md §2.5; dense, ``S <= 5000``).
        keep: ``"all"``, ``"values"``, ``"first"`` or ``"V0"`` (only ``V_0`` and the log evidence, in
            memory independent of the horizon; see :func:`cai.soft_value_iteration`).
        tol, max_iter: stationary iteration control.

    Returns:
        :class:`~cai.Solution` with ``.Q (*b,T,S,A)``, ``.V (*b,T+1,S)``, ``.policy (*b,T,S,A)``
        and ``.log_evidence (*b,)`` (stationary: no time axis).

    Raises:
        DivergenceError: (a ``ValueError``) if the stationary problem has no finite solution.
        ValueError: for invalid arguments.
    """
    a, log_prior = check_model(mdp, alpha, action_prior, "backward_messages")
    check_keep(keep)
    if method not in ("iterate", "linear"):
        raise ValueError(f"method: expected 'iterate' or 'linear', got {method!r}")
    if method == "linear" and mdp.horizon is not None:
        raise ValueError(f"method: 'linear' solves the stationary problem (horizon=None), got horizon={mdp.horizon}")
    agg = lambda Q, t: soft_max(Q, a, log_prior)  # noqa: E731
    if mdp.horizon is not None or method == "iterate":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            rec = backward(mdp, a, LOG_EXPECTATION, agg, keep=keep, tol=tol, max_iter=max_iter,
                           step=SoftValueStep.for_solver(mdp, a, LOG_EXPECTATION, log_prior))
        if mdp.horizon is None and any(issubclass(w.category, ConvergenceWarning) for w in caught) and mdp.n_states <= LINEAR_SOLVE_MAX_STATES:
            _spectral_check(*_linear_system(mdp, a, log_prior))
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=2)
    else:
        rec = _linear_route(mdp, a, log_prior, agg)
    sol = Solution(rec, mdp, a, LOG_EXPECTATION, agg, EXACT, log_prior)
    return sol.with_log_evidence(logsumexp(torch.log(mdp.initial) + sol.V0 / a.unsqueeze(-1), -1))


# ---------------------------------------------------------------------------------------------
# the stationary problem as a linear system in z = exp(V / alpha)

def _linear_system(mdp, a: torch.Tensor, log_prior):
    """``M (*b, S, S)`` and ``b (*b, S)`` of ``z = M z + b`` (dense)."""
    S = mdp.n_states
    if S > LINEAR_SOLVE_MAX_STATES:
        raise ValueError(
            f"method: 'linear' builds a dense {S}x{S} system; it supports S <= "
            f"{LINEAR_SOLVE_MAX_STATES}, got S={S}; use method='iterate'"
        )
    P = mdp.dense_transitions()
    g = mdp.gamma
    a3 = a.unsqueeze(-1).unsqueeze(-1)
    if mdp.reward_layout == "sas":
        w = torch.exp(action_log_weights(mdp.rewards, a3.unsqueeze(-1), log_prior, per_successor=True))  # (*b, S, A, S)
        M = g * action_operator(w, P, per_successor=True)
        bvec = (1 - g) * (w * P).sum((-1, -2))
    else:
        w = torch.exp(action_log_weights(mdp.rewards, a3, log_prior))          # (*b, S, A)
        M = g * action_operator(w, P)
        bvec = (1 - g) * w.sum(-1)
    if not (bool(torch.isfinite(M).all()) and bool(torch.isfinite(bvec).all())):
        raise ValueError(
            "method: 'linear' overflows: exp(r/alpha) is not representable in "
            f"{mdp.dtype}; use method='iterate' (log space)"
        )
    return M, bvec


def _spectral_check(M: torch.Tensor, bvec: torch.Tensor) -> None:
    rho = torch.linalg.eigvals(M).abs().amax(-1)
    if bool((rho >= 1 - DIVERGENCE_TOL).any()):
        raise DivergenceError(
            "backward_messages: the stationary exact-inference problem diverges: the linear "
            "operator M[s, s'] = gamma * sum_a rho(a|s) exp(r(s,a)/alpha) P(s'|s,a) has spectral "
            f"radius {rho.max().item():.6g} >= 1, so the evidence is infinite. Lower the discount, "
            "lower the rewards (or raise alpha with negative rewards), or use a normalised action prior with rewards <= 0."
        )


def _linear_route(mdp, a, log_prior, agg) -> Recursion:
    M, bvec = _linear_system(mdp, a, log_prior)
    _spectral_check(M, bvec)
    eye = torch.eye(mdp.n_states, dtype=M.dtype, device=M.device)
    z = torch.linalg.solve(eye - M, bvec.unsqueeze(-1)).squeeze(-1)
    if not bool((z > 0).all()):
        raise ValueError("method: the linear solve returned a non-positive z; the system is ill-conditioned, use 'iterate'")
    V = a.unsqueeze(-1) * torch.log(z)
    Q = q_backup(mdp, None, V, a, LOG_EXPECTATION)
    V_new, log_pi = agg(Q, None)
    residual = (V_new - V).abs().max().item()
    return Recursion(V=[V_new], Q=[Q], log_policy=[log_pi], iterations=0, residual=residual)


# ---------------------------------------------------------------------------------------------
# forward messages

class ForwardMessages(NamedTuple):
    """Posterior marginals given optimality, ``p(. | O_{0:T-1})``.

    Attributes:
        log_state: ``(*b, T+1, S)`` ``log p(s_t | O)``. With a discount < 1 these are the
            marginals of being alive in ``s_t``; they sum to the posterior survival probability.
        log_state_action: ``(*b, T, S, A)`` ``log p(s_t, a_t | O)``.

    Stationary problems report discounted occupancies instead (no time axis):
    ``log_state (*b, S)`` ``log sum_t p(s_t = s, alive | O)`` and ``log_state_action (*b, S, A)``.
    """

    log_state: torch.Tensor
    log_state_action: torch.Tensor
    stationary: bool = False

    @property
    def state(self) -> torch.Tensor:
        """``p(s_t | O)``, ``(*b, T+1, S)``."""
        return torch.exp(self.log_state)

    @property
    def state_action(self) -> torch.Tensor:
        """``p(s_t, a_t | O)``, ``(*b, T, S, A)``."""
        return torch.exp(self.log_state_action)

    @property
    def visitation(self) -> torch.Tensor:
        """Expected state-action visitation counts ``sum_t p(s_t, a_t | O)``, ``(*b, S, A)``."""
        sa = self.state_action
        return sa if self.stationary else sa.sum(-3)

    @property
    def state_visitation(self) -> torch.Tensor:
        """Expected state visitation counts ``sum_{t<T} p(s_t | O)``, ``(*b, S)``."""
        return self.visitation.sum(-1)

    def save(self, path: PathLike) -> str:
        """Write the marginals to an ``.npz`` file: ``log_state``, ``log_state_action`` and
        ``stationary``; ``".npz"`` is appended when missing. Returns the path written."""
        return save_arrays(path, {"log_state": self.log_state.detach().cpu().numpy(),
                                  "log_state_action": self.log_state_action.detach().cpu().numpy(),
                                  "stationary": np.array(bool(self.stationary))})

    @classmethod
    def load(cls, path: PathLike) -> ForwardMessages:
        """Read marginals written by :meth:`save` (bit for bit)."""
        f = load_arrays(path, "ForwardMessages.load")
        if not {"log_state", "log_state_action", "stationary"} <= set(f):
            raise ValueError(f"ForwardMessages.load: path: expected a file written by ForwardMessages.save, "
                             f"got keys {sorted(f)}")
        return cls(torch.as_tensor(f["log_state"]), torch.as_tensor(f["log_state_action"]), bool(f["stationary"]))


def log_normaliser(sol: Solution, t, v_next: torch.Tensor) -> torch.Tensor:
    r"""``D_t(s,a)``, the log normaliser of the posterior dynamics, in nats: ``(*b, S, A)``.

    ``p(s'|s,a,O) = gamma P(s'|s,a) exp(V_{t+1}(s')/alpha [+ r(s,a,s')/alpha] - D_t(s,a))`` with
    ``D = (Q_t - r_t)/alpha``, computed from ``V_{t+1}`` directly (no cancellation against large
    rewards); with ``r(s,a,s')`` rewards ``D = Q_t/alpha``. 0 at forbidden actions.
    """
    mdp = sol.mdp
    if mdp.reward_layout == "sas":
        Q = sol.q_at(t) if t is not None else sol.Q
        return torch.where(torch.isneginf(Q), torch.zeros_like(Q), Q) / sol.alpha.unsqueeze(-1).unsqueeze(-1)
    return exact_successor(mdp, v_next, sol.alpha)[0]


def _log_next(sol: Solution, t, log_joint: torch.Tensor, PT, v_next: torch.Tensor) -> torch.Tensor:
    """``log p(s_{t+1} | O)`` from ``log p(s_t, a_t | O)`` through the posterior dynamics."""
    mdp = sol.mdp
    a = sol.alpha.unsqueeze(-1)
    D = log_normaliser(sol, t, v_next)
    lg = math.log(mdp.gamma)
    if mdp.reward_layout == "sas":
        a4 = a.unsqueeze(-1).unsqueeze(-1)
        terms = (log_joint - D).unsqueeze(-1) + torch.log(mdp.transitions) \
            + (mdp.reward_at(t) + v_next.unsqueeze(-2).unsqueeze(-2)) / a4
        return logsumexp(logsumexp(terms, -3), -2) + lg
    S = mdp.n_states
    lw = log_joint - D                                              # (*b, S, A)
    b = lw.shape[:-2]
    cols = lw.reshape(-1, S * mdp.n_actions).t()
    out = log_matmul_exp(PT, cols, lambda: mdp.min_positive_probability).t().reshape(*b, S)
    return out + lg + v_next / a


def forward_messages(mdp: TabularMDP, messages: Solution, *, initial: Optional[ArrayLike] = None, tol: float = 1e-10,
                     max_iter: int = 10_000) -> ForwardMessages:
    """Posterior state and state-action marginals from exact backward messages.

    ::

        p(s_0 | O)          = p0(s) exp(V_0(s)/alpha) / p(O)
        p(s_t, a_t | O)     = p(s_t | O) pi_t(a_t | s_t)
        p(s_{t+1} | O)      = sum_{s,a} p(s_t, a_t | O) p(s_{t+1} | s_t, a_t, O)

    Args:
        mdp: the MDP the messages were computed for.
        messages: the result of :func:`backward_messages` on ``mdp``.
        initial: optional ``(S,)`` distribution of ``s_0`` to condition on instead of the
            posterior ``p(s_0 | O)`` (e.g. Ziebart et al. 2008 start from the demonstrations'
            start states): then the marginals are ``p(s_t, a_t | s_0 ~ initial, O)``.
        tol, max_iter: stationary problems sum the discounted occupancy to this tolerance.

    Returns:
        :class:`ForwardMessages`; ``.visitation`` gives expected visitation counts.
    """
    if not isinstance(messages, Solution) or messages.method != EXACT:
        raise TypeError(
            f"forward_messages: messages: expected the result of cai.backward_messages, got "
            f"{type(messages).__name__}{'' if not isinstance(messages, Solution) else ' of ' + messages.method}"
        )
    if messages.mdp is not mdp:
        raise ValueError("forward_messages: messages: were computed for a different MDP object")
    mdp.check_unchanged("forward_messages")
    tol = check_tol("tol", tol)
    max_iter = check_positive_int("max_iter", max_iter, "an integer >= 1")
    a = messages.alpha
    PT = transpose_csr(mdp.transition_matrix) if mdp.reward_layout != "sas" else None
    if initial is None:
        log_mu = torch.log(mdp.initial) + messages.V0 / a.unsqueeze(-1)
        log_mu = log_mu - logsumexp(log_mu, -1).unsqueeze(-1)
    else:

        log_mu = torch.log(check_initial(mdp, initial)).expand_as(messages.V0)
    if mdp.horizon is not None:
        states, joints = [log_mu], []
        for t in range(mdp.horizon):
            lj = log_mu.unsqueeze(-1) + messages.log_policy_at(t)
            joints.append(lj)
            log_mu = _log_next(messages, t, lj, PT, messages.V[..., t + 1, :])
            states.append(log_mu)
        return ForwardMessages(torch.stack(states, -2), torch.stack(joints, -3))

    # stationary: discounted occupancy d = mu_0 + K^T d, summed term by term in log space
    log_pi = messages.log_policy
    log_d = log_mu
    log_term = log_mu
    for _ in range(max_iter):
        log_term = _log_next(messages, None, log_term.unsqueeze(-1) + log_pi, PT, messages.V)
        log_d = torch.logaddexp(log_d, log_term)
        if (torch.exp(log_term - log_d).max().item()) <= tol:
            break
    else:
        warnings.warn(f"forward_messages: occupancy did not converge in {max_iter} steps", ConvergenceWarning,
                      stacklevel=2)
    return ForwardMessages(log_d, log_d.unsqueeze(-1) + log_pi, True)


def posterior_dynamics(mdp: TabularMDP, messages: Solution, t: Optional[int] = None) -> torch.Tensor:
    r"""The dynamics of the exact posterior, ``p(s_{t+1} = s' | s_t = s, a_t = a, O)``.

    ::

        p(s'|s,a,O) = gamma P(s'|s,a) exp((V_{t+1}(s') - Q_t(s,a) + r_t(s,a)) / alpha)

    (with ``r(s,a,s')`` rewards, ``exp((r(s,a,s') + V_{t+1}(s') - Q_t(s,a)) / alpha)``). Rows
    sum to the posterior survival probability (1 without a discount). These differ from ``P``
    whenever the dynamics are stochastic: the optimism of exact inference. Rows of forbidden
    actions, which the posterior never takes, are set to ``gamma * P``.

    Args:
        t: one step (``(*b, S, A, S)``); ``None`` for every step (``(*b, T, S, A, S)``, dense:
            mind the memory) or the stationary problem (``(*b, S, A, S)``).
    """
    if not isinstance(messages, Solution) or messages.method != EXACT:
        raise TypeError("posterior_dynamics: messages: expected the result of cai.backward_messages")
    if messages.mdp is not mdp:
        raise ValueError("posterior_dynamics: messages: were computed for a different MDP object")
    mdp.check_unchanged("posterior_dynamics")
    if mdp.horizon is not None and t is None:
        return torch.stack([posterior_dynamics(mdp, messages, s) for s in range(mdp.horizon)], -4)
    a = messages.alpha.unsqueeze(-1).unsqueeze(-1).unsqueeze(-1)
    P = mdp.dense_transitions()
    Q = messages.q_at(t)
    v_next = messages.V[..., t + 1, :] if mdp.horizon is not None else messages.V
    D = log_normaliser(messages, t, v_next).unsqueeze(-1)
    extra = mdp.reward_at(t) if mdp.reward_layout == "sas" else 0.0
    logK = math.log(mdp.gamma) + torch.log(P) + (extra + v_next.unsqueeze(-2).unsqueeze(-2)) / a - D
    K = torch.exp(logK)
    forbidden = torch.isneginf(Q).unsqueeze(-1)
    return torch.where(forbidden, mdp.gamma * P, K)
