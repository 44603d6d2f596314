r"""Linearly solvable MDPs (Todorov 2007, 2009).

An LMDP has passive (uncontrolled) dynamics ``p(s'|s)`` and a state cost ``q(s)``. The agent
chooses the next-state distribution ``u(.|s)`` directly and pays ``q(s) + KL(u(.|s) || p(.|s))``
per step. In the desirability ``z(s) = exp(-v(s))`` the Bellman equation is linear::

    first exit (terminal set T, final cost q(s) on T):   z_N = G_N P_NN z_N + G_N P_NT z_T
    average cost c:                                      exp(-c) z = G P z      (principal eigenvector)
    finite horizon:                                      z_t = G P z_{t+1}
    optimal controlled dynamics:                         u*(s'|s) = p(s'|s) z(s') / sum_s'' p(s''|s) z(s'')

with ``G = diag(exp(-q))``. This is soft value iteration in disguise: the :class:`~cai.TabularMDP`
whose action ``k`` in state ``s`` moves deterministically to the ``k``-th successor of ``s``, with
reward ``-alpha q(s)`` and *action prior* ``rho(k|s) = p(succ_k(s)|s)``, has soft values
``V = -alpha v`` and a soft-optimal policy that induces ``u*`` (:meth:`LMDP.to_mdp`). Conversely
(:meth:`LMDP.from_mdp`), soft value iteration on any MDP with deterministic dynamics is an LMDP:
``z = exp(V / alpha)`` satisfies ``z(s) = exp(-q(s)) sum_s' p(s'|s) z(s')`` with
``p(s'|s) ∝ sum_{a -> s'} rho(a|s) exp(r(s,a)/alpha)`` and ``q(s) = -log sum_a rho(a|s) exp(r(s,a)/alpha)``.

References:
    Todorov (2007), "Linearly-solvable Markov decision problems", NIPS.
    Todorov (2009), "Efficient computation of optimal actions", PNAS 106(28).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from cai.mdp.checks import as_tensor, check_action_prior, check_alpha, check_positive_int
from cai.mdp.io import load_arrays, save_arrays
from cai.mdp.tabular import ROW_SUM_TOL, TabularMDP
from cai.ops.logspace import log_matmul_exp, logsumexp
from cai.typing import ArrayLike, PathLike

__all__ = ["LMDP", "LMDPSolution", "controlled_from_policy"]

#: Largest state count for the dense linear solve / eigen-decomposition.
DENSE_MAX_STATES = 5000


class LMDPSolution(NamedTuple):
    """The solution of an LMDP.

    Attributes:
        z: desirability ``exp(-v)``; ``(S,)`` (first exit, average cost) or ``(T+1, S)``
            (finite horizon). Average cost: normalised so that ``max z = 1``.
        v: optimal cost-to-go ``-log z`` (average cost: the differential cost, ``min v = 0``).
        controlled: ``u*(s'|s)``, ``(S, S)`` or ``(T, S, S)``; terminal states keep their
            passive rows.
        average_cost: the optimal average cost per step ``c`` (average-cost problem), else ``None``.
        kind: ``"first_exit"``, ``"average_cost"`` or ``"finite_horizon"``.
        residual: ``max |z - (Bellman operator) z|`` relative to ``max z`` (a check of the solve).
    """

    z: torch.Tensor
    v: torch.Tensor
    controlled: torch.Tensor
    average_cost: Optional[float]
    kind: str
    residual: float


def controlled_from_policy(mdp: TabularMDP, policy: ArrayLike) -> torch.Tensor:
    """The next-state distribution a policy induces, ``u(s'|s) = sum_a pi(a|s) P(s'|s,a)``.

    Args:
        mdp: :class:`~cai.TabularMDP`.
        policy: ``(..., S, A)``.

    Returns:
        ``(..., S, S)``.
    """
    pi = as_tensor("policy", policy, mdp.dtype, mdp.device)
    return torch.einsum("...sa,sat->...st", pi, mdp.dense_transitions())


class LMDP:
    r"""A linearly solvable MDP: passive dynamics, state cost and optional terminal states.

    Args:
        passive: ``p(s'|s)``, ``(S, S)``, non-negative; rows of non-terminal states sum to 1
            (rows of terminal states are ignored).
        state_cost: ``q(s)``, ``(S,)`` finite; for terminal states, the final cost paid on arrival.
        terminal: ``None`` (no terminal states), an ``(S,)`` boolean mask, or a sequence of
            state indices.
        state_names: optional ``S`` labels.

    Raises:
        ValueError: naming the argument, for wrong shapes, negative or unnormalised passive rows,
            non-finite costs, or bad terminal indices.
    """

    def __init__(self, passive: ArrayLike, state_cost: ArrayLike, terminal: Optional[ArrayLike] = None, *,
                 state_names: Optional[Sequence[str]] = None) -> None:
        P = as_tensor("passive", passive)
        if P.dim() != 2 or P.shape[0] != P.shape[1] or P.shape[0] == 0:
            raise ValueError(f"passive: expected a square (S, S) matrix, got shape {tuple(P.shape)}")
        S = P.shape[0]
        q = as_tensor("state_cost", state_cost)
        if tuple(q.shape) != (S,):
            raise ValueError(f"state_cost: expected shape (S,) = ({S},), got {tuple(q.shape)}")
        if not bool(torch.isfinite(q).all()):
            raise ValueError("state_cost: expected finite costs, got an infinite or NaN entry")
        mask = torch.zeros(S, dtype=torch.bool)
        if terminal is not None:
            t = torch.as_tensor(terminal)
            if t.dtype == torch.bool:
                if tuple(t.shape) != (S,):
                    raise ValueError(f"terminal: expected a boolean mask of shape ({S},), got {tuple(t.shape)}")
                mask = t.clone()
            else:
                t = t.reshape(-1)
                if t.is_floating_point() or bool((t < 0).any()) or bool((t >= S).any()):
                    raise ValueError(f"terminal: expected state indices in [0, {S - 1}], got {t.tolist()}")
                mask[t.long()] = True
        if bool(mask.all()):
            raise ValueError("terminal: expected at least one non-terminal state, got all states terminal")
        if bool(torch.isnan(P).any()) or bool((P < 0).any()):
            raise ValueError("passive: expected non-negative probabilities, got a negative or NaN entry")
        sums = P.sum(-1)
        bad = (~mask) & ((sums - 1).abs() > ROW_SUM_TOL)
        if bool(bad.any()):
            s = int(bad.nonzero()[0])
            raise ValueError(f"passive: expected the row of every non-terminal state to sum to 1 "
                             f"(tolerance {ROW_SUM_TOL:g}), got {sums[s].item():.10g} at state {s}")
        if state_names is not None and len(state_names) != S:
            raise ValueError(f"state_names: expected {S} names, got {len(state_names)}")
        self.passive, self.state_cost, self.terminal = P, q, mask
        self.state_names = tuple(str(x) for x in state_names) if state_names is not None else None

    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return int(self.passive.shape[0])

    def save(self, path: PathLike) -> str:
        """Write the LMDP to an ``.npz`` file: ``passive (S, S)``, ``state_cost (S,)``,
        ``terminal (S,)`` (bool) and, when set, ``state_names``. ``".npz"`` is appended when
        missing; returns the path written. :meth:`load` restores it bit for bit."""
        d = {k: getattr(self, k).detach().cpu().numpy() for k in ("passive", "state_cost", "terminal")}
        if self.state_names is not None:
            d["state_names"] = np.array(self.state_names, dtype=str)
        return save_arrays(path, d)

    @classmethod
    def load(cls, path: PathLike) -> LMDP:
        """Read an LMDP written by :meth:`save`."""
        f = load_arrays(path, "LMDP.load")
        if not {"passive", "state_cost", "terminal"} <= set(f):
            raise ValueError(f"LMDP.load: path: expected a file written by LMDP.save, got keys {sorted(f)}")
        names = [str(x) for x in f["state_names"]] if "state_names" in f else None
        return cls(torch.as_tensor(f["passive"]), torch.as_tensor(f["state_cost"]),
                   torch.as_tensor(f["terminal"]), state_names=names)

    def __repr__(self) -> str:
        return f"LMDP(S={self.n_states}, terminal={int(self.terminal.sum())})"

    # -----------------------------------------------------------------------------------------
    def controlled_dynamics(self, z: torch.Tensor) -> torch.Tensor:
        """``u(s'|s) = p(s'|s) z(s') / sum_s'' p(s''|s) z(s'')``, ``(S, S)``; terminal rows passive."""
        w = self.passive * z.unsqueeze(-2)
        u = w / w.sum(-1, keepdim=True)
        return torch.where(self.terminal.unsqueeze(-1), self.passive, u)

    def _log_controlled(self, log_z: torch.Tensor) -> torch.Tensor:
        lw = torch.log(self.passive) + log_z.unsqueeze(-2)
        return torch.exp(lw - logsumexp(lw, -1).unsqueeze(-1))

    def _final_cost(self, final_cost) -> torch.Tensor:
        S = self.n_states
        if final_cost is None:
            return torch.zeros(S, dtype=self.passive.dtype)
        fc = as_tensor("final_cost", final_cost)
        if tuple(fc.shape) != (S,):
            raise ValueError(f"final_cost: expected shape ({S},), got {tuple(fc.shape)}")
        if not bool(torch.isfinite(fc).all()):
            raise ValueError("final_cost: expected finite costs, got an infinite or NaN entry")
        return fc

    def _check_dense(self, what):
        if self.n_states > DENSE_MAX_STATES:
            raise ValueError(f"{what}: the dense solve supports S <= {DENSE_MAX_STATES}, got S={self.n_states}")

    def _controlled_from_log(self, log_z: torch.Tensor) -> torch.Tensor:
        return torch.where(self.terminal.unsqueeze(-1), self.passive, self._log_controlled(log_z))

    def solve_first_exit(self, *, tol: float = 1e-14, max_iter: int = 100_000) -> LMDPSolution:
        r"""Solve the first-exit problem: ``(I - G_N P_NN) z_N = G_N P_NT z_T``, ``z_T = exp(-q_T)``.

        One dense linear solve when ``z`` is representable; when a cost is so large that
        ``exp(-q)`` or ``z`` underflows (costs above ~700), the same fixed point is found in log
        space, ``log z_N = -q_N + log(P_NN z_N + P_NT z_T)``, iterated from ``z_N = 0`` (a
        monotone iteration that converges at the spectral rate of ``G_N P_NN``).

        Args:
            tol, max_iter: control of the log-space iteration (change of ``log z``).

        Raises:
            ValueError: without terminal states, or when the problem has no finite solution
                (spectral radius of ``G_N P_NN`` at least 1: some states need not exit).
        """
        if not bool(self.terminal.any()):
            raise ValueError("terminal: the first-exit problem needs at least one terminal state, got none")
        self._check_dense("solve_first_exit")
        N, T_ = ~self.terminal, self.terminal
        qN, qT = self.state_cost[N], self.state_cost[T_]
        G = torch.exp(-qN)
        M = G.unsqueeze(-1) * self.passive[N][:, N]
        rho = torch.linalg.eigvals(M).abs().max().item()
        if rho >= 1 - 1e-12:
            raise ValueError(f"state_cost: the first-exit problem has no finite solution: the spectral radius of "
                             f"diag(exp(-q)) P restricted to non-terminal states is {rho:.6g} >= 1 (some states "
                             f"can avoid the terminal set at no cost)")
        zT = torch.exp(-qT)
        b = G * (self.passive[N][:, T_] @ zT)
        zN = torch.linalg.solve(torch.eye(int(N.sum()), dtype=M.dtype) - M, b)
        log_z = torch.empty(self.n_states, dtype=M.dtype)
        log_z[T_] = -qT
        if bool((G > 0).all()) and bool((zT > 0).all()) and bool((zN > 0).all()) and bool(torch.isfinite(zN).all()):
            log_z[N] = torch.log(zN)
            resid = ((zN - (M @ zN + b)).abs().max() / torch.cat([zN, zT]).max()).item()
        else:
            log_PN = torch.log(self.passive[N])                          # (|N|, S)

            def bellman(lz_N):
                full = log_z.clone()
                full[N] = lz_N
                return -qN + logsumexp(log_PN + full.unsqueeze(0), -1)

            lz = torch.full_like(qN, -math.inf)
            for _ in range(max_iter):
                new = bellman(lz)
                done = bool(torch.isfinite(lz).all()) and (new - lz).abs().max().item() <= tol
                lz = new
                if done:
                    break
            else:
                raise ValueError(f"max_iter: the log-space first-exit iteration did not converge in {max_iter} "
                                 f"iterations (spectral radius {rho:.6g})")
            log_z[N] = lz
            top = log_z.max()
            resid = (torch.exp(lz - top) - torch.exp(bellman(lz) - top)).abs().max().item()
        z = torch.exp(log_z)
        return LMDPSolution(z, -log_z, self._controlled_from_log(log_z), None, "first_exit", resid)

    def _irreducible(self) -> bool:
        from scipy.sparse.csgraph import connected_components

        n, _ = connected_components((self.passive > 0).detach().cpu().numpy(), directed=True, connection="strong")
        return n == 1

    def solve_average_cost(self, method: str = "eig", *, tol: float = 1e-13, max_iter: int = 100_000) -> LMDPSolution:
        r"""Solve the infinite-horizon average-cost problem: ``exp(-c) z = G P z``.

        The costs are first shifted by their minimum ``q_min`` (which scales ``G`` and the Perron
        root by ``exp(q_min)`` and leaves ``z`` unchanged), so costs of any size are solved.

        Args:
            method: ``"eig"`` (dense eigen-decomposition, the Perron root and its vector; when
                ``z`` is not representable it falls back to ``"power"``) or ``"power"`` (power
                iteration in log space on ``M + beta I`` with ``beta`` the current upper bound on
                the Perron root, so periodic chains converge too; it stops when the
                Collatz-Wielandt bounds ``min_s (Mz)_s / z_s <= lambda <= max_s (Mz)_s / z_s`` agree
                to ``tol`` in log, relative to the largest log term).
            tol, max_iter: power-iteration control.

        Returns:
            :class:`LMDPSolution` with ``average_cost`` ``c`` and ``z`` normalised to ``max z = 1``.

        Raises:
            ValueError: with terminal states, passive dynamics that are not irreducible, or for an
                unknown method.
        """
        if bool(self.terminal.any()):
            raise ValueError("terminal: the average-cost problem has no terminal states, got some; "
                             "use solve_first_exit")
        if method not in ("eig", "power"):
            raise ValueError(f"method: expected 'eig' or 'power', got {method!r}")
        if not self._irreducible():
            raise ValueError("passive: expected irreducible passive dynamics (every state reaches every other) "
                             "for the average-cost problem, got a reducible chain")
        q_min = self.state_cost.min()
        qs = self.state_cost - q_min
        log_z = None
        if method == "eig":
            self._check_dense("solve_average_cost")
            M = torch.exp(-qs).unsqueeze(-1) * self.passive
            try:
                vals, vecs = torch.linalg.eig(M)
            except RuntimeError:                               # pragma: no cover - LAPACK failure
                vals = None
            if vals is not None and bool(torch.isfinite(vals).all()):
                k = int(vals.real.argmax())                   # Perron root: real and of largest modulus
                z = vecs[:, k].real
                z = z / z[z.abs().argmax()]
                if bool((z > 0).all()):
                    log_z, log_lam = torch.log(z), math.log(vals[k].real.item())
        if log_z is None:                                      # power iteration in log space
            log_M = torch.log(self.passive) - qs.unsqueeze(-1)
            log_z = torch.zeros(self.n_states, dtype=log_M.dtype)
            for _ in range(max_iter):
                log_Mz = logsumexp(log_M + log_z.unsqueeze(0), -1)
                ratio = log_Mz - log_z
                hi, lo = ratio.max(), ratio.min()
                # log ratios carry rounding of the size of the largest log term
                if (hi - lo).item() <= tol * (1.0 + log_M[torch.isfinite(log_M)].abs().max().item()
                                              + log_z.abs().max().item()):
                    break
                log_z = torch.logaddexp(log_Mz, hi + log_z)   # (M + beta I) z with beta = upper bound
                log_z = log_z - log_z.max()
            else:
                raise ValueError(f"max_iter: power iteration did not converge in max_iter={max_iter} iterations")
            log_lam = (0.5 * (hi + lo)).item()
        log_z = log_z - log_z.max()
        z = torch.exp(log_z)
        log_M = torch.log(self.passive) - qs.unsqueeze(-1)
        resid = (torch.exp(logsumexp(log_M + log_z.unsqueeze(0), -1)) - math.exp(log_lam) * z).abs().max().item()
        return LMDPSolution(z, -log_z, self._controlled_from_log(log_z), q_min.item() - log_lam, "average_cost", resid)

    def solve_finite_horizon(self, horizon: int, final_cost: Optional[ArrayLike] = None) -> LMDPSolution:
        r"""Solve the ``horizon``-step problem in log space: ``log z_t = -q + log P z_{t+1}``.

        Terminal states keep ``z_t = exp(-q_T)`` at every step (the episode ends on arrival).

        Args:
            horizon: number of steps ``T >= 1``.
            final_cost: ``(S,)`` cost at ``t = T`` of non-terminal states (default 0).

        Returns:
            :class:`LMDPSolution` with ``z``, ``v`` of shape ``(T+1, S)`` and ``controlled``
            ``(T, S, S)``.
        """
        check_positive_int("horizon", horizon, "an integer >= 1")
        fc = self._final_cost(final_cost)
        term = self.terminal
        log_zT = torch.where(term, -self.state_cost, -fc)
        log_z = [log_zT]
        us = []
        for _ in range(horizon):
            nxt = log_z[0]
            us.insert(0, self._log_controlled(nxt))
            cur = -self.state_cost + log_matmul_exp(self.passive, nxt.unsqueeze(-1)).squeeze(-1)
            log_z.insert(0, torch.where(term, -self.state_cost, cur))
        log_z = torch.stack(log_z, 0)
        u = torch.stack(us, 0)
        u = torch.where(term.unsqueeze(-1), self.passive, u)
        return LMDPSolution(torch.exp(log_z), -log_z, u, None, "finite_horizon", 0.0)

    # -----------------------------------------------------------------------------------------
    def successors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``succ (S, K)`` successor indices of each state and ``prob (S, K)`` their passive
        probabilities (``K`` the largest out-degree of a non-terminal state; padding: the state
        itself with probability 0)."""
        S = self.n_states
        P = torch.where(self.terminal.unsqueeze(-1), torch.zeros_like(self.passive), self.passive)
        K = max(1, int((P > 0).sum(-1).max()))
        order = torch.argsort((P > 0).to(torch.int8), dim=-1, descending=True, stable=True)[:, :K]
        prob = P.gather(1, order)
        succ = torch.where(prob > 0, order, torch.arange(S).unsqueeze(-1).expand(S, K))
        return succ, prob

    def to_mdp(self, alpha: float = 1.0, horizon: Optional[int] = None, final_cost: Optional[ArrayLike] = None
               ) -> Tuple[TabularMDP, torch.Tensor]:
        r"""The :class:`~cai.TabularMDP` and action prior whose soft value iteration is this LMDP.

        Action ``k`` of a non-terminal state ``s`` moves deterministically to its ``k``-th
        successor (:meth:`successors`) and earns ``-alpha q(s)``; its prior probability is
        ``p(succ_k(s)|s)``. With terminal states an absorbing, reward-free ``exit`` state is
        added (last index): any action of a terminal state earns ``-alpha q_T(s)`` and exits.
        Soft value iteration at temperature ``alpha`` with this prior then gives ``V = -alpha v``
        and a policy inducing ``u*`` (:func:`controlled_from_policy`). The dynamics are
        deterministic, so exact inference (:func:`cai.backward_messages`) agrees.

        Args:
            alpha: temperature the MDP is to be solved at (rewards scale with it).
            horizon: number of decisions (the LMDP's first-exit or average-cost problem is the
                limit ``horizon -> infinity``; use :meth:`solve_finite_horizon` for an exact match).
            final_cost: ``(S,)`` final cost of non-terminal states at the horizon (default 0).

        Returns:
            ``(mdp, action_prior)``: the MDP (``S`` or ``S + 1`` states) and an ``(S', K)`` prior.
        """
        a = float(check_alpha(alpha, torch.float64, None))
        if horizon is None:
            raise ValueError("horizon: expected an integer >= 1 (TabularMDP needs a horizon without a "
                             "discount, and discounting breaks linear solvability), got None")
        S = self.n_states
        succ, prob = self.successors()
        K = succ.shape[1]
        term = self.terminal
        has_exit = bool(term.any())
        S2 = S + int(has_exit)
        P = torch.zeros(S2, K, S2, dtype=torch.float64)
        P[:S].scatter_(2, succ.unsqueeze(-1), 1.0)
        if has_exit:
            tidx = torch.nonzero(term).squeeze(1)
            P[tidx] = 0.0
            P[tidx, :, S] = 1.0
            P[S, :, S] = 1.0
        prior = torch.zeros(S2, K, dtype=torch.float64)
        prior[:S] = prob
        prior[torch.nonzero(term).squeeze(1)] = 1.0 / K
        if has_exit:
            prior[S] = 1.0 / K
        r = torch.zeros(S2, K, dtype=torch.float64)
        r[:S] = -a * self.state_cost.unsqueeze(-1)
        fc = self._final_cost(final_cost)
        rT = torch.zeros(S2, dtype=torch.float64)
        rT[:S] = -a * torch.where(term, self.state_cost, fc)
        names = None
        if self.state_names is not None:
            names = list(self.state_names) + (["exit"] if has_exit else [])
        mdp = TabularMDP(P, r, None, horizon=horizon, terminal_rewards=rT, state_names=names,
                         metadata={"kind": "lmdp", "successors": succ.tolist(), "exit": has_exit})
        return mdp, prior

    @classmethod
    def from_mdp(cls, mdp: TabularMDP, alpha: float = 1.0, action_prior: Optional[ArrayLike] = None) -> LMDP:
        r"""The LMDP that soft value iteration on a deterministic MDP solves (in units of ``alpha``).

        ``p(s'|s) ∝ sum_{a: P(s'|s,a)=1} rho(a|s) exp(r(s,a)/alpha)`` and
        ``q(s) = -log sum_a rho(a|s) exp(r(s,a)/alpha)``, so that ``z_t = exp(V_t / alpha)``
        solves :meth:`solve_finite_horizon` with ``final_cost = -r_T / alpha``.

        Args:
            mdp: a :class:`~cai.TabularMDP` with deterministic dynamics, ``(S, A)`` rewards (no
                time-varying or ``r(s,a,s')`` rewards, no batch) and no discount.
            alpha: the temperature (> 0).
            action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.

        Raises:
            ValueError: for stochastic dynamics (soft value iteration then averages over
                successors outside the log, which is not linear in ``z``), a discount < 1, or a
                reward layout other than ``(S, A)``.
        """
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"from_mdp: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        mdp.check_unchanged("from_mdp")
        if mdp.reward_layout != "sa" or mdp.batch_shape != torch.Size([]):
            raise ValueError(f"mdp: expected unbatched (S, A) rewards, got layout {mdp.reward_layout!r} with "
                             f"batch shape {tuple(mdp.batch_shape)}")
        if mdp.gamma != 1.0:
            raise ValueError(f"mdp: expected no discount (a discount breaks linear solvability), got {mdp.gamma}")
        P = mdp.dense_transitions()
        if not bool(((P == 0) | ((P - 1).abs() <= ROW_SUM_TOL)).all()):
            raise ValueError("mdp: expected deterministic dynamics (every P(s'|s,a) in {0, 1}), got stochastic "
                             "ones; soft value iteration with stochastic dynamics is not an LMDP")
        a = float(check_alpha(alpha, mdp.dtype, mdp.device))
        log_rho = check_action_prior(action_prior, mdp.n_states, mdp.n_actions, mdp.dtype, mdp.device)
        logits = mdp.rewards / a if log_rho is None else mdp.rewards / a + log_rho      # (S, A)
        lse = logsumexp(logits, -1)
        w = torch.exp(logits - lse.unsqueeze(-1))                                       # (S, A)
        passive = torch.einsum("sa,sat->st", w, (P > 0.5).to(w.dtype))
        return cls(passive.cpu(), (-lse).cpu(), state_names=mdp.state_names)
