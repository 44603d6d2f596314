"""Brute-force references for POMDPs: enumerate every hidden path with plain NumPy floats.

They share no code with cai.pomdp: no messages, no belief updates, only sums over
``(s_0..s_T, m_0..m_T, a_0..a_{T-1})`` of products of the model's factors.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from cai import TabularMDP
from cai.pomdp import POMDP, FiniteStateController


def random_pomdp(rng: np.random.Generator, S: int = 3, A: int = 2, n_obs: int = 2, T: int = 3, layout: str = "sa"
                 ) -> POMDP:
    """A random POMDP with every probability positive (or with some zeros in ``Z``)."""
    P = rng.random((S, A, S)) + 0.05
    P /= P.sum(-1, keepdims=True)
    r = rng.normal(size=(S, A, S) if layout == "sas" else (T, S, A) if layout == "tsa" else (S, A))
    Z = rng.random((S, A, n_obs)) + 0.05
    Z /= Z.sum(-1, keepdims=True)
    p0 = rng.random(S) + 0.1
    mdp = TabularMDP(P, r, p0 / p0.sum(), horizon=T, terminal_rewards=rng.normal(size=S), reward_layout=layout)
    return POMDP(mdp, Z)


def random_controller(rng: np.random.Generator, M: int, A: int, n_obs: int) -> FiniteStateController:
    pi = rng.random((M, A)) + 0.05
    eta = rng.random((M, A, n_obs, M)) + 0.05
    m0 = rng.random(M) + 0.1
    return FiniteStateController(pi / pi.sum(-1, keepdims=True), eta / eta.sum(-1, keepdims=True), m0 / m0.sum())


def arrays(pomdp: POMDP):
    mdp = pomdp.mdp
    P = mdp.dense_transitions().numpy()
    Z = pomdp.observations.numpy()
    T = pomdp.horizon
    if mdp.reward_layout == "sas":
        R = [mdp.rewards.numpy()] * T
    elif mdp.reward_layout == "tsa":
        R = [mdp.rewards[t].numpy()[:, :, None].repeat(mdp.n_states, 2) for t in range(T)]
    else:
        R = [mdp.rewards.numpy()[:, :, None].repeat(mdp.n_states, 2)] * T
    return P, Z, R, mdp.terminal_rewards.numpy(), mdp.initial.numpy()


def brute_filter(pomdp: POMDP, actions, observations):
    """``(beliefs, log p(o | a))`` by summing over every state path."""
    P, Z, _, _, p0 = arrays(pomdp)
    S, n = P.shape[0], len(actions)
    beliefs = [p0.copy()]
    evidence = 1.0
    for k in range(1, n + 1):
        w = np.zeros(S)
        for path in itertools.product(range(S), repeat=k + 1):
            p = p0[path[0]]
            for t in range(k):
                p *= P[path[t], actions[t], path[t + 1]] * Z[path[t + 1], actions[t], observations[t]]
            w[path[-1]] += p
        beliefs.append(w / w.sum())
        evidence = w.sum()
    return np.array(beliefs), math.log(evidence)


def brute_controller(pomdp: POMDP, ctrl: FiniteStateController, observations, alpha: float, optimality: bool = True):
    """``(log evidence, state marginals (T+1, S), action marginals (T, A))`` by enumeration."""
    P, Z, R, rT, p0 = arrays(pomdp)
    pi, eta, m0 = (x.numpy() for x in (ctrl.action_probs, ctrl.memory_update, ctrl.initial_memory))
    S, A = P.shape[0], P.shape[1]
    M = pi.shape[0]
    T = pomdp.horizon
    total = 0.0
    ps = np.zeros((T + 1, S))
    pa = np.zeros((T, A))
    for states in itertools.product(range(S), repeat=T + 1):
        for mems in itertools.product(range(M), repeat=T + 1):
            for acts in itertools.product(range(A), repeat=T):
                w = p0[states[0]] * m0[mems[0]]
                for t in range(T):
                    s, m, a, s2, o = states[t], mems[t], acts[t], states[t + 1], observations[t]
                    w *= pi[m, a] * P[s, a, s2] * Z[s2, a, o] * eta[m, a, o, mems[t + 1]]
                    if optimality:
                        w *= math.exp(R[t][s, a, s2] / alpha)
                if optimality:
                    w *= math.exp(rT[states[T]] / alpha)
                total += w
                for t in range(T + 1):
                    ps[t, states[t]] += w
                for t in range(T):
                    pa[t, acts[t]] += w
    return math.log(total), ps / total, pa / total


def brute_history_objective(pomdp: POMDP, policy, alpha: float) -> float:
    """``E[sum_t r + r_T] + alpha E[sum_t H(pi(.|h_t))]`` of a history policy ``policy(h) -> (A,)``.

    Sums over every state path, action sequence and observation sequence (no beliefs).
    """
    P, Z, R, rT, p0 = arrays(pomdp)
    S, A, n_obs = Z.shape[0], Z.shape[1], Z.shape[2]
    T = pomdp.horizon
    total = 0.0

    def rec(t, s, hist, w, acc):
        nonlocal total
        if t == T:
            total += w * (acc + rT[s])
            return
        probs = np.asarray(policy(tuple(hist)), dtype=float)
        ent = -sum(p * math.log(p) for p in probs if p > 0)
        for a in range(A):
            if probs[a] == 0:
                continue
            for s2 in range(S):
                for o in range(n_obs):
                    w2 = w * probs[a] * P[s, a, s2] * Z[s2, a, o]
                    if w2 > 0:
                        rec(t + 1, s2, hist + [a, o], w2, acc + R[t][s, a, s2] + alpha * ent)

    for s in range(S):
        if p0[s] > 0:
            rec(0, s, [], p0[s], 0.0)
    return total


def as_np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
