"""The action-marginalised operator M (built once, in cai.ops.backup.action_operator) and the
successor modes of the backup, against direct references."""
import numpy as np
import pytest
import torch

from cai.ops.backup import (
    EXACT,
    EXPECTATION,
    EXPECTED,
    LOG_EXPECTATION,
    action_log_weights,
    action_operator,
    q_backup,
    successor_mode,
)
from cai.worlds.builders import random_mdp

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def _loops(w, P, per_successor=False):
    """``M[..., s, s'] = sum_a w(s, a[, s']) P(s'|s, a)`` by explicit loops (NumPy)."""
    w, P = np.asarray(w), np.asarray(P)
    S, A, _ = P.shape
    M = np.zeros(w.shape[:-3 if per_successor else -2] + (S, S))
    for s in range(S):
        for t in range(S):
            for a in range(A):
                M[..., s, t] += (w[..., s, a, t] if per_successor else w[..., s, a]) * P[s, a, t]
    return M


def test_dense_batched_per_successor_and_csr_against_loops():
    rng = np.random.default_rng(3)
    mdp = random_mdp(6, 3, 3, seed=5, horizon=2)
    P = mdp.transitions
    w = torch.as_tensor(rng.random((6, 3)))
    wb = torch.as_tensor(rng.random((2, 6, 3)))
    ws = torch.as_tensor(rng.random((6, 3, 6)))
    np.testing.assert_allclose(action_operator(w, P).numpy(), _loops(w, P), rtol=1e-14, atol=0)
    np.testing.assert_allclose(action_operator(wb, P).numpy(), _loops(wb, P), rtol=1e-14, atol=0)
    np.testing.assert_allclose(action_operator(ws, P, per_successor=True).numpy(), _loops(ws, P, True),
                               rtol=1e-14, atol=0)
    sparse = random_mdp(6, 3, 3, seed=5, horizon=2, sparse=True)
    M = action_operator(w, sparse.transitions)
    assert M.layout == torch.sparse_csr
    np.testing.assert_allclose(M.to_dense().numpy(), _loops(w, sparse.dense_transitions()), rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="weights"):
        action_operator(wb, sparse.transitions)


def test_successor_modes_and_their_old_spellings():
    assert successor_mode("exact") == LOG_EXPECTATION == EXACT
    assert successor_mode("expected") == EXPECTATION == EXPECTED
    assert LOG_EXPECTATION != "exact"          # not the method name "exact": the two cannot be confused
    mdp = random_mdp(5, 2, 2, seed=1, horizon=3, discount=0.9)
    v = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = torch.tensor(0.7, dtype=torch.float64)
    for new, old in ((LOG_EXPECTATION, "exact"), (EXPECTATION, "expected")):
        torch.testing.assert_close(q_backup(mdp, 0, v, a, old), q_backup(mdp, 0, v, a, new), rtol=0, atol=0)
    for bad in ("soft_vi", "log-expectation", None):
        with pytest.raises(ValueError, match="mode"):
            q_backup(mdp, 0, v, a, bad)


def test_action_log_weights_against_the_formula():
    rng = np.random.default_rng(4)
    r = rng.standard_normal((5, 3))
    r[0, 1] = -np.inf                                   # a forbidden action stays -inf
    rs = rng.standard_normal((5, 3, 5))
    rho = rng.random((5, 3)) + 0.1
    rho /= rho.sum(-1, keepdims=True)
    lp = torch.as_tensor(np.log(rho))
    got = action_log_weights(torch.as_tensor(r), 0.7, lp).numpy()
    np.testing.assert_array_equal(got, r / 0.7 + np.log(rho))
    np.testing.assert_array_equal(action_log_weights(torch.as_tensor(r), 0.7, None).numpy(), r / 0.7)
    got = action_log_weights(torch.as_tensor(rs), 0.7, lp, per_successor=True).numpy()
    np.testing.assert_array_equal(got, rs / 0.7 + np.log(rho)[:, :, None])
