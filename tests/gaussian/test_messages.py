"""Linear-Gaussian control as inference, checked against independent references.

References used here (none of them calls the code under test):
- the textbook discrete-time LQR Riccati recursion and ``scipy.linalg.solve_discrete_are``;
- brute-force numerical quadrature of one soft / exact backup in 1-D (the normalising constants);
- Monte Carlo rollouts of the soft-VI policy (forward messages);
- the exponential-family identity: the gradient of the log partition w.r.t. the reward's
  natural parameters is (1/alpha) times the posterior expected sufficient statistics.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import cai
from cai.gaussian.messages import (
    lg_backward_messages,
    lg_forward_messages,
    lg_soft_value_iteration,
)
from cai.mdp.linear_gaussian import LinearGaussianSystem


@pytest.fixture(autouse=True)
def _float64_default():
    """Build every tensor of these tests in float64, and restore the global default afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_system(n=3, m=2, T=6, seed=0, noise=0.05, linear=True, horizon=None):
    g = torch.Generator().manual_seed(seed)
    A = torch.eye(n) + 0.3 * torch.randn(n, n, generator=g)
    B = torch.randn(n, m, generator=g)
    Lq = torch.randn(n, n, generator=g)
    Q = Lq @ Lq.T / n + 0.1 * torch.eye(n)
    Lr = torch.randn(m, m, generator=g)
    R = Lr @ Lr.T / m + 0.5 * torch.eye(m)
    Lw = torch.randn(n, n, generator=g)
    W = noise * (Lw @ Lw.T / n + 0.1 * torch.eye(n))
    kw = {}
    if linear:
        kw = dict(c=0.2 * torch.randn(n, generator=g), h=torch.randn(n + m, generator=g),
                  mu0=torch.randn(n, generator=g), h_T=torch.randn(n, generator=g))
    return LinearGaussianSystem.from_lqr(
        A, B, Q, R, horizon=horizon or T, Q_T=Q, W=W, Sigma0=0.2 * torch.eye(n), **kw
    ), dict(A=A, B=B, Q=Q, R=R, W=W)


def textbook_lqr(A, B, Q, R, Q_T, T):
    """Cost-to-go J_t(x) = x^T P_t x (cost 1/2(x^T Q x + u^T R u)); gains u = K_t x."""
    A, B, Q, R = (np.asarray(M, dtype=np.float64) for M in (A, B, Q, R))
    P = np.asarray(Q_T, dtype=np.float64)
    Ps, Ks, Ss = [P], [], []
    for _ in range(T):
        S = R + B.T @ P @ B
        K = -np.linalg.inv(S) @ B.T @ P @ A
        P = Q + A.T @ P @ A - A.T @ P @ B @ np.linalg.inv(S) @ B.T @ P @ A
        Ps.append(P), Ks.append(K), Ss.append(S)
    return Ps[::-1], Ks[::-1], Ss[::-1]


# --------------------------------------------------------------------------- LQR limit


@pytest.mark.parametrize("alpha", [1e-8, 1e-3, 1.0, 7.0])
def test_soft_vi_gains_are_lqr_riccati(alpha):
    system, raw = random_system(linear=False, T=12)
    Ps, Ks, Ss = textbook_lqr(raw["A"], raw["B"], raw["Q"], raw["R"], raw["Q"], 12)
    sol = lg_soft_value_iteration(system, alpha)
    for t in range(12):
        np.testing.assert_allclose(sol.K[t].numpy(), Ks[t], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(sol.V_quad[t].numpy(), Ps[t], rtol=1e-9, atol=1e-10)
        # covariance is alpha times the stated matrix (R + B^T P_{t+1} B)^-1
        np.testing.assert_allclose(sol.policy_cov[t].numpy(), alpha * np.linalg.inv(Ss[t]), rtol=1e-9,
                                   atol=1e-12 * alpha)
    assert torch.all(sol.k.abs() < 1e-12)


def test_exact_messages_at_small_alpha_and_no_noise_are_lqr():
    system, raw = random_system(linear=False, T=8, noise=0.0)
    Ps, Ks, _ = textbook_lqr(raw["A"], raw["B"], raw["Q"], raw["R"], raw["Q"], 8)
    sol = lg_backward_messages(system, 1e-6)
    for t in range(8):
        np.testing.assert_allclose(sol.K[t].numpy(), Ks[t], rtol=1e-9, atol=1e-10)


def test_long_horizon_gain_matches_scipy_dare():
    system, raw = random_system(linear=False, T=400, n=3, m=2, seed=3)
    A, B, Q, R = (raw[k].numpy() for k in "ABQR")
    P_inf = scipy.linalg.solve_discrete_are(A, B, Q, R)
    K_inf = -np.linalg.solve(R + B.T @ P_inf @ B, B.T @ P_inf @ A)
    sol = lg_soft_value_iteration(system, 0.3)
    np.testing.assert_allclose(sol.V_quad[0].numpy(), P_inf, rtol=1e-8)
    np.testing.assert_allclose(sol.K[0].numpy(), K_inf, rtol=1e-8, atol=1e-10)


def test_soft_values_tend_to_lqr_values_including_noise_term():
    # Hard LQR value with noise: -1/2 x^T P_t x - 1/2 sum_{s>t} tr(P_s W); soft adds O(alpha log alpha).
    system, raw = random_system(linear=False, T=5)
    Ps, _, _ = textbook_lqr(raw["A"], raw["B"], raw["Q"], raw["R"], raw["Q"], 5)
    W = raw["W"].numpy()
    x = torch.tensor([0.3, -1.0, 0.5])
    for alpha, tol in [(1e-4, 5e-3), (1e-8, 1e-6)]:
        sol = lg_soft_value_iteration(system, alpha)
        hard = -0.5 * x.numpy() @ Ps[0] @ x.numpy() - 0.5 * sum(np.trace(Ps[s] @ W) for s in range(1, 6))
        assert abs(sol.value(x, 0).item() - hard) < tol


def test_policy_mean_independent_of_alpha_and_cov_scales():
    system, _ = random_system(linear=True, T=7)
    ref = lg_soft_value_iteration(system, 1.0)
    assert ref.k.abs().max() > 1e-2  # the linear terms make the feed-forward part non-trivial
    for alpha in [1e-3, 0.1, 5.0]:
        sol = lg_soft_value_iteration(system, alpha)
        torch.testing.assert_close(sol.K, ref.K, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(sol.k, ref.k, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(sol.policy_cov, alpha * ref.policy_cov, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------- exact vs soft


def test_no_noise_exact_equals_soft_vi():
    system, _ = random_system(linear=True, noise=0.0, T=6)
    for alpha in [0.05, 1.0, 3.0]:
        a, b = lg_soft_value_iteration(system, alpha), lg_backward_messages(system, alpha)
        for name in ["V_quad", "V_lin", "V_const", "Q_quad", "Q_lin", "Q_const", "K", "k", "policy_cov"]:
            torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-10)
        # the initial state is still uncertain: exact log evidence >= max ELBO, strictly here
        assert b.log_partition > a.log_partition


def test_no_noise_anywhere_log_evidence_equals_elbo():
    system, _ = random_system(linear=True, noise=0.0, T=4)
    system = LinearGaussianSystem(**{**system.__dict__, "Sigma0": torch.zeros(3, 3)})
    a, b = lg_soft_value_iteration(system, 0.7), lg_backward_messages(system, 0.7)
    torch.testing.assert_close(a.log_partition, b.log_partition, rtol=1e-12, atol=1e-12)


def test_with_noise_exact_values_are_higher():
    system, _ = random_system(linear=True, noise=0.2, T=6)
    alpha = 0.5
    a, b = lg_soft_value_iteration(system, alpha), lg_backward_messages(system, alpha)
    xs = torch.randn(50, 3, generator=torch.Generator().manual_seed(1)) * 3
    for t in range(6):  # every step with noise ahead: strictly higher
        assert torch.all(b.value(xs, t) > a.value(xs, t) + 1e-6)
    torch.testing.assert_close(b.value(xs, 6), a.value(xs, 6))  # terminal: same reward
    assert b.log_partition > a.log_partition
    # the optimism is in the quadratic term too: P_exact <= P_soft (PSD difference)
    for t in range(6):
        assert torch.linalg.eigvalsh(a.V_quad[t] - b.V_quad[t]).min() > -1e-10


# --------------------------------------------------------------------------- quadrature


def _grid_backup_1d(a, b, c, W, H, h, P1, p1, v1, alpha, x, exact):
    """Brute-force one backup at state x: (Q(x, u) on a u grid, V(x) by quadrature, u grid)."""
    sd = math.sqrt(W)
    w = np.linspace(-12 * sd, 12 * sd, 1201)
    log_pw = -0.5 * w ** 2 / W - 0.5 * math.log(2 * math.pi * W)
    u = np.linspace(-20, 20, 2001)
    z = np.stack(np.broadcast_arrays(x, u), -1)
    r = -0.5 * np.einsum("ui,ij,uj->u", z, H, z) + z @ h
    xn = (a * x + b * u + c)[:, None] + w[None, :]
    V1 = -0.5 * P1 * xn ** 2 + p1 * xn + v1
    if exact:
        Ew = alpha * scipy.special.logsumexp(V1 / alpha + log_pw, b=np.gradient(w), axis=1)
    else:
        Ew = np.trapezoid(np.exp(log_pw) * V1, w, axis=1)
    Q = r + Ew
    V = alpha * scipy.special.logsumexp(Q / alpha, b=np.gradient(u))
    return Q, V, u


@pytest.mark.parametrize("exact", [False, True])
def test_one_dimensional_backups_match_quadrature(exact):
    a, b, c, W = 0.9, 0.7, 0.3, 0.4
    H = np.array([[1.0, 0.2], [0.2, 0.5]])
    h = np.array([0.4, -0.3])
    alpha = 0.8
    system = LinearGaussianSystem(A=[[a]], B=[[b]], c=[c], W=[[W]], H=H, h=h, H_T=[[0.6]], h_T=[0.5],
                                  mu0=[0.7], Sigma0=[[0.3]], horizon=3)
    sol = (lg_backward_messages if exact else lg_soft_value_iteration)(system, alpha)
    for t in range(3):
        P1, p1, v1 = sol.V_quad[t + 1, 0, 0].item(), sol.V_lin[t + 1, 0].item(), sol.V_const[t + 1].item()
        for x in [-2.0, 0.0, 1.3]:
            Q, V, u = _grid_backup_1d(a, b, c, W, H, h, P1, p1, v1, alpha, x, exact)
            xt = torch.tensor([x])
            assert abs(sol.value(xt, t).item() - V) < 1e-7
            iu = np.arange(0, len(u), 50)
            iu = iu[np.abs(u[iu]) <= 12]  # beyond, the tilted noise leaves the w grid
            Qm = sol.q_value(xt.expand(len(iu), 1), torch.tensor(u[iu])[:, None], t).numpy()
            np.testing.assert_allclose(Qm, Q[iu], rtol=1e-8, atol=1e-8)
            # the policy is exp((Q - V) / alpha)
            logpi = sol.policy_log_prob(xt.expand(len(iu), 1), torch.tensor(u[iu])[:, None], t).numpy()
            np.testing.assert_allclose(logpi, (Q[iu] - V) / alpha, rtol=1e-7, atol=1e-7)
    # log partition over x0 ~ N(0.7, 0.3)
    x0 = np.linspace(0.7 - 12 * math.sqrt(0.3), 0.7 + 12 * math.sqrt(0.3), 6001)
    log_p0 = -0.5 * (x0 - 0.7) ** 2 / 0.3 - 0.5 * math.log(2 * math.pi * 0.3)
    V0 = sol.value(torch.tensor(x0)[:, None], 0).numpy()
    if exact:
        ref = scipy.special.logsumexp(V0 / alpha + log_p0, b=np.gradient(x0))
    else:
        ref = np.trapezoid(np.exp(log_p0) * V0, x0) / alpha
    assert abs(sol.log_partition.item() - ref) < 1e-8


# --------------------------------------------------------------------------- forward messages


@pytest.mark.parametrize("exact", [False, True])
def test_marginals_are_gradients_of_log_partition(exact):
    # log Z = log ∫ p0 prod p(x'|z) exp(sum r / alpha) (and the max ELBO, by the envelope theorem):
    # d/dh = (1/alpha) sum_t E[z_t],  d/dH = -(1/2 alpha) sum_t E[z_t z_t^T],  d/dh_T = E[x_T] / alpha.
    system, _ = random_system(linear=True, noise=0.1, T=5, n=2, m=2)
    H = system.H.clone().requires_grad_(True)
    h = system.h.clone().requires_grad_(True)
    h_T = system.h_T.clone().requires_grad_(True)
    system = LinearGaussianSystem(**{**system.__dict__, "H": H, "h": h, "h_T": h_T})
    alpha = 0.6
    sol = (lg_backward_messages if exact else lg_soft_value_iteration)(system, alpha)
    gH, gh, ghT = torch.autograd.grad(sol.log_partition, [H, h, h_T])
    marg = lg_forward_messages(system, sol)
    second = marg.joint_cov + marg.joint_mean[..., :, None] * marg.joint_mean[..., None, :]
    torch.testing.assert_close(gh, marg.joint_mean.sum(0) / alpha, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gH, -second.sum(0) / (2 * alpha), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ghT, marg.state_mean[-1] / alpha, rtol=1e-8, atol=1e-10)


def test_soft_vi_marginals_match_monte_carlo():
    system, _ = random_system(linear=True, noise=0.1, T=4, n=2, m=2, seed=5)
    alpha = 0.4
    sol = lg_soft_value_iteration(system, alpha)
    marg = lg_forward_messages(system, sol)
    g = torch.Generator().manual_seed(0)
    N = 200_000
    x = system.mu0 + torch.randn(N, 2, generator=g) @ torch.linalg.cholesky(system.Sigma0).T
    Lw = torch.linalg.cholesky(system.W)
    for t in range(4):
        u = sol.policy_mean(x, t) + torch.randn(N, 2, generator=g) @ torch.linalg.cholesky(sol.policy_cov[t]).T
        z = torch.cat([x, u], -1)
        zm = z.mean(0)
        zc = torch.cov(z.T)
        se = (marg.joint_cov[t].diagonal() / N).sqrt()
        assert torch.all((zm - marg.joint_mean[t]).abs() < 5 * se)
        torch.testing.assert_close(zc, marg.joint_cov[t], rtol=0.03, atol=0.03 * zc.abs().max().item())
        x = system.step_mean(x, u) + torch.randn(N, 2, generator=g) @ Lw.T
    se = (marg.state_cov[4].diagonal() / N).sqrt()
    assert torch.all((x.mean(0) - marg.state_mean[4]).abs() < 5 * se)


# --------------------------------------------------------------------------- batching, gradients, errors


def test_batched_equals_loop():
    systems = [random_system(linear=True, seed=s, T=4)[0] for s in range(3)]
    fields = {k: torch.stack([getattr(s, k) for s in systems]) for k in
              ["A", "B", "H", "c", "W", "h", "H_T", "h_T", "mu0", "Sigma0"]}
    batched = LinearGaussianSystem(horizon=4, **fields)
    assert batched.batch_shape == (3,)
    for fn in [lg_soft_value_iteration, lg_backward_messages]:
        sb = fn(batched, 0.9)
        mb = lg_forward_messages(batched, sb)
        for i, s in enumerate(systems):
            si = fn(s, 0.9)
            mi = lg_forward_messages(s, si)
            for name in ["V_quad", "V_const", "K", "k", "policy_cov", "log_partition"]:
                torch.testing.assert_close(getattr(sb, name)[i], getattr(si, name))
            torch.testing.assert_close(mb.state_cov[i], mi.state_cov)
            torch.testing.assert_close(mb.joint_mean[i], mi.joint_mean)


def test_gradcheck_through_exact_messages():
    system, _ = random_system(linear=True, T=3, n=2, m=1, noise=0.1)
    B0 = system.B.clone().requires_grad_(True)
    A0 = system.A.clone().requires_grad_(True)

    def f(A, B):
        s = LinearGaussianSystem(**{**system.__dict__, "A": A, "B": B})
        return lg_backward_messages(s, 0.7).log_partition

    assert torch.autograd.gradcheck(f, (A0, B0))


def test_validation_errors():
    with pytest.raises(ValueError, match="B"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(3, 1), H=torch.eye(3), horizon=2)
    with pytest.raises(ValueError, match="H"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(2), horizon=2)
    with pytest.raises(ValueError, match="horizon"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=0)
    with pytest.raises(ValueError, match="W"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=2,
                             W=-torch.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.triu(torch.ones(3, 3)), horizon=2)
    s = LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=2)
    with pytest.raises(ValueError, match="alpha"):
        lg_soft_value_iteration(s, 0.0)
    # reward convex in u: the action integral diverges
    bad = LinearGaussianSystem(A=torch.eye(2), B=torch.zeros(2, 1), H=torch.diag(torch.tensor([1.0, 1.0, -1.0])),
                               horizon=2)
    with pytest.raises(ValueError, match="concave"):
        lg_soft_value_iteration(bad, 1.0)


# --------------------------------------------------------------------------- tabular discretisation


def _discretised_soft_values(n_x, n_u, a, b, W, H, H_T, alpha, T, L=6.0, U=8.0):
    """Soft VI of the core (cai.soft_value_iteration) on a grid version of a 1-D LG system.

    States: n_x points on [-L, L]; actions: n_u points on [-U, U]; P(x_k | x_i, u_j) is the Gaussian
    density at the grid points, normalised over k. The core sums over actions (counting measure),
    so each action integral is off by log du: the continuous V_t is V_grid_t + (T - t) alpha log du.
    """

    xs = torch.linspace(-L, L, n_x)
    us = torch.linspace(-U, U, n_u)
    du = (us[1] - us[0]).item()
    mean = a * xs[:, None] + b * us[None, :]  # (S, A)
    logp = -0.5 * (xs[None, None, :] - mean[..., None]) ** 2 / W
    P = torch.softmax(logp, dim=-1)
    z = torch.stack(torch.broadcast_tensors(xs[:, None], us[None, :]), -1)
    r = -0.5 * torch.einsum("sai,ij,saj->sa", z, torch.as_tensor(H), z)
    mdp = cai.TabularMDP(P, r, initial=None, horizon=T, terminal_rewards=-0.5 * H_T * xs ** 2)
    sol = cai.soft_value_iteration(mdp, alpha=alpha)
    steps_to_go = torch.arange(T, -1, -1, dtype=torch.float64)
    V = sol.V + alpha * math.log(du) * steps_to_go[:, None]
    policy_mean = (sol.policy * us).sum(-1)  # (T, S)
    return xs, V, policy_mean


def test_tabular_soft_vi_of_finer_grids_approaches_the_gaussian_solution():
    a, b, W, alpha, T, H_T = 0.9, 0.5, 0.3, 0.5, 4, 0.5
    H = np.array([[1.0, 0.0], [0.0, 0.5]])
    system = LinearGaussianSystem(A=[[a]], B=[[b]], W=[[W]], H=H, H_T=[[H_T]], horizon=T)
    sol = lg_soft_value_iteration(system, alpha)
    errors = []
    # grids (n_x, n_u) on [-6, 6] x [-8, 8]: state spacing 1.0 -> 0.375 (noise sd 0.55), action
    # spacing 2.0 -> 0.8 (policy sd <= 1). Measured max errors (V and policy mean, |x| <= 2):
    # about 0.2, 0.07, 0.013, 2e-4, 6e-7.
    for n_x, n_u in [(13, 9), (17, 11), (21, 13), (25, 17), (33, 21)]:
        xs, V, pm = _discretised_soft_values(n_x, n_u, a, b, W, H, H_T, alpha, T)
        inner = xs.abs() <= 2.0  # away from the truncated boundary
        exact_V = torch.stack([sol.value(xs[inner, None], t) for t in range(T + 1)])
        exact_mean = torch.stack([sol.policy_mean(xs[inner, None], t)[:, 0] for t in range(T)])
        errors.append(max((V[:, inner] - exact_V).abs().max().item(), (pm[:, inner] - exact_mean).abs().max().item()))
    # Riemann sums of smooth Gaussian integrals: the error falls fast with the spacing
    assert all(e1 > e2 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-5, errors


# --- issue 11: divergence in several directions, bad fields named ------------------------------

def _convex_start(hxx, alpha=1.0):
    """Horizon 1, x_1 = 0 whatever happens (A = B = 0, W = 0), r = -1/2 x^T Hxx x - 1/2 |u|^2:
    V_0(x) = -1/2 x^T Hxx x + alpha log(2 pi alpha) (m = 2), so with x_0 ~ N(0, I)
    log p(O) = log(2 pi alpha) + sum_i -1/2 log(1 + h_i / alpha), finite iff every 1 + h_i/alpha > 0."""
    H = torch.zeros(4, 4, dtype=torch.float64)
    H[:2, :2] = torch.diag(torch.tensor(hxx, dtype=torch.float64))
    H[2:, 2:] = torch.eye(2, dtype=torch.float64)
    return LinearGaussianSystem(A=torch.zeros(2, 2), B=torch.zeros(2, 2), H=H, horizon=1, Sigma0=torch.eye(2))


def test_log_partition_closed_form_and_divergence_in_two_directions():
    lp = lg_backward_messages(_convex_start([-0.5, 0.3])).log_partition
    expected = math.log(2 * math.pi) - 0.5 * math.log(1 - 0.5) - 0.5 * math.log(1 + 0.3)
    assert abs(lp.item() - expected) < 1e-12
    # one diverging direction: det(I + Sigma0 P / alpha) < 0; two: the determinant is positive
    # again (16), and only the eigenvalues show that the integral diverges
    for hxx in ([-5.0, 1.0], [-5.0, -5.0]):
        with pytest.raises(ValueError, match="Sigma0: expected E\\[exp\\(V/alpha\\)\\] to be finite"):
            lg_backward_messages(_convex_start(hxx))
    # the same through the process noise W (the backup over x_{t+1}): H_T convex in two directions
    sys_w = LinearGaussianSystem(A=torch.eye(2), B=torch.eye(2), H=torch.eye(4), horizon=1,
                                 W=torch.eye(2), H_T=-5 * torch.eye(2))
    with pytest.raises(ValueError, match="^W: expected E\\[exp"):
        lg_backward_messages(sys_w)


@pytest.mark.parametrize("field", ["A", "B", "H", "W", "c", "h", "H_T", "h_T", "mu0", "Sigma0"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_field_is_named(field, bad):
    shapes = {"A": (2, 2), "B": (2, 1), "H": (3, 3), "W": (2, 2), "c": (2,), "h": (3,), "H_T": (2, 2),
              "h_T": (2,), "mu0": (2,), "Sigma0": (2, 2)}
    kw = {"A": torch.eye(2), "B": torch.ones(2, 1), "H": torch.eye(3), "horizon": 2}
    kw[field] = torch.full(shapes[field], bad)
    with pytest.raises(ValueError, match=f"^{field}: expected finite values"):
        LinearGaussianSystem(**kw)


def test_wrong_types_and_other_systems_messages():
    with pytest.raises(TypeError, match="^A: expected an array-like of numbers"):
        LinearGaussianSystem(A="eye", B=torch.ones(2, 1), H=torch.eye(3), horizon=2)
    with pytest.raises(TypeError, match="dtype: expected a floating torch dtype"):
        LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=2, dtype=torch.int64)
    s1 = LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=2)
    s2 = LinearGaussianSystem(A=torch.eye(3), B=torch.ones(3, 1), H=torch.eye(4), horizon=2)
    s3 = LinearGaussianSystem(A=torch.eye(2), B=torch.ones(2, 1), H=torch.eye(3), horizon=5)
    for other in (s2, s3):
        with pytest.raises(ValueError, match="lg_forward_messages: messages: expected messages of this system"):
            lg_forward_messages(other, lg_backward_messages(s1))
    with pytest.raises(TypeError, match="lg_backward_messages: system: expected a cai.LinearGaussianSystem"):
        lg_backward_messages("system")
