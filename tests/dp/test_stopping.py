"""Stationary solvers stop by a bound that guarantees their tolerance (issue 14, item 4).

The reference fixed point is independent of every iteration under test: the optimal policy's
values from a direct ``np.linalg.solve`` of ``(I - gamma P_pi) V = r_pi``, certified optimal by
its own Bellman residual (the backup of ``V*`` must return ``V*`` to rounding).
"""
import math

import numpy as np
import pytest
import torch

import cai
from cai.ops.recursion import span_bounds
from cai.worlds import random_mdp


def _arrays(mdp):
    P = mdp.transitions.detach().numpy()                     # (S, A, S)
    r = mdp.rewards.detach().numpy()                         # (S, A)
    return P, r, mdp.gamma


def _soft_backup(P, r, g, v, alpha):
    Q = r + g * P @ v
    if alpha == 0:
        return Q.max(1), Q
    m = Q.max(1, keepdims=True)
    return (m + alpha * np.log(np.exp((Q - m) / alpha).sum(1, keepdims=True)))[:, 0], Q


def _fixed_point(mdp, alpha):
    """``V*`` by a linear solve of the optimal (hard: greedy, soft: soft-greedy) policy's values.

    The optimal policy is found by policy iteration written here in NumPy (a different
    algorithm from every solver under test), each evaluation an ``np.linalg.solve``."""
    P, r, g = _arrays(mdp)
    S, A = r.shape
    v = np.zeros(S)
    for _ in range(200):
        V1, Q = _soft_backup(P, r, g, v, alpha)
        if alpha == 0:
            pi = np.eye(A)[Q.argmax(1)]
            r_pi = (pi * r).sum(1)
        else:
            pi = np.exp((Q - V1[:, None]) / alpha)
            r_pi = (pi * (r - alpha * np.log(pi))).sum(1)
        P_pi = np.einsum("sa,sat->st", pi, P)
        v_new = np.linalg.solve(np.eye(S) - g * P_pi, r_pi)
        if np.abs(v_new - v).max() < 1e-13 * max(1, np.abs(v_new).max()):
            v = v_new
            break
        v = v_new
    # certified: V* is (to rounding) its own backup
    assert np.abs(_soft_backup(P, r, g, v, alpha)[0] - v).max() < 1e-11 * max(1, np.abs(v).max())
    return torch.from_numpy(v)


GARNETS = [(40, 3, 4, 0, 0.9), (60, 4, 6, 1, 0.99), (30, 2, 30, 2, 0.95)]   # (S, A, branching, seed, gamma)


@pytest.mark.parametrize("S,A,br,seed,gamma", GARNETS)
@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
def test_value_iteration_is_within_tol_of_the_fixed_point(S, A, br, seed, gamma, alpha, tol):
    mdp = random_mdp(S, A, br, seed=seed, horizon=None, discount=gamma)
    v_star = _fixed_point(mdp, alpha)
    sol = cai.value_iteration(mdp, tol=tol) if alpha == 0 else cai.soft_value_iteration(mdp, alpha, tol=tol)
    scale = max(1.0, v_star.abs().max().item())
    err = (sol.V - v_star).abs().max().item()
    assert err <= tol * scale * (1 + 1e-6) + 1e-12
    assert sol.error_bound <= tol * max(1.0, sol.V.abs().max().item())
    assert err <= sol.error_bound + 1e-12             # the reported bound is a bound
    # V = aggregate(Q) holds exactly after the midpoint shift, and the policy is the aggregate's
    V_agg = sol.Q.amax(-1) if alpha == 0 else alpha * torch.logsumexp(sol.Q / alpha, -1)
    torch.testing.assert_close(V_agg, sol.V, atol=1e-12, rtol=0)


def test_the_span_rule_stops_sooner_than_the_sup_norm_rule_on_a_mixing_mdp():
    """Dense Garnet dynamics mix fast: the span of the residual collapses long before its sup
    norm; the iteration count is well below ``log(tol (1-gamma)) / log(gamma)`` (the sup-norm
    rule's), and the answer is still within tol."""
    mdp = random_mdp(100, 4, 100, seed=3, horizon=None, discount=0.9)
    sol = cai.value_iteration(mdp, tol=1e-8)
    sup_rule = math.log(1e-8 * 0.1 / 10) / math.log(0.9)     # ~240 iterations
    assert sol.iterations < sup_rule / 4
    assert (sol.V - _fixed_point(mdp, 0.0)).abs().max().item() <= 1e-8 * sol.V.abs().max().item()


def test_policy_evaluation_is_within_tol_of_the_linear_solve():
    mdp = random_mdp(30, 3, 5, seed=4, horizon=None, discount=0.95)
    P, r, g = _arrays(mdp)
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=30)
    alpha = 0.3
    v_ref = np.linalg.solve(np.eye(30) - g * np.einsum("sa,sat->st", pi, P), (pi * (r - alpha * np.log(pi))).sum(1))
    for tol in (1e-4, 1e-9):
        sol = cai.soft_policy_evaluation(mdp, pi, alpha, tol=tol)
        err = np.abs(sol.V.numpy() - v_ref).max()
        assert err <= sol.error_bound + 1e-12 and sol.error_bound <= tol * max(1, np.abs(v_ref).max())


def test_span_bounds_bracket_the_fixed_point_from_any_point():
    mdp = random_mdp(20, 3, 4, seed=5, horizon=None, discount=0.8)
    P, r, g = _arrays(mdp)
    v_star = _fixed_point(mdp, 0.0).numpy()
    v = np.random.default_rng(1).normal(size=20) * 5
    Bv = _soft_backup(P, r, g, v, 0.0)[0]
    shift, bound = span_bounds(torch.from_numpy(Bv - v), g)
    k = g / (1 - g)
    assert np.all(Bv + k * (Bv - v).min() <= v_star + 1e-12) and np.all(v_star <= Bv + k * (Bv - v).max() + 1e-12)
    assert np.abs(Bv + shift.numpy() - v_star).max() <= bound + 1e-12
    assert bound > 0.1                                   # (a real test: far from the optimum)


@pytest.mark.parametrize("alpha", [None, 0.5])
@pytest.mark.parametrize("S,A,br,seed,gamma", GARNETS)
def test_policy_iteration_and_modified_policy_iteration_reach_the_fixed_point(S, A, br, seed, gamma, alpha):
    mdp = random_mdp(S, A, br, seed=seed, horizon=None, discount=gamma)
    v_star = _fixed_point(mdp, 0.0 if alpha is None else alpha)
    scale = max(1.0, v_star.abs().max().item())
    pi_sol = cai.policy_iteration(mdp, alpha)
    mpi = cai.modified_policy_iteration(mdp, alpha, sweeps=5, tol=1e-9)
    torch.testing.assert_close(pi_sol.V, v_star, atol=1e-10 * scale, rtol=0)
    assert (mpi.V - v_star).abs().max().item() <= mpi.error_bound + 1e-12 <= 1e-9 * scale + 1e-12
    assert pi_sol.method == ("policy_iteration" if alpha is None else "soft_policy_iteration")
    assert mpi.method == ("modified_policy_iteration" if alpha is None else "soft_modified_policy_iteration")
    assert pi_sol.iterations <= 10                       # (Howard: a handful of improvements)
    vi = cai.value_iteration(mdp) if alpha is None else cai.soft_value_iteration(mdp, alpha)
    torch.testing.assert_close(pi_sol.policy, vi.policy, atol=1e-8, rtol=0)
    if alpha is not None:                                 # the same answer as the existing soft PI
        torch.testing.assert_close(cai.soft_policy_iteration(mdp, alpha).V, pi_sol.V, atol=1e-9 * scale, rtol=0)
        torch.testing.assert_close(mpi.max_elbo, vi.max_elbo, atol=1e-8, rtol=0)


def test_policy_iteration_batch_and_starting_policy_and_sparse():
    mdp = random_mdp(25, 3, 4, seed=6, horizon=None, discount=0.9)
    alphas = torch.tensor([0.2, 1.0], dtype=torch.float64)
    batch = cai.policy_iteration(mdp, alphas)
    for i, a in enumerate(alphas.tolist()):
        torch.testing.assert_close(batch.V[i], _fixed_point(mdp, a), atol=1e-10, rtol=0)
    start = torch.full((25, 3), 1 / 3, dtype=torch.float64)
    torch.testing.assert_close(cai.policy_iteration(mdp, policy=start).V, _fixed_point(mdp, 0.0), atol=1e-10, rtol=0)
    sp = random_mdp(25, 3, 4, seed=6, horizon=None, discount=0.9, sparse=True)
    torch.testing.assert_close(cai.policy_iteration(sp).V, cai.policy_iteration(mdp).V, atol=1e-10, rtol=0)
    torch.testing.assert_close(cai.modified_policy_iteration(sp, 0.5).V, _fixed_point(mdp, 0.5), atol=1e-8, rtol=0)


def test_policy_iteration_bad_input():
    stat = random_mdp(5, 2, 2, seed=0, horizon=None, discount=0.9)
    with pytest.raises(ValueError, match="stationary"):
        cai.policy_iteration(random_mdp(5, 2, 2, seed=0, horizon=4))
    with pytest.raises(ValueError, match="action_prior"):
        cai.policy_iteration(stat, None, np.full((5, 2), 0.5))
    with pytest.raises(ValueError, match="sweeps"):
        cai.modified_policy_iteration(stat, sweeps=-1)
    with pytest.raises(ValueError, match="tol"):
        cai.policy_iteration(stat, tol=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        cai.policy_iteration(stat, -1.0)
