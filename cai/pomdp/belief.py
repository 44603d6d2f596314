r"""The belief MDP of a short-horizon POMDP, solved exactly over its tree of reachable beliefs.

Every history ``h_t = (a_0, o_1, ..., a_{t-1}, o_t)`` of positive probability has a belief
``b_h = p(s_t | h_t)``; :class:`BeliefTree` enumerates them depth by depth (``(A O)^t`` nodes at
most at depth ``t``; branches of probability 0 are pruned). On the tree the POMDP is an MDP whose
states are histories, with reward ``rho(b, a) = sum_s b(s) r(s, a)`` and transitions
``p(o | h, a) = sum_{s'} Z(o | s', a) sum_s P(s' | s, a) b(s)``. Soft value iteration on it::

    Q(h, a) = rho(b_h, a) + sum_o p(o | h, a) V(h a o)           V(h_T) = sum_s b(s) r_T(s)
    V(h)    = alpha log sum_a rho(a) exp(Q(h, a) / alpha)         (hard: max_a Q(h, a))

gives the policy ``pi(a | h) ∝ rho(a) exp(Q(h, a) / alpha)`` that maximises
``E[sum_t r(s_t, a_t) + alpha H(pi(. | h_t))]`` (minus ``alpha KL(pi || rho)`` under a
normalised prior) among all observation-history policies: the MaxEnt RL solution of the POMDP.
It is *not* the posterior of the POMDP's graphical model conditioned on optimality, whose actions
may depend on the hidden state (the optimism of exact inference, ``docs/guide/pomdp.md``). With
``alpha -> 0`` it tends to the hard POMDP solution (:func:`belief_value_iteration`); the gap is
at most ``alpha T log A``.

References:
    Kaelbling, Littman & Cassandra (1998), §3 (the belief MDP); Levine (2018), §4 (soft value
    iteration); Smallwood & Sondik (1973) (finite-horizon POMDPs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from cai.mdp.checks import ROW_SUM_TOL, as_tensor, check_alpha, check_positive_int
from cai.ops.backup import EXPECTATION, q_backup
from cai.pomdp.model import POMDP, FiniteStateController
from cai.typing import Alpha, ArrayLike

__all__ = ["BeliefTree", "BeliefSolution", "belief_soft_value_iteration", "belief_value_iteration", "MAX_NODES",
           "MAX_CONTROLLER_NODES"]

#: the largest tree :class:`BeliefTree` builds (nodes over all depths)
MAX_NODES = 2_000_000

#: the largest tree :meth:`BeliefSolution.controller` turns into a controller
MAX_CONTROLLER_NODES = 2_000


class BeliefTree:
    """Every reachable history of a POMDP up to its horizon, with its belief.

    Nodes are numbered depth by depth: node ``i`` of depth ``t`` is ``(t, i)``.

    Args:
        pomdp: a :class:`~cai.pomdp.POMDP`; the tree's depth is its horizon.
        max_nodes: refuse trees with more nodes than this.

    Attributes:
        pomdp: the POMDP.
        horizon: ``T``.
        beliefs: list of ``T+1`` tensors ``(n_t, S)``.
        obs_probs: list of ``T`` tensors ``(n_t, A, O)``: ``p(o | h, a)``.
        children: list of ``T`` long tensors ``(n_t, A, O)``: index of the child at depth
            ``t+1``, ``-1`` where ``p(o | h, a) = 0``.
        parent: list of ``T+1`` long tensors ``(n_t, 3)``: ``(parent index, a, o)``
            (``-1`` rows at the root).

    Raises:
        ValueError: a tree of more than ``max_nodes`` nodes.
    """

    def __init__(self, pomdp: POMDP, *, max_nodes: int = MAX_NODES) -> None:
        if not isinstance(pomdp, POMDP):
            raise TypeError(f"BeliefTree: pomdp: expected a cai.pomdp.POMDP, got {type(pomdp).__name__}")
        pomdp.check_unchanged("BeliefTree")
        T = pomdp.horizon
        max_nodes = check_positive_int("max_nodes", max_nodes)
        P, Z = pomdp.mdp.dense_transitions(), pomdp.observations
        A, n_obs = pomdp.n_actions, pomdp.n_observations
        b = pomdp.initial_belief.unsqueeze(0)
        beliefs, obs_probs, children = [b], [], []
        parent = [torch.full((1, 3), -1, dtype=torch.long)]
        total = 1
        for _t in range(T):
            n = b.shape[0]
            pred = torch.einsum("ns,sap->nap", b, P)                        # p(s' | h, a)
            joint = pred.unsqueeze(-1) * Z.permute(1, 0, 2).unsqueeze(0)     # (n, A, S', O)
            p_o = joint.sum(2)                                              # (n, A, O)
            keep = p_o > 0
            k = int(keep.sum())
            total += k
            if total > max_nodes:
                raise ValueError(f"BeliefTree: horizon: the tree of horizon {T} has more than max_nodes={max_nodes} "
                                 f"nodes; use a shorter horizon")
            idx = torch.full((n, A, n_obs), -1, dtype=torch.long)
            idx[keep.cpu()] = torch.arange(k)
            nz = keep.nonzero()
            child_b = joint[nz[:, 0], nz[:, 1], :, nz[:, 2]] / p_o[keep].unsqueeze(-1)
            obs_probs.append(p_o)
            children.append(idx)
            parent.append(nz.cpu())
            beliefs.append(child_b)
            b = child_b
        self.pomdp, self.horizon = pomdp, T
        self.beliefs, self.obs_probs, self.children, self.parent = beliefs, obs_probs, children, parent

    @property
    def n_nodes(self) -> int:
        """Number of nodes over all depths."""
        return sum(b.shape[0] for b in self.beliefs)

    def history(self, t: int, i: int) -> Tuple[int, ...]:
        """The history ``(a_0, o_1, ..., a_{t-1}, o_t)`` of node ``(t, i)``."""
        out: List[int] = []
        while t > 0:
            p, a, o = (int(v) for v in self.parent[t][i])
            out[:0] = [a, o]
            t, i = t - 1, p
        return tuple(out)

    def find(self, history: Tuple[int, ...]) -> Tuple[int, int]:
        """``(t, i)`` of the node of a history ``(a_0, o_1, ...)``.

        Raises:
            ValueError: a history of odd length, out of range, or of probability 0.
        """
        h = tuple(int(v) for v in history)
        if len(h) % 2 or len(h) // 2 > self.horizon:
            raise ValueError(f"history: expected pairs (a, o) for at most {self.horizon} steps, got {h}")
        i = 0
        for t in range(len(h) // 2):
            a, o = h[2 * t], h[2 * t + 1]
            if not (0 <= a < self.pomdp.n_actions and 0 <= o < self.pomdp.n_observations):
                raise ValueError(f"history: expected actions in [0, {self.pomdp.n_actions}) and observations in "
                                 f"[0, {self.pomdp.n_observations}), got {h}")
            i = int(self.children[t][i, a, o])
            if i < 0:
                raise ValueError(f"history: {h} has probability 0")
        return len(h) // 2, i

    def __repr__(self) -> str:
        return f"BeliefTree(horizon={self.horizon}, nodes={self.n_nodes})"


@dataclass(frozen=True)
class BeliefSolution:
    """Soft (or hard) value iteration on a :class:`BeliefTree`.

    Attributes:
        tree: the :class:`BeliefTree`.
        alpha: the temperature (0.0 for the hard solution).
        values: list of ``T+1`` tensors ``(n_t,)``: ``V(h)``.
        q_values: list of ``T`` tensors ``(n_t, A)``: ``Q(h, a)``.
        policy: list of ``T`` tensors ``(n_t, A)``: ``pi(a | h)`` (hard: uniform over the
            maximisers).
    """

    tree: BeliefTree
    alpha: float
    values: List[torch.Tensor]
    q_values: List[torch.Tensor]
    policy: List[torch.Tensor]

    @property
    def value(self) -> torch.Tensor:
        """``V`` at the root (the initial belief), 0-dim."""
        return self.values[0][0]

    def policy_at(self, history: Tuple[int, ...]) -> torch.Tensor:
        """``pi(. | h)`` ``(A,)`` for a history ``(a_0, o_1, ..., a_{t-1}, o_t)`` with ``t < T``."""
        t, i = self.tree.find(history)
        if t >= self.tree.horizon:
            raise ValueError(f"history: expected a history of fewer than {self.tree.horizon} steps, got {tuple(history)}")
        return self.policy[t][i]

    def controller(self) -> FiniteStateController:
        """The policy as a :class:`~cai.pomdp.FiniteStateController` with one memory node per history.

        Memory nodes are numbered depth by depth (node ``(t, i)`` is ``sum_{u<t} n_u + i``); the
        update moves deterministically to the child; pruned branches and the last depth stay put
        (they are never used). Last-depth nodes act uniformly (no decision is left).

        Raises:
            ValueError: a tree of more than :data:`MAX_CONTROLLER_NODES` nodes (the dense
                ``(M, A, O, M)`` update would not fit in memory).
        """
        tree = self.tree
        A, n_obs = tree.pomdp.n_actions, tree.pomdp.n_observations
        sizes = [b.shape[0] for b in tree.beliefs]
        offs = [sum(sizes[:t]) for t in range(len(sizes))]
        M = sum(sizes)
        if M > MAX_CONTROLLER_NODES:
            raise ValueError(f"controller: the tree has {M} nodes, more than MAX_CONTROLLER_NODES="
                             f"{MAX_CONTROLLER_NODES} (a dense (M, A, O, M) memory update); use a shorter horizon")
        dt = self.values[0].dtype
        pi = torch.full((M, A), 1.0 / A, dtype=dt)
        eta = torch.zeros(M, A, n_obs, M, dtype=dt)
        for t in range(tree.horizon + 1):
            ids = torch.arange(sizes[t]) + offs[t]
            if t < tree.horizon:
                pi[ids] = self.policy[t].cpu()
                ch = tree.children[t]
                target = torch.where(ch >= 0, ch + offs[t + 1], ids.view(-1, 1, 1).expand_as(ch))
                eta[ids.view(-1, 1, 1), torch.arange(A).view(1, -1, 1), torch.arange(n_obs).view(1, 1, -1), target] = 1.0
            else:
                eta[ids, :, :, ids] = 1.0
        return FiniteStateController(pi, eta, dtype=dt)


def _expected_rewards(pomdp: POMDP) -> List[torch.Tensor]:
    """``(S, A)`` expected immediate reward of each step (``-inf`` for forbidden actions)."""
    mdp = pomdp.mdp
    zero = torch.zeros(mdp.n_states, dtype=mdp.dtype, device=mdp.device)
    one = torch.ones((), dtype=mdp.dtype, device=mdp.device)
    return [q_backup(mdp, t, zero, one, EXPECTATION) for t in range(pomdp.horizon)]


def _solve(tree: BeliefTree, alpha: Optional[torch.Tensor], log_prior: Optional[torch.Tensor]) -> BeliefSolution:
    pomdp = tree.pomdp
    r = _expected_rewards(pomdp)
    T = tree.horizon
    V = [None] * (T + 1)
    Q, pol = [None] * T, [None] * T
    V[T] = tree.beliefs[T] @ pomdp.mdp.terminal_rewards
    for t in range(T - 1, -1, -1):
        b = tree.beliefs[t]
        rt = r[t]
        # rho(b, a) = sum_s b(s) r(s, a); a forbidden action with positive belief is -inf
        rho = torch.where(b.unsqueeze(-1) > 0, b.unsqueeze(-1) * torch.where(torch.isneginf(rt), 0.0, rt), 0.0).sum(1)
        forbidden = ((b.unsqueeze(-1) > 0) & torch.isneginf(rt).unsqueeze(0)).any(1)
        ch = tree.children[t]
        Vc = torch.where(ch >= 0, V[t + 1][ch.clamp(min=0)], torch.zeros((), dtype=b.dtype))
        q = rho + (tree.obs_probs[t] * Vc).sum(-1)
        q = torch.where(forbidden, torch.tensor(-math.inf, dtype=q.dtype), q)
        Q[t] = q
        if alpha is None:
            best = q.max(-1, keepdim=True).values
            if log_prior is not None:
                q_ok = torch.where(torch.isneginf(log_prior), torch.tensor(-math.inf, dtype=q.dtype), q)
                best = q_ok.max(-1, keepdim=True).values
            else:
                q_ok = q
            arg = (q_ok >= best - 1e-12 * (1 + best.abs())).to(q.dtype)
            pol[t] = arg / arg.sum(-1, keepdim=True)
            V[t] = best.squeeze(-1)
        else:
            logits = q / alpha + (0.0 if log_prior is None else log_prior)
            lse = torch.logsumexp(logits, -1)
            V[t] = alpha * lse
            pol[t] = torch.exp(logits - lse.unsqueeze(-1))
    return BeliefSolution(tree, 0.0 if alpha is None else float(alpha), V, Q, pol)


def _prior(action_prior, pomdp: POMDP) -> Optional[torch.Tensor]:
    if action_prior is None:
        return None
    p = as_tensor("action_prior", action_prior, pomdp.mdp.dtype, pomdp.mdp.device)
    if tuple(p.shape) != (pomdp.n_actions,):
        raise ValueError(f"action_prior: expected a distribution of shape (A,) = ({pomdp.n_actions},) (the same at "
                         f"every belief), got shape {tuple(p.shape)}")
    if bool((p < 0).any()) or not bool(torch.isfinite(p).all()) or abs(float(p.sum()) - 1) > ROW_SUM_TOL:
        raise ValueError("action_prior: expected a distribution (non-negative, summing to 1), got "
                         f"{p.tolist()}")
    return torch.log(p)


def belief_soft_value_iteration(pomdp: POMDP, alpha: Alpha = 1.0, action_prior: Optional[ArrayLike] = None, *,
                                tree: Optional[BeliefTree] = None) -> BeliefSolution:
    """Soft value iteration on the belief tree: the MaxEnt observation-history policy of a POMDP.

    Args:
        pomdp: a :class:`~cai.pomdp.POMDP`.
        alpha: temperature > 0 (a scalar).
        action_prior: ``None`` (counting measure: the entropy bonus ``alpha H``) or an ``(A,)``
            distribution (the cost ``alpha KL(pi || rho)``).
        tree: a :class:`BeliefTree` of ``pomdp`` to reuse (built when ``None``).

    Returns:
        :class:`BeliefSolution`; ``solution.value`` is ``V`` at the initial belief.

    Raises:
        ValueError: a non-scalar or non-positive ``alpha``, a bad prior, a tree of another POMDP,
            or a tree too large (:data:`MAX_NODES`).
    """
    a = check_alpha(alpha, pomdp.mdp.dtype, pomdp.mdp.device) if isinstance(pomdp, POMDP) else None
    if a is not None and a.dim() != 0:
        raise ValueError(f"belief_soft_value_iteration: alpha: expected a scalar temperature, got shape {tuple(a.shape)}")
    tree = _tree(pomdp, tree, "belief_soft_value_iteration")
    return _solve(tree, a, _prior(action_prior, pomdp))


def belief_value_iteration(pomdp: POMDP, *, tree: Optional[BeliefTree] = None) -> BeliefSolution:
    """Hard (expected-reward) value iteration on the belief tree: the optimal POMDP policy.

    Args:
        pomdp: a :class:`~cai.pomdp.POMDP`.
        tree: a :class:`BeliefTree` of ``pomdp`` to reuse.

    Returns:
        :class:`BeliefSolution` with ``alpha = 0`` and a policy uniform over the maximisers.
    """
    tree = _tree(pomdp, tree, "belief_value_iteration")
    return _solve(tree, None, None)


def _tree(pomdp, tree, fn) -> BeliefTree:
    if not isinstance(pomdp, POMDP):
        raise TypeError(f"{fn}: pomdp: expected a cai.pomdp.POMDP, got {type(pomdp).__name__}")
    if tree is None:
        return BeliefTree(pomdp)
    if not isinstance(tree, BeliefTree) or tree.pomdp is not pomdp:
        raise ValueError(f"{fn}: tree: expected a BeliefTree built from this pomdp, got {tree!r}")
    return tree
