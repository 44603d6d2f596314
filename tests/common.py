"""Shared fixtures and brute-force references.

The references here enumerate every trajectory of a tiny MDP and share no code with cai: they
work on plain Python floats / NumPy, accumulate in log space with their own logsumexp, and model
the discount literally as death (an absorbing state worth 0 entered with probability
``1 - gamma`` after each reward is earned).
"""
from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np
import torch

import cai


def random_tiny_mdp(rng: np.random.Generator, S: int = 3, A: int = 2, T: Optional[int] = 3,
                    discount=None, deterministic: bool = False, layout: str = "sa",
                    terminal: bool = True, forbid: bool = False, scale: float = 1.0, sparsity: float = 0.0):
    """A random MDP small enough to enumerate. Returns numpy arrays and the TabularMDP."""
    if deterministic:
        P = np.zeros((S, A, S))
        nxt = rng.integers(0, S, size=(S, A))
        P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    else:
        P = rng.random((S, A, S)) + 0.05
        if sparsity > 0:
            P *= rng.random((S, A, S)) > sparsity
            P[np.arange(S), :, np.arange(S)] += 0.1  # keep every row non-empty
        P /= P.sum(-1, keepdims=True)
    shape = {"sa": (S, A), "tsa": (T, S, A), "sas": (S, A, S), "s": (S,)}[layout]
    r = scale * rng.standard_normal(shape)
    if forbid and layout == "sa":
        r[0, 0] = -np.inf
    rT = scale * rng.standard_normal(S) if terminal else np.zeros(S)
    p0 = rng.random(S) + 0.1
    p0 /= p0.sum()
    mdp = cai.TabularMDP(P, r, p0, horizon=T, discount=discount, terminal_rewards=rT, reward_layout=layout)
    return dict(P=P, r=r, rT=rT, p0=p0, T=T, gamma=1.0 if discount is None else discount, layout=layout), mdp


def _lse(xs):
    xs = [x for x in xs if x != -math.inf]
    if not xs:
        return -math.inf
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _reward(d, t, s, a, s_next):
    lay = d["layout"]
    r = d["r"]
    if lay == "sa":
        return r[s, a]
    if lay == "s":
        return r[s]
    if lay == "tsa":
        return r[t, s, a]
    return r[s, a, s_next]


def enumerate_paths(d, policy=None, prior=None):
    """Yield ``(log_weight, log_q, rewards_sum, states, actions, alive_until)`` for every path.

    A path is a prefix ``s_0 a_0 s_1 ... a_k s_{k+1}`` that either dies during transition ``k``
    (``k < T``) or survives all ``T`` steps (``alive_until = T``).
    ``log_weight`` is ``log`` of ``p0 prod rho P x death/survival`` (the prior path measure,
    the counting measure when ``prior is None``); ``log_q`` the same with ``policy`` in place
    of ``rho``; ``rewards_sum`` includes ``r_T`` for survivors.
    """
    P, p0, T, g = d["P"], d["p0"], d["T"], d["gamma"]
    S, A = P.shape[0], P.shape[1]
    logp = lambda x: math.log(x) if x > 0 else -math.inf  # noqa: E731

    def rec(t, states, actions, lw, lq, R):
        s = states[-1]
        if t == T:
            yield lw + (T * 0.0), lq, R + d["rT"][s], states, actions, T
            return
        for a in range(A):
            lr = 0.0 if prior is None else logp(prior[s, a])
            lpi = 0.0 if policy is None else logp(policy[t][s, a])
            for s2 in range(S):
                if P[s, a, s2] == 0:
                    continue
                rr = _reward(d, t, s, a, s2)
                base_w = lw + lr + math.log(P[s, a, s2])
                base_q = lq + lpi + math.log(P[s, a, s2])
                if g < 1:  # die after earning the reward of step t
                    yield (base_w + math.log(1 - g), base_q + math.log(1 - g), R + rr,
                           states + [s2], actions + [a], t)
                    yield from rec(t + 1, states + [s2], actions + [a], base_w + math.log(g),
                                   base_q + math.log(g), R + rr)
                else:
                    yield from rec(t + 1, states + [s2], actions + [a], base_w, base_q, R + rr)

    for s0 in range(S):
        if p0[s0] > 0:
            yield from rec(0, [s0], [], math.log(p0[s0]), math.log(p0[s0]), 0.0)


def brute_force(d, alpha: float, prior=None):
    """Log evidence and posterior marginals by enumerating every path.

    Returns:
        dict with ``log_evidence`` (float), ``state`` ``(T+1, S)`` and ``state_action``
        ``(T, S, A)`` posterior marginals of being alive there, and ``next_given_sa``
        ``(T, S, A, S)`` posterior transition probabilities (alive at t+1 | s_t, a_t, O).
    """
    P, T = d["P"], d["T"]
    S, A = P.shape[0], P.shape[1]
    paths = list(enumerate_paths(d, prior=prior))
    logs = [lw + R / alpha for lw, _, R, *_ in paths]
    logZ = _lse(logs)
    state = np.zeros((T + 1, S))
    sa = np.zeros((T, S, A))
    trans = np.zeros((T, S, A, S))
    for (_, _, _, states, actions, until), lg in zip(paths, logs):
        w = math.exp(lg - logZ)
        for t in range(len(actions)):
            sa[t, states[t], actions[t]] += w
        alive_states = states if until == T else states[:-1]
        for t, s in enumerate(alive_states):
            state[t, s] += w
        for t in range(len(actions)):
            if t + 1 < len(alive_states):
                trans[t, states[t], actions[t], states[t + 1]] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = trans / sa[..., None]
    return dict(log_evidence=logZ, state=state, state_action=sa, next_given_sa=cond)


def brute_elbo(d, policy, alpha: float, prior=None):
    """``(1/alpha) E_q[sum_t r_t + r_T - alpha log(pi/rho)]`` by enumeration, and ``E_q`` visitation."""
    P = d["P"]
    S, A = P.shape[0], P.shape[1]
    total = 0.0
    visit = np.zeros((S, A))
    for _, lq, R, states, actions, _ in enumerate_paths(d, policy=policy, prior=prior):
        q = math.exp(lq)
        if q == 0:
            continue
        kl = 0.0
        for t, (s, a) in enumerate(zip(states, actions)):
            lr = 0.0 if prior is None else math.log(prior[s, a])
            kl += math.log(policy[t][s, a]) - lr
            visit[s, a] += q
        total += q * (R / alpha - kl)
    return total, visit


def brute_hard_value(d):
    """Optimal expected return ``max_pi E[sum r + r_T]`` over deterministic Markov policies."""
    P, T = d["P"], d["T"]
    S, A = P.shape[0], P.shape[1]
    best = -math.inf
    for choice in itertools.product(range(A), repeat=S * T):
        pol = np.zeros((T, S, A))
        pol[np.repeat(np.arange(T), S), np.tile(np.arange(S), T), np.asarray(choice)] = 1.0
        ret = 0.0
        for _, lq, R, *_ in enumerate_paths(d, policy=pol):
            if lq > -math.inf:
                ret += math.exp(lq) * R
        best = max(best, ret)
    return best


def t64(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def assert_png(fig_or_ax, path, dpi: int = 60) -> bytes:
    """Save a figure (or an Axes' figure) as PNG, close it, and check it is a real, non-blank image."""
    import matplotlib.pyplot as plt

    fig = fig_or_ax if hasattr(fig_or_ax, "savefig") else fig_or_ax.figure
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = plt.imread(path)
    assert img.shape[0] > 20 and img.shape[1] > 20
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 5     # not a blank canvas
    return data
