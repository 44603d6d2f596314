r"""Maximum-entropy inverse reinforcement learning, in its causal and original forms.

Given demonstrations and the MDP's dynamics (its reward is ignored), find a reward
``r_theta(s, a)`` under which the demonstrations are most likely. Both variants maximise a
log-likelihood whose gradient is *empirical minus expected feature counts*::

    grad_theta L = (1 / alpha) * ( mu_demo - mu_theta ),    mu = sum_{t,s,a} d_t(s,a) phi(s,a)

They differ in the model of the demonstrator, hence in where ``mu_theta`` comes from:

* ``variant="causal"`` — maximum *causal* entropy (Ziebart 2010): the demonstrator follows the
  soft-optimal policy of :func:`cai.soft_value_iteration`; ``mu_theta`` is that policy's
  visitation under the true dynamics (:func:`~cai.dp.visitation.policy_marginals`, or
  :func:`~cai.dp.visitation.policy_visitation` for a stationary MDP).
  The objective is ``mean_demo[sum_t r/alpha] - max ELBO``, which for deterministic dynamics
  (and ``initial="empirical"``) *is* the causal log-likelihood ``mean sum_t log pi_t(a_t|s_t)``;
  with stochastic dynamics the two differ by a term of zero mean under the model.
* ``variant="exact"`` — the original maximum entropy IRL (Ziebart et al. 2008): trajectories
  are distributed as ``p(tau | O) ∝ p0 prod P exp(sum r / alpha)``, the exact posterior of the
  control-as-inference model; ``mu_theta`` comes from :func:`cai.forward_messages` and the
  objective is the exact log-likelihood ``mean log p(tau | O)`` (``log_evidence`` is its
  normaliser). With stochastic dynamics this model is optimistic (the demonstrator appears to
  control its luck, docs/design.md §2.3); with deterministic dynamics both variants coincide.

Rewards are linear in features (``(S, F)`` state features or ``(S, A, F)`` state-action
features; default: one indicator per state, a tabular state reward) or given by a torch module
mapping the feature tensor to rewards, trained with the same visitation gradient through the
chain rule.

References:
    Ziebart, Maas, Bagnell and Dey (2008), "Maximum entropy inverse reinforcement learning", AAAI.
    Ziebart (2010), "Modeling purposeful adaptive behavior with the principle of maximum causal
    entropy", PhD thesis, CMU, ch. 6 and 9.
    Levine (2018), "Reinforcement learning and control as probabilistic inference", §5.1.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from cai.dp.soft_vi import soft_value_iteration
from cai.dp.visitation import policy_marginals, policy_visitation
from cai.exact.messages import backward_messages, forward_messages
from cai.exact.sampling import Trajectories, transition_rows
from cai.mdp.checks import as_tensor, check_action_prior, check_alpha
from cai.mdp.tabular import TabularMDP
from cai.ops.logspace import logsumexp
from cai.solution import Solution
from cai.typing import ArrayLike

__all__ = ["MaxEntIRL", "IRLStep", "Demonstrations", "validate_demonstrations", "empirical_visitation",
           "CAUSAL", "EXACT"]

CAUSAL = "causal"
EXACT = "exact"


class Demonstrations(NamedTuple):
    """Validated demonstrations, padded to a common length.

    Attributes:
        states: ``(n, L+1)`` long; ``s_t`` (padding: 0, masked out).
        actions: ``(n, L)`` long; ``a_t`` (padding: 0, masked out).
        mask: ``(n, L)`` bool; which ``(s_t, a_t)`` pairs were observed.
        has_next: ``(n, L)`` bool; whether ``s_{t+1}`` was observed after ``a_t``.
    """

    states: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor
    has_next: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.states.shape[0])


class IRLStep(NamedTuple):
    """One entry of :attr:`MaxEntIRL.history_`.

    Attributes:
        iteration: 0-based iteration (the reward *before* that iteration's update).
        log_likelihood: mean log-likelihood of a demonstration under the variant's model.
        gap: ``max |mu_demo - mu_theta| / alpha`` for linear rewards (the gradient's largest
            entry), ``sum |d_demo - d_theta|`` (L1 visitation gap) for a reward module.
    """

    iteration: int
    log_likelihood: float
    gap: float


# ---------------------------------------------------------------------------------------------
# demonstrations

def _as_index_vector(name: str, x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x))
    if t.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of indices, got shape {tuple(t.shape)}")
    if t.is_floating_point():
        if not bool(torch.all(t == torch.round(t))):
            raise ValueError(f"{name}: expected integer indices, got non-integer values")
        t = t.long()
    elif t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name}: expected integer indices, got dtype {t.dtype}")
    return t.long()


def validate_demonstrations(demonstrations: Union[Trajectories, Sequence], mdp: TabularMDP) -> Demonstrations:
    """Check demonstrations against an MDP and pad them into tensors.

    Args:
        demonstrations: a :class:`~cai.Trajectories` (``states (n, T+1)``, ``actions (n, T)``),
            the same as a pair of 2-D arrays ``(states, actions)``, or a non-empty sequence of trajectories, each a pair ``(states, actions)`` (or an
            object with ``.states`` and ``.actions``) with ``len(states) == len(actions) + 1``
            (or ``len(actions)``: the final state unobserved). For a finite-horizon MDP every
            trajectory has exactly ``T`` actions; for a stationary MDP any positive length.
        mdp: the MDP whose states, actions and dynamics the demonstrations must respect.

    Returns:
        :class:`Demonstrations`.

    Raises:
        ValueError: empty demonstrations, wrong lengths, indices out of range (including the
            ``-1`` of dead trajectories), a forbidden action (reward ``-inf``, e.g. any action but
            the first in a grid world's exit), or a transition the dynamics give probability 0.
        TypeError: non-integer indices.
    """
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    if (isinstance(demonstrations, (tuple, list)) and len(demonstrations) == 2
            and all(isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2 for x in demonstrations)):
        # the batch form (states (n, L+1), actions (n, L)) as two arrays
        st, ac = demonstrations
        if st.shape[0] != ac.shape[0]:
            raise ValueError(f"demonstrations: expected states (n, L+1) and actions (n, L) with the same n, got "
                             f"{tuple(st.shape)} and {tuple(ac.shape)}")
        demonstrations = Trajectories(torch.as_tensor(np.asarray(st.detach().cpu() if isinstance(st, torch.Tensor) else st)),
                                      torch.as_tensor(np.asarray(ac.detach().cpu() if isinstance(ac, torch.Tensor) else ac)))
    if isinstance(demonstrations, Trajectories):
        pairs = list(zip(demonstrations.states, demonstrations.actions))  # noqa: B905 (same n; python 3.9)
    elif isinstance(demonstrations, (str, bytes)) or not isinstance(demonstrations, Sequence):
        raise TypeError(f"demonstrations: expected a cai.Trajectories or a sequence of (states, actions) "
                        f"pairs, got {type(demonstrations).__name__}")
    else:
        pairs = []
        for i, d in enumerate(demonstrations):
            if hasattr(d, "states") and hasattr(d, "actions"):
                pairs.append((d.states, d.actions))
            elif isinstance(d, (tuple, list)) and len(d) == 2:
                pairs.append((d[0], d[1]))
            else:
                raise TypeError(f"demonstrations[{i}]: expected a (states, actions) pair, got {type(d).__name__}")
    if not pairs:
        raise ValueError("demonstrations: expected at least one trajectory, got none")
    seqs = []
    for i, (s, a) in enumerate(pairs):
        s = _as_index_vector(f"demonstrations[{i}].states", s)
        a = _as_index_vector(f"demonstrations[{i}].actions", a)
        L = a.numel()
        if L < 1:
            raise ValueError(f"demonstrations[{i}]: expected at least one action, got none")
        if s.numel() not in (L, L + 1):
            raise ValueError(f"demonstrations[{i}]: expected len(states) = len(actions) + 1 = {L + 1} "
                             f"(or {L}), got {s.numel()} states for {L} actions")
        if T is not None and L != T:
            raise ValueError(f"demonstrations[{i}]: expected {T} actions (the MDP's horizon), got {L}")
        if bool((s < 0).any()) or bool((s >= S).any()):
            bad = s[(s < 0) | (s >= S)][0].item()
            raise ValueError(f"demonstrations[{i}].states: expected indices in [0, {S - 1}], got {bad}")
        if bool((a < 0).any()) or bool((a >= A).any()):
            bad = a[(a < 0) | (a >= A)][0].item()
            raise ValueError(f"demonstrations[{i}].actions: expected indices in [0, {A - 1}], got {bad}")
        seqs.append((s, a))
    n, Lmax = len(seqs), max(a.numel() for _, a in seqs)
    states = torch.zeros(n, Lmax + 1, dtype=torch.long)
    actions = torch.zeros(n, Lmax, dtype=torch.long)
    mask = torch.zeros(n, Lmax, dtype=torch.bool)
    has_next = torch.zeros(n, Lmax, dtype=torch.bool)
    for i, (s, a) in enumerate(seqs):
        L = a.numel()
        states[i, : s.numel()] = s
        actions[i, :L] = a
        mask[i, :L] = True
        has_next[i, : s.numel() - 1] = True
    dev = mdp.device
    states, actions, mask, has_next = states.to(dev), actions.to(dev), mask.to(dev), has_next.to(dev)
    allowed = mdp.allowed
    allowed = allowed.reshape(-1, *allowed.shape[-2:]).any(0)            # (S, A): allowed at some step
    taken = allowed[states[:, :Lmax], actions] | ~mask
    if not bool(taken.all()):
        i, t = (~taken).nonzero()[0].tolist()
        raise ValueError(f"demonstrations[{i}]: action {int(actions[i, t])} at t={t} in state {int(states[i, t])} "
                         f"is forbidden there (reward -inf)")
    # every observed transition must be possible under the dynamics
    idx = has_next.nonzero()
    if idx.numel():
        i, t = idx[:, 0], idx[:, 1]
        rows = states[i, t] * A + actions[i, t]
        prob = transition_rows(mdp, rows).gather(1, states[i, t + 1].unsqueeze(1)).squeeze(1)
        if bool((prob <= 0).any()):
            k = int((prob <= 0).nonzero()[0])
            raise ValueError(
                f"demonstrations[{int(i[k])}]: transition at t={int(t[k])} from state {int(states[i[k], t[k]])} "
                f"with action {int(actions[i[k], t[k]])} to state {int(states[i[k], t[k] + 1])} has probability 0 "
                f"under the MDP's dynamics")
    return Demonstrations(states, actions, mask, has_next)


def empirical_visitation(demos: Demonstrations, mdp: TabularMDP) -> torch.Tensor:
    """Mean (discounted) state-action visitation counts of the demonstrations.

    ``d_demo(s, a) = (1/n) sum_i sum_t gamma^t [s_t^i = s, a_t^i = a]``, shape ``(S, A)``; the
    discount weights match :func:`~cai.dp.visitation.policy_visitation`.
    """
    S, A = mdp.n_states, mdp.n_actions
    L = demos.actions.shape[1]
    w = mdp.gamma ** torch.arange(L, dtype=mdp.dtype, device=mdp.device)
    w = (w.unsqueeze(0) * demos.mask.to(mdp.dtype)).reshape(-1)
    flat = (demos.states[:, :L] * A + demos.actions).reshape(-1)
    d = torch.zeros(S * A, dtype=mdp.dtype, device=mdp.device).index_add_(0, flat, w)
    return (d / demos.n).reshape(S, A)


# ---------------------------------------------------------------------------------------------
# the inner loop of fit, with what does not change built once

class _CausalSweep:
    r"""One inner solve of causal MaxEnt IRL for linear rewards, on a finite horizon, on the CPU.

    A fast path of :meth:`MaxEntIRL.solve` followed by :meth:`MaxEntIRL.expected_visitation`
    (soft value iteration, then :func:`cai.dp.visitation.policy_marginals`), tested against them
    entry by entry. Everything that does not change between iterations of :meth:`MaxEntIRL.fit`
    is built once: the transition matrix and its transpose (SciPy CSR or a NumPy view), the mask
    of forbidden actions, the prior, the terminal rewards, the start distribution, the features
    as an ``(S*A, F)`` matrix and the demonstrations' indices; the MDP is not rebuilt and revalidated
    per iteration, no ``Solution`` is made, and no ``Q`` beyond the current step is kept. The
    arithmetic is the reference's, step by step::

        Q_t = r + gamma P V_{t+1},   log pi_t = Q_t / alpha + log rho - logsumexp_a(.),   V_t = alpha logsumexp_a(.)
        d_t(s, a) = mu_t(s) pi_t(a|s),   mu_{t+1} = gamma P^T d_t,   mu_0 = q0
    """

    def __init__(self, irl: MaxEntIRL, q0: torch.Tensor, demos: Demonstrations) -> None:
        import scipy.sparse as sp

        mdp = irl.mdp
        S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
        self.S, self.A, self.T, self.g, self.a = S, A, T, mdp.gamma, float(irl._alpha)
        PM = mdp.transition_matrix.detach()
        if mdp.is_sparse:
            self.P = sp.csr_matrix((PM.values().numpy(), PM.col_indices().numpy(), PM.crow_indices().numpy()),
                                   shape=tuple(PM.shape))
        else:
            self.P = PM.numpy()
        self.PT = self.P.T.tocsr() if mdp.is_sparse else np.ascontiguousarray(self.P.T)
        # the constants folded into the operators once: (gamma / alpha) P and gamma P^T
        self.Pg = self.P * (self.g / self.a)
        self.PTg = self.PT * self.g
        allowed = mdp.allowed
        allowed = allowed.reshape(-1, *allowed.shape[-2:]).any(0)
        self.forbidden = None if bool(allowed.all()) else (~allowed).numpy()
        log_rho = check_action_prior(irl.action_prior, S, A, mdp.dtype, mdp.device)
        self.log_rho = None if log_rho is None else log_rho.numpy()
        self.rT = mdp.terminal_rewards.detach().numpy()
        self.q0 = q0.detach().numpy()
        self.phi = irl._phi.detach().reshape(S * A, -1).numpy()                # (S*A, F)
        L = demos.actions.shape[1]
        self.t_idx = np.broadcast_to(np.arange(L), demos.actions.shape)[demos.mask.numpy()]
        self.s_idx, self.a_idx = demos.states[:, :L][demos.mask].numpy(), demos.actions[demos.mask].numpy()
        self.n = demos.n
        self.log_pi = np.empty((T, S, A))

    @classmethod
    def applies(cls, irl: MaxEntIRL) -> bool:
        """Whether ``fit`` may use the sweep: causal, linear rewards, finite horizon, float64 on the CPU."""
        mdp = irl.mdp
        return (irl.variant == CAUSAL and irl.reward_model is None and mdp.horizon is not None
                and mdp.device.type == "cpu" and mdp.dtype == torch.float64 and not mdp.transitions.requires_grad)

    def __call__(self, w: torch.Tensor) -> Tuple[np.ndarray, float, float]:
        """``(d (S, A), log-likelihood, sum_s q0(s) V_0(s))`` for weights ``w``: the expected
        visitation counts, the demonstrations' mean causal log-likelihood under the soft-optimal
        policy of ``phi w``, and the start distribution's soft value."""
        S, A, a = self.S, self.A, self.a
        r_a = (self.phi @ w.detach().numpy()).reshape(S, A)
        r_a /= a
        if self.log_rho is not None:
            r_a += self.log_rho
        if self.forbidden is not None:
            r_a[self.forbidden] = -math.inf
        v = self.rT                                          # V_T
        for t in range(self.T - 1, -1, -1):
            x = (self.Pg @ v).reshape(S, A)                  # (gamma / alpha) P V_{t+1}
            x += r_a                                         # the logits Q_t / alpha + log rho
            m = x.max(1, keepdims=True)                      # finite: every state keeps an action
            lp = self.log_pi[t]
            np.subtract(x, m, out=lp)
            lse = np.log(np.exp(lp).sum(1, keepdims=True))
            lp -= lse                                        # log pi_t
            lse += m
            v = a * lse[:, 0]                                # V_t
        v0 = float(self.q0 @ v)
        d = np.zeros((S, A))
        mu = self.q0
        for t in range(self.T):
            dt = np.exp(self.log_pi[t])
            dt *= mu[:, None]
            d += dt
            mu = self.PTg @ dt.reshape(-1)
        ll = float(self.log_pi[self.t_idx, self.s_idx, self.a_idx].sum()) / self.n
        return d, ll, v0


# ---------------------------------------------------------------------------------------------
# the learner

class MaxEntIRL:
    r"""Maximum (causal) entropy inverse RL, scikit-learn style.

    Args:
        mdp: :class:`~cai.TabularMDP` giving the dynamics, initial distribution, horizon or
            discount and terminal rewards; its rewards are ignored (replaced by ``r_theta``).
            Finite horizon or stationary (the ``exact`` variant on a stationary MDP needs the
            evidence to be finite, see :func:`cai.backward_messages`).
        features: ``(S, F)`` state features or ``(S, A, F)`` state-action features; ``None``
            means one indicator per state (``F = S``, a tabular state reward).
        alpha: temperature of the demonstrator model (> 0).
        variant: ``"causal"`` (Ziebart 2010, soft value iteration) or ``"exact"`` (Ziebart et
            al. 2008, exact inference).
        action_prior: ``None`` (counting measure) or a normalised ``(S, A)`` prior.
        reward_model: optional ``torch.nn.Module`` mapping the feature tensor to rewards of
            shape ``(S,)``, ``(S, 1)``, ``(S, A)`` or ``(S, A, 1)``; replaces the linear reward.
        lr: learning rate of the optimiser (gradient *ascent* on the log-likelihood).
        n_iter: maximum number of iterations.
        optimizer: ``"adam"``, ``"sgd"`` (plain gradient ascent) or ``"lbfgs"`` (linear rewards
            only: SciPy's L-BFGS-B on the concave objective :meth:`objective` minus the ``l2``
            term, stopping when the gradient's largest entry is at most ``tol``, the same rule as
            the others; ``lr`` is unused and ``n_iter`` bounds its iterations; ``history_`` gets
            one entry per objective evaluation). Far fewer solves than Adam to the same
            tolerance (``benchmarks/bench_irl.py``).
        tol: stop when the gradient's largest entry (linear) is below ``tol``.
        l2: L2 penalty ``l2/2 * |theta|^2`` subtracted from the objective (linear rewards only).
        initial: ``"mdp"`` (expected counts start from ``mdp.initial``) or ``"empirical"`` (from
            the demonstrations' start states: the model conditions on where each demonstration
            starts).
        init_weights: ``(F,)`` starting weights (default 0).
        progress: show a tqdm progress bar.

    Attributes (after :meth:`fit`):
        weights_: ``(F,)`` learned weights (linear rewards; ``None`` with a reward module).
        reward_: ``(S, A)`` learned reward.
        solution_: the :class:`~cai.Solution` for ``reward_`` (soft VI or backward messages).
        policy_: ``(T, S, A)`` (or ``(S, A)``) the demonstrator model's policy under ``reward_``.
        visitation_: ``(S, A)`` its expected visitation counts.
        empirical_visitation_: ``(S, A)`` the demonstrations' visitation counts.
        feature_expectations_, empirical_feature_expectations_: ``(F,)``.
        history_: list of :class:`IRLStep` (the training curve).
        n_iter_: iterations run.

    References:
        Ziebart et al. (2008); Ziebart (2010), ch. 9 (see the module docstring).
    """

    def __init__(self, mdp: TabularMDP, features: Optional[ArrayLike] = None, *, alpha: float = 1.0, variant: str = CAUSAL,
                 action_prior: Optional[ArrayLike] = None, reward_model: Optional[torch.nn.Module] = None, lr: float = 0.1,
                 n_iter: int = 200, optimizer: str = "adam", tol: float = 1e-6, l2: float = 0.0,
                 initial: str = "mdp", init_weights: Optional[ArrayLike] = None, progress: bool = False) -> None:
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"MaxEntIRL: mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        mdp.check_unchanged("MaxEntIRL")
        if mdp.batch_shape != torch.Size([]):   # the reward is replaced; its batch would be lost
            raise ValueError(f"mdp: expected an unbatched MDP, got reward batch shape {tuple(mdp.batch_shape)}")
        if variant not in (CAUSAL, EXACT):
            raise ValueError(f"variant: expected 'causal' (Ziebart 2010) or 'exact' (Ziebart 2008), got {variant!r}")
        if optimizer not in ("adam", "sgd", "lbfgs"):
            raise ValueError(f"optimizer: expected 'adam', 'sgd' or 'lbfgs', got {optimizer!r}")
        if optimizer == "lbfgs" and reward_model is not None:
            raise ValueError("optimizer: 'lbfgs' fits linear rewards only, got a reward_model; use 'adam' or 'sgd'")
        if initial not in ("mdp", "empirical"):
            raise ValueError(f"initial: expected 'mdp' or 'empirical', got {initial!r}")
        for nm, v in (("lr", lr), ("tol", tol)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{nm}: expected a positive number, got {v!r}")
        if not (isinstance(l2, (int, float)) and math.isfinite(l2) and l2 >= 0):
            raise ValueError(f"l2: expected a non-negative number, got {l2!r}")
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise ValueError(f"n_iter: expected a non-negative integer, got {n_iter!r}")
        if reward_model is not None and not isinstance(reward_model, torch.nn.Module):
            raise TypeError(f"reward_model: expected a torch.nn.Module or None, got {type(reward_model).__name__}")
        S, A = mdp.n_states, mdp.n_actions
        self.mdp = mdp
        self.alpha = alpha
        self._alpha = check_alpha(alpha, mdp.dtype, mdp.device)
        if self._alpha.dim() != 0:
            raise ValueError(f"alpha: expected a scalar temperature, got shape {tuple(self._alpha.shape)}")
        self.action_prior = action_prior
        check_action_prior(action_prior, S, A, mdp.dtype, mdp.device)
        if features is None:
            phi = torch.eye(S, dtype=mdp.dtype, device=mdp.device)
        else:
            phi = as_tensor("features", features, mdp.dtype, mdp.device)
        if phi.dim() == 2 and phi.shape[0] == S:
            phi_sa = phi.unsqueeze(1).expand(S, A, phi.shape[1])
        elif phi.dim() == 3 and tuple(phi.shape[:2]) == (S, A):
            phi_sa = phi
        else:
            raise ValueError(f"features: expected shape (S, F) = ({S}, F) or (S, A, F) = ({S}, {A}, F), "
                             f"got {tuple(phi.shape)}")
        if not bool(torch.isfinite(phi).all()):
            raise ValueError("features: expected finite values, got an infinite or NaN entry")
        self.features = phi
        self._phi = phi_sa                                      # (S, A, F)
        F = phi_sa.shape[-1]
        if init_weights is not None:
            w0 = as_tensor("init_weights", init_weights, mdp.dtype, mdp.device)
            if tuple(w0.shape) != (F,):
                raise ValueError(f"init_weights: expected shape ({F},), got {tuple(w0.shape)}")
        self.init_weights = init_weights
        self.variant, self.reward_model, self.lr, self.n_iter = variant, reward_model, lr, n_iter
        self.optimizer, self.tol, self.l2, self.initial, self.progress = optimizer, tol, l2, initial, progress

    # -----------------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self._phi.shape[-1])

    def reward_from_weights(self, weights: ArrayLike) -> torch.Tensor:
        """``r_theta(s, a) = phi(s, a) . theta``, ``(S, A)`` (differentiable in ``weights``)."""
        w = as_tensor("weights", weights, self.mdp.dtype, self.mdp.device)
        if tuple(w.shape) != (self.n_features,):
            raise ValueError(f"weights: expected shape ({self.n_features},), got {tuple(w.shape)}")
        return self._phi @ w

    def _model_reward(self) -> torch.Tensor:
        S, A = self.mdp.n_states, self.mdp.n_actions
        r = self.reward_model(self.features)
        r = r.to(self.mdp.dtype)
        if tuple(r.shape) in ((S,), (S, 1)):
            return r.reshape(S, 1).expand(S, A)
        if tuple(r.shape) in ((S, A), (S, A, 1)):
            return r.reshape(S, A)
        raise ValueError(f"reward_model: expected an output of shape (S,), (S, 1), (S, A) or (S, A, 1) "
                         f"with S={S}, A={A}, got {tuple(r.shape)}")

    def solve(self, reward: torch.Tensor) -> Tuple[TabularMDP, Solution]:
        """The demonstrator model for a reward ``(S, A)``: ``(mdp_r, solution)``.

        Soft value iteration (``causal``) or backward messages (``exact``); differentiable in
        ``reward``.
        """
        allowed = self.mdp.allowed
        if not bool(allowed.all()):                         # keep the MDP's forbidden actions (an exit state's)
            allowed = allowed.reshape(-1, *allowed.shape[-2:]).any(0)
            reward = torch.where(allowed, reward, torch.full_like(reward, -math.inf))
        mdp_r = self.mdp.replace(rewards=reward, reward_layout="sa")
        if self.variant == CAUSAL:
            return mdp_r, soft_value_iteration(mdp_r, self._alpha, self.action_prior)
        return mdp_r, backward_messages(mdp_r, self._alpha, self.action_prior)

    def _initial(self, demos: Demonstrations) -> torch.Tensor:
        if self.initial == "mdp":
            return self.mdp.initial
        S = self.mdp.n_states
        p = torch.zeros(S, dtype=self.mdp.dtype, device=self.mdp.device)
        return p.index_add_(0, demos.states[:, 0], torch.ones(demos.n, dtype=p.dtype, device=p.device)) / demos.n

    def expected_visitation(self, mdp_r: TabularMDP, sol: Solution, initial: torch.Tensor) -> torch.Tensor:
        """Expected ``(S, A)`` visitation counts of the demonstrator model, started from ``initial``.

        ``causal``: the soft-optimal policy pushed forward under the true dynamics.
        ``exact``: the exact posterior given optimality *and* the start state, ``sum_{s_0}
        initial(s_0) p(s_t, a_t | s_0, O)`` (Ziebart et al. 2008, Algorithm 1, which starts its
        forward pass from the start distribution). :func:`cai.forward_messages` lets the
        posterior reweight ``p0`` by ``exp(V_0 / alpha)``; starting it from
        ``initial * exp(-V_0 / alpha)`` (normalised) undoes that reweighting.
        """
        if self.variant == CAUSAL:
            if mdp_r.horizon is None:
                return policy_visitation(mdp_r, sol.policy, initial)
            return policy_marginals(mdp_r, sol.policy, initial).visitation
        a = self._alpha
        logw = torch.log(initial) - sol.V0 / a
        w = torch.exp(logw - logsumexp(logw, -1))
        mdp_q = mdp_r.replace(initial=w)
        # the backward messages do not depend on the initial distribution; forward_messages
        # needs them computed for mdp_q itself
        return forward_messages(mdp_q, backward_messages(mdp_q, a, self.action_prior)).visitation

    def _demos(self, demonstrations) -> Demonstrations:
        if isinstance(demonstrations, Demonstrations):
            return demonstrations
        return validate_demonstrations(demonstrations, self.mdp)

    def _reward_arg(self, reward, weights) -> torch.Tensor:
        if reward is not None and weights is not None:
            raise ValueError("reward, weights: expected at most one of them, got both")
        if weights is not None:
            return self.reward_from_weights(weights)
        if reward is None:
            return self._fitted("reward_")
        r = as_tensor("reward", reward, self.mdp.dtype, self.mdp.device)
        S, A = self.mdp.n_states, self.mdp.n_actions
        if tuple(r.shape) != (S, A):
            raise ValueError(f"reward: expected shape (S, A) = ({S}, {A}), got {tuple(r.shape)}")
        return r

    def _return_term(self, demos: Demonstrations, reward: torch.Tensor, discounted: bool) -> torch.Tensor:
        """``(sum_t w_t r(s_t, a_t) + w_T r_T(s_T)) / alpha`` per demonstration, ``(n,)``.

        ``w_t = gamma^t`` when ``discounted`` (the weights of :func:`empirical_visitation`), else 1.
        """
        L = demos.actions.shape[1]
        g = self.mdp.gamma if discounted else 1.0
        w = g ** torch.arange(L + 1, dtype=reward.dtype, device=reward.device)
        r_t = reward[demos.states[:, :L], demos.actions] * w[:L]
        total = torch.where(demos.mask, r_t, torch.zeros_like(r_t)).sum(-1)
        if self.mdp.horizon is not None:                        # r_T is earned at the horizon only
            last = demos.has_next.sum(-1)                       # index of the final observed state
            full = last == demos.mask.sum(-1)
            sT = demos.states.gather(1, last.unsqueeze(1)).squeeze(1)
            rT = self.mdp.terminal_rewards[sT] * w[L]
            total = total + torch.where(full, rT, torch.zeros_like(rT))
        return total / self._alpha

    def objective(self, demonstrations: Union[Trajectories, Sequence], reward: Optional[ArrayLike] = None, *, weights: Optional[ArrayLike] = None
                  ) -> torch.Tensor:
        r"""The function whose gradient :meth:`gradient` returns (without the ``l2`` term).

        ``J(r) = mean_i [ (sum_t gamma^t r(s_t^i, a_t^i) + gamma^T r_T(s_T^i)) / alpha ] - sum_s q0(s) V_0(s) / alpha``

        with ``V_0`` from soft value iteration (``causal``) or backward messages (``exact``) and
        ``q0`` the start distribution (``initial``). With ``initial="empirical"`` and no discount
        it equals :meth:`log_likelihood` up to a constant for the ``exact`` variant, and for the
        ``causal`` variant whenever the dynamics are deterministic (with stochastic dynamics
        the two differ by a term of zero mean under the model). Differentiable.
        """
        demos = self._demos(demonstrations)
        reward = self._reward_arg(reward, weights)
        _, sol = self.solve(reward)
        return self._objective(demos, reward, sol)

    def _objective(self, demos, reward, sol):
        return self._return_term(demos, reward, True).mean() - (self._initial(demos) * sol.V0).sum() / self._alpha

    def log_likelihood(self, demonstrations: Union[Trajectories, Sequence], reward: Optional[ArrayLike] = None, *,
                       weights: Optional[ArrayLike] = None) -> torch.Tensor:
        r"""Mean log-likelihood of the demonstrations under the variant's model, given their starts.

        ``causal``: ``mean_i sum_t log pi_t(a_t^i | s_t^i)`` (the causal likelihood).
        ``exact``:  ``mean_i log p(tau_i | s_0^i, O)`` with ``p(tau | s_0, O) = prod_t rho(a_t|s_t)
        gamma P(s_{t+1}|s_t,a_t) exp((sum_t r_t + r_T(s_T)) / alpha) / exp(V_0(s_0) / alpha)``.

        Differentiable in ``reward`` / ``weights`` (autograd through the core's soft value
        iteration or backward messages), which is how the tests check :meth:`gradient`.

        Args:
            demonstrations: see :func:`validate_demonstrations`.
            reward: ``(S, A)`` reward; or give ``weights`` ``(F,)``; default: the learned one.

        Returns:
            Scalar tensor.
        """
        demos = self._demos(demonstrations)
        reward = self._reward_arg(reward, weights)
        _, sol = self.solve(reward)
        return self._log_likelihood(demos, reward, sol)

    def _log_likelihood(self, demos: Demonstrations, reward, sol) -> torch.Tensor:
        S, A = self.mdp.n_states, self.mdp.n_actions
        L = demos.actions.shape[1]
        mask = demos.mask
        s, a = demos.states[:, :L], demos.actions
        if self.variant == CAUSAL:
            lp = sol.log_policy
            lp_t = lp[torch.arange(L, device=s.device).unsqueeze(0).expand_as(s), s, a] if lp.dim() == 3 else lp[s, a]
            return torch.where(mask, lp_t, torch.zeros_like(lp_t)).sum(-1).mean()
        total = self._return_term(demos, reward, False)
        log_rho = check_action_prior(self.action_prior, S, A, self.mdp.dtype, self.mdp.device)
        if log_rho is not None:
            lr_t = log_rho[s, a]
            total = total + torch.where(mask, lr_t, torch.zeros_like(lr_t)).sum(-1)
        nxt = demos.has_next
        rows = (s * A + a)[nxt]
        p_next = transition_rows(self.mdp, rows).gather(1, demos.states[:, 1:][nxt].unsqueeze(1)).squeeze(1)
        lp_dyn = torch.log(p_next) + math.log(self.mdp.gamma)   # survival of each step
        total = total + torch.zeros_like(total).index_add(0, nxt.nonzero()[:, 0], lp_dyn)
        return (total - sol.V0[demos.states[:, 0]] / self._alpha).mean()

    def gradient(self, demonstrations: Union[Trajectories, Sequence], weights: ArrayLike) -> torch.Tensor:
        r"""Gradient of :meth:`objective` in linear weights: ``(mu_demo - mu_theta) / alpha``, ``(F,)``.

        Feature counts ``mu = sum_{s,a} d(s,a) phi(s,a)``, with ``d_theta`` from
        :meth:`expected_visitation`. (Excludes the ``l2`` penalty.)
        """
        demos = self._demos(demonstrations)
        with torch.no_grad():
            r = self.reward_from_weights(weights)
            mdp_r, sol = self.solve(r)
            d = self.expected_visitation(mdp_r, sol, self._initial(demos))
            d_emp = empirical_visitation(demos, self.mdp)
            return torch.einsum("saf,sa->f", self._phi, d_emp - d) / self._alpha

    # -----------------------------------------------------------------------------------------
    def fit(self, demonstrations: Union[Trajectories, Sequence]) -> MaxEntIRL:
        """Learn a reward from demonstrations (gradient ascent on the log-likelihood).

        Args:
            demonstrations: see :func:`validate_demonstrations`.

        Returns:
            ``self``, with the attributes listed in the class docstring.
        """
        demos = validate_demonstrations(demonstrations, self.mdp)
        mdp, alpha = self.mdp, self._alpha
        d_emp = empirical_visitation(demos, mdp)
        q0 = self._initial(demos)
        phi = self._phi
        mu_emp = torch.einsum("saf,sa->f", phi, d_emp)
        linear = self.reward_model is None
        if linear:
            w0 = torch.zeros(self.n_features, dtype=mdp.dtype, device=mdp.device) if self.init_weights is None \
                else as_tensor("init_weights", self.init_weights, mdp.dtype, mdp.device).clone()
            params = [w0.requires_grad_(False)]
        else:
            params = [p for p in self.reward_model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("reward_model: expected at least one parameter with requires_grad=True, got none")
        history: List[IRLStep] = []
        it = 0
        # linear causal rewards on a finite horizon: the inner loop with everything fixed built once
        sweep = _CausalSweep(self, q0, demos) if linear and _CausalSweep.applies(self) else None
        sol = None
        if self.optimizer == "lbfgs":
            w, it = self._fit_lbfgs(params[0], demos, sweep, q0, mu_emp, history)
            params = [w]
            bar = tqdm(range(0), disable=True)
        else:
            opt = (torch.optim.Adam if self.optimizer == "adam" else torch.optim.SGD)(params, lr=self.lr)
            bar = tqdm(range(self.n_iter + 1), disable=not self.progress, desc=f"MaxEntIRL ({self.variant})")
        for it in bar:
            opt.zero_grad()
            if sweep is not None:
                d_np, ll, _ = sweep(params[0])
                d = torch.from_numpy(d_np)
                r = None
            elif linear:
                with torch.no_grad():
                    r = phi @ params[0]
            else:
                r_graph = self._model_reward()
                r = r_graph.detach()
            if sweep is None:
                with torch.no_grad():
                    mdp_r, sol = self.solve(r)
                    d = self.expected_visitation(mdp_r, sol, q0)
                    ll = float(self._log_likelihood(demos, r, sol))
            if linear:
                g = (mu_emp - torch.einsum("saf,sa->f", phi, d)) / alpha - self.l2 * params[0]
                gap = float(g.abs().max())
            else:
                gap = float((d_emp - d).abs().sum())
            history.append(IRLStep(it, ll, gap))
            bar.set_postfix(loglik=f"{ll:.4g}", gap=f"{gap:.3g}")
            if it == self.n_iter or (linear and gap <= self.tol):
                break
            if linear:
                params[0].grad = -g                                   # ascent
            else:
                r_graph.backward(-(d_emp - d) / alpha)               # chain rule through the module
            opt.step()
        bar.close()
        if sweep is not None or self.optimizer == "lbfgs":
            # the fitted model through the general route (once): Solution, policy and visitation
            with torch.no_grad():
                r = phi @ params[0]
                mdp_r, sol = self.solve(r)
                d = self.expected_visitation(mdp_r, sol, q0)
        self.n_iter_ = it
        self.history_ = history
        self.weights_ = params[0].detach().clone() if linear else None
        self.reward_ = r.detach().clone()
        self.solution_ = sol
        self.policy_ = sol.policy.detach()
        self.visitation_ = d.detach()
        self.empirical_visitation_ = d_emp
        self.feature_expectations_ = torch.einsum("saf,sa->f", phi, self.visitation_)
        self.empirical_feature_expectations_ = mu_emp
        return self

    def _fit_lbfgs(self, w0: torch.Tensor, demos: Demonstrations, sweep: Optional[_CausalSweep], q0: torch.Tensor,
                   mu_emp: torch.Tensor, history: List[IRLStep]) -> Tuple[torch.Tensor, int]:
        """L-BFGS-B on ``-(objective - l2/2 |w|^2)``; returns the weights and the iterations."""
        from scipy.optimize import minimize

        mdp, alpha, phi, l2 = self.mdp, self._alpha, self._phi, self.l2

        def f(w_np):
            w = torch.from_numpy(np.array(w_np, dtype=np.float64)).to(mdp.dtype).to(mdp.device)
            with torch.no_grad():
                if sweep is not None:
                    d_np, ll, v0 = sweep(w)
                    d = torch.from_numpy(d_np)
                else:
                    r = phi @ w
                    mdp_r, sol = self.solve(r)
                    d = self.expected_visitation(mdp_r, sol, q0)
                    ll, v0 = float(self._log_likelihood(demos, r, sol)), float((q0 * sol.V0).sum())
                g = (mu_emp - torch.einsum("saf,sa->f", phi, d)) / alpha - l2 * w
                obj = float((mu_emp @ w - v0) / alpha) - 0.5 * l2 * float(w @ w)
            history.append(IRLStep(len(history), ll, float(g.abs().max())))
            return -obj, -g.detach().cpu().numpy()

        res = minimize(f, w0.detach().cpu().numpy(), jac=True, method="L-BFGS-B",
                       options=dict(maxiter=max(self.n_iter, 1), maxfun=max(10 * self.n_iter, 20), gtol=self.tol,
                                    ftol=0.0, maxcor=20))
        return torch.from_numpy(np.asarray(res.x, dtype=np.float64)).to(mdp.dtype).to(mdp.device), int(res.nit)

    def _fitted(self, name):
        if not hasattr(self, name):
            raise AttributeError(f"MaxEntIRL: {name} is set by fit(); call fit(demonstrations) first")
        return getattr(self, name)
