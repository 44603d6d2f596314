"""Loss terms of SAC, SVGD soft Q-learning and soft DQN, tested without an environment.

Each check compares against an independent route: a numerical change of variables, explicit
Python loops with autograd for the kernel gradient, closed-form integrals, or a closed-form fixed
point of the dual (temperature) descent.
"""

import math

import numpy as np
import pytest
import torch

from cai.algorithms.deep.networks import TanhGaussianActor, tanh_gaussian_log_prob
from cai.algorithms.deep.replay import ReplayBuffer
from cai.algorithms.deep.sac import (
    polyak_update,
    sac_actor_loss,
    sac_critic_loss,
    sac_critic_target,
    sac_temperature_loss,
)
from cai.algorithms.deep.soft_dqn import boltzmann_log_policy, discrete_soft_value, soft_dqn_loss, soft_dqn_target
from cai.algorithms.deep.sql import (
    log_tanh_jacobian,
    median_bandwidth,
    rbf_kernel,
    soft_q_target,
    soft_value_importance_sampling,
    svgd_direction,
)

D = torch.float64


# --------------------------------------------------------------------------- tanh-Gaussian


def test_tanh_gaussian_log_density_matches_numerical_change_of_variables():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(200, 2, generator=g, dtype=D)
    log_std = 0.5 * torch.randn(200, 2, generator=g, dtype=D)
    u = mean + log_std.exp() * torch.randn(200, 2, generator=g, dtype=D)
    a = torch.tanh(u).numpy()
    ours = tanh_gaussian_log_prob(mean, log_std, u).numpy()
    # numerical: log p_a(a) = log p_u(atanh a) + sum log |d atanh(a)/da|, the derivative by central differences
    eps = 1e-5 * (1 - np.abs(a))  # step shrinks near the edge, where atanh curves sharply
    duda = (np.arctanh(a + eps) - np.arctanh(a - eps)) / (2 * eps)
    ok = np.all(np.abs(a) < 1 - 1e-6, axis=1)  # float32-free, but keep clear of rounding at |a| = 1
    un = np.arctanh(a)
    s = np.exp(log_std.numpy())
    log_pu = (-0.5 * ((un - mean.numpy()) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)).sum(1)
    ref = log_pu + np.log(np.abs(duda)).sum(1)
    assert ok.sum() > 150
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-6, atol=1e-6)


def test_tanh_gaussian_log_density_is_stable_in_the_tails():
    # far in the tail the naive log(1 - tanh(u)^2) is -inf; the stable form stays finite: log(4) - 2|u|
    big = torch.tensor([[30.0], [-30.0]], dtype=D)
    lp = tanh_gaussian_log_prob(torch.zeros(2, 1, dtype=D), torch.zeros(2, 1, dtype=D), big)
    expected = -0.5 * 900 - 0.5 * math.log(2 * math.pi) - (math.log(4.0) - 60.0)
    torch.testing.assert_close(lp, torch.full((2,), expected, dtype=D))


def test_actor_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, (16, 16)).double()
    obs = torch.randn(64, 3, dtype=D)
    a, logp = actor(obs)
    mean, log_std = actor.distribution_params(obs)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1),
        [torch.distributions.TanhTransform()])
    inside = a.abs().max(-1).values < 0.999
    torch.testing.assert_close(logp[inside], dist.log_prob(a)[inside], rtol=1e-7, atol=1e-7)
    assert torch.all(a.abs() < 1)
    ad, _ = actor(obs, deterministic=True)
    torch.testing.assert_close(ad, torch.tanh(mean))


# --------------------------------------------------------------------------- SAC


def test_sac_critic_target_clipped_double_q():
    r = torch.tensor([1.0, -2.0, 0.5], dtype=D)
    term = torch.tensor([0.0, 0.0, 1.0], dtype=D)
    q = torch.tensor([[3.0, -1.0, 7.0], [2.0, 4.0, 9.0]], dtype=D)
    logp = torch.tensor([-0.5, 0.3, 2.0], dtype=D)
    alpha, gamma = 0.2, 0.9
    y = sac_critic_target(r, gamma * (1 - term), q, logp, torch.tensor(alpha, dtype=D))
    expected = [1.0 + 0.9 * (2.0 - 0.2 * -0.5), -2.0 + 0.9 * (-1.0 - 0.2 * 0.3), 0.5]
    torch.testing.assert_close(y, torch.tensor(expected, dtype=D))
    # critic loss: sum over the twins of the mean half squared error, target not differentiated
    qt = q.clone().requires_grad_(True)
    loss = sac_critic_loss(qt, y)
    ref = sum(0.5 * ((q[e] - y) ** 2).mean() for e in range(2))
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, qt)
    torch.testing.assert_close(g, (q - y) / 3)


def test_temperature_loss_sign_and_fixed_point():
    log_alpha = torch.tensor(0.0, dtype=D, requires_grad=True)
    target = -2.0
    # entropy 1.0 > target: alpha should fall (positive gradient); entropy -3 < target: rise
    for log_pi, sign in [(torch.full((10,), -1.0, dtype=D), 1.0), (torch.full((10,), 3.0, dtype=D), -1.0)]:
        (g,) = torch.autograd.grad(sac_temperature_loss(log_alpha, log_pi, target), log_alpha)
        assert g.item() * sign > 0
        torch.testing.assert_close(g, -(log_pi.mean() + target))
    (g,) = torch.autograd.grad(sac_temperature_loss(log_alpha, torch.full((7,), 2.0, dtype=D), target), log_alpha)
    assert g.item() == 0.0  # entropy exactly at the target


def test_temperature_dual_descent_converges_to_closed_form_alpha():
    # For Q(a) = -c a^2 / 2 the soft-optimal policy is N(0, alpha / c), entropy 1/2 log(2 pi e alpha / c).
    # Dual descent on log alpha with that policy must stop where the entropy equals the target.
    c, target = 4.0, -0.3
    alpha_star = c * math.exp(2 * target) / (2 * math.pi * math.e)
    log_alpha = torch.tensor(math.log(5.0), dtype=D, requires_grad=True)
    opt = torch.optim.SGD([log_alpha], lr=0.5)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(2_000, generator=g, dtype=D)
    eps = eps / eps.pow(2).mean().sqrt()  # unit second moment: the sample entropy is the exact one
    for _ in range(200):
        std = (log_alpha.detach().exp() / c).sqrt()
        a = std * eps
        log_pi = -0.5 * (a / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
        opt.zero_grad()
        sac_temperature_loss(log_alpha, log_pi, target).backward()
        opt.step()
    assert abs(log_alpha.exp().item() / alpha_star - 1) < 1e-3


def test_actor_loss_minimiser_is_the_boltzmann_policy():
    # Gaussian policy over a 1-D action, Q(a) = -c (a - a0)^2 / 2: argmin of E[alpha log pi - Q] is N(a0, alpha / c).
    c, a0, alpha = 2.0, 0.7, 0.5
    mu = torch.tensor(0.0, dtype=D, requires_grad=True)
    log_std = torch.tensor(0.0, dtype=D, requires_grad=True)
    opt = torch.optim.Adam([mu, log_std], lr=0.05)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        eps = torch.randn(1024, generator=g, dtype=D)
        a = mu + log_std.exp() * eps
        log_pi = -0.5 * eps ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        q = -0.5 * c * (a - a0) ** 2
        loss = sac_actor_loss(torch.stack([q, q + 1.0]), log_pi, torch.tensor(alpha, dtype=D))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(mu.item() - a0) < 0.02
    assert abs(log_std.exp().item() - math.sqrt(alpha / c)) < 0.02


def test_polyak_update():
    src, tgt = torch.nn.Linear(3, 2).double(), torch.nn.Linear(3, 2).double()
    expected = [0.9 * t.detach().clone() + 0.1 * s.detach() for t, s in zip(tgt.parameters(), src.parameters())]
    polyak_update(tgt, src, 0.1)
    for t, e in zip(tgt.parameters(), expected):
        torch.testing.assert_close(t.detach(), e)


# --------------------------------------------------------------------------- SVGD soft Q-learning


def test_svgd_direction_matches_kernel_expression_with_autograd():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 2, generator=g, dtype=D)  # batch of 2 states, 6 fixed particles
    y = torch.randn(2, 4, 2, generator=g, dtype=D)
    mu, prec = torch.tensor([1.0, -0.5], dtype=D), torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=D)
    grad_log_p = -(x - mu) @ prec
    h = median_bandwidth(x, y)
    phi = svgd_direction(x, grad_log_p, y, h)
    for b in range(2):
        for j in range(4):
            acc = torch.zeros(2, dtype=D)
            for k in range(6):
                xk = x[b, k].clone().requires_grad_(True)
                kern = torch.exp(-((xk - y[b, j]) ** 2).sum() / h[b])
                (gk,) = torch.autograd.grad(kern, xk)
                acc = acc + kern.detach() * grad_log_p[b, k] + gk
            torch.testing.assert_close(phi[b, j], acc / 6, rtol=1e-12, atol=1e-12)
    # the kernel and its gradient separately
    k, gk = rbf_kernel(x[0], y[0], h[0])
    torch.testing.assert_close(k[2, 3], torch.exp(-((x[0, 2] - y[0, 3]) ** 2).sum() / h[0]))
    torch.testing.assert_close(gk[2, 3], -2 * (x[0, 2] - y[0, 3]) / h[0] * k[2, 3])


def test_median_bandwidth_against_numpy():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(10, 2, generator=g, dtype=D), torch.randn(7, 2, generator=g, dtype=D)
    d2 = ((x.numpy()[:, None] - y.numpy()[None]) ** 2).sum(-1).ravel()
    # torch.median returns the lower median for an even count
    med2 = np.sort(d2)[(len(d2) - 1) // 2]
    assert abs(median_bandwidth(x, y).item() - med2 / math.log(10)) < 1e-12


def test_svgd_transports_particles_to_a_known_2d_gaussian():
    mu = torch.tensor([2.0, -1.0], dtype=D)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=D)
    prec = torch.linalg.inv(cov)
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(60, 2, generator=g, dtype=D) + torch.tensor([-2.0, 2.0], dtype=D)

    def mean_log_p(z):
        return (-0.5 * ((z - mu) @ prec * (z - mu)).sum(-1)).mean()

    first = True
    for _ in range(400):
        grad = -(x - mu) @ prec
        phi = svgd_direction(x, grad, x, median_bandwidth(x, x))
        x_new = x + 0.3 * phi
        if first:  # the first step moves the particles up the target density
            assert mean_log_p(x_new) > mean_log_p(x) + 0.1
            first = False
        x = x_new
    torch.testing.assert_close(x.mean(0), mu, atol=0.05, rtol=0)
    emp = torch.cov(x.T)
    # without the repulsive term the particles collapse onto the mode (cov -> 0): this would fail
    torch.testing.assert_close(emp, cov, atol=0.2, rtol=0)


def test_svgd_single_particle_is_gradient_ascent():
    x = torch.tensor([[0.3, -0.2]], dtype=D)
    grad = torch.tensor([[1.5, 2.0]], dtype=D)
    phi = svgd_direction(x, grad, x, torch.tensor(0.7, dtype=D))
    torch.testing.assert_close(phi, grad)  # k(x, x) = 1, grad k(x, x) = 0


def test_soft_value_importance_sampling():
    # constant Q: V = q + alpha * d * log 2 exactly (the uniform policy's entropy on [-1, 1]^d)
    q = torch.full((3, 16), 1.7, dtype=D)
    v = soft_value_importance_sampling(q, -2 * math.log(2.0), 0.3)
    torch.testing.assert_close(v, torch.full((3,), 1.7 + 0.3 * 2 * math.log(2.0), dtype=D))
    # linear Q(a) = b a on [-1, 1] with midpoint "samples": alpha log ∫ exp(b a / alpha) da in closed form
    K, b, alpha = 20_000, 1.3, 0.4
    a = -1 + (2 * torch.arange(K, dtype=D) + 1) / K
    v = soft_value_importance_sampling(b * a, -math.log(2.0), alpha)
    ref = alpha * math.log(alpha / b * (math.exp(b / alpha) - math.exp(-b / alpha)))
    assert abs(v.item() - ref) < 1e-6
    y = soft_q_target(torch.tensor([1.0], dtype=D), torch.tensor([0.0], dtype=D), torch.tensor([5.0], dtype=D))
    assert y.item() == 1.0


def test_log_tanh_jacobian():
    u = torch.linspace(-5, 5, 101, dtype=D)[:, None]
    torch.testing.assert_close(log_tanh_jacobian(u), torch.log(1 - torch.tanh(u) ** 2)[:, 0], rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- soft DQN


def test_soft_dqn_target_and_policy():
    q = torch.tensor([[1.0, 2.0, 0.5], [-3.0, 0.0, 4.0]], dtype=D)
    r = torch.tensor([0.5, 1.0], dtype=D)
    disc = torch.tensor([0.9, 0.0], dtype=D)
    alpha = 0.7
    y = soft_dqn_target(r, disc, q, alpha)
    brute = [0.5 + 0.9 * alpha * math.log(sum(math.exp(v / alpha) for v in [1.0, 2.0, 0.5])), 1.0]
    torch.testing.assert_close(y, torch.tensor(brute, dtype=D))
    logpi = boltzmann_log_policy(q, alpha)
    torch.testing.assert_close(logpi.exp().sum(-1), torch.ones(2, dtype=D))
    torch.testing.assert_close(logpi, (q - discrete_soft_value(q, alpha)[:, None]) / alpha)
    # alpha -> 0: the hard max, within alpha log |A|; huge values do not overflow
    v = discrete_soft_value(q, 1e-3)
    assert torch.all(v >= q.max(-1).values) and torch.all(v - q.max(-1).values <= 1e-3 * math.log(3))
    assert torch.isfinite(discrete_soft_value(1e4 * q, 1e-3)).all()


def test_soft_dqn_loss_gathers_taken_actions():
    q = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=D, requires_grad=True)
    a = torch.tensor([1, 0])
    y = torch.tensor([2.5, 1.0], dtype=D)
    loss = soft_dqn_loss(q, a, y, huber=False)
    torch.testing.assert_close(loss, torch.tensor(0.5 * ((2.0 - 2.5) ** 2 + (3.0 - 1.0) ** 2) / 2, dtype=D))
    (g,) = torch.autograd.grad(loss, q)
    torch.testing.assert_close(g, torch.tensor([[0.0, -0.25], [1.0, 0.0]], dtype=D))
    huber = soft_dqn_loss(q, a, y, huber=True)  # |err| = 0.5 (quadratic part), 2.0 (linear part)
    torch.testing.assert_close(huber, torch.tensor((0.5 * 0.25 + (2.0 - 0.5)) / 2, dtype=D))


# --------------------------------------------------------------------------- replay buffer


def test_replay_buffer_ring_and_sampling():
    buf = ReplayBuffer(3, (2,), (1,), seed=0)
    with pytest.raises(ValueError, match="buffer"):
        buf.sample(2)
    for i in range(5):
        buf.add([i, i], [i], float(i), [i + 1, i + 1], i == 4)
    assert len(buf) == 3
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0]  # the two oldest were overwritten
    batch = buf.sample(64)
    assert batch.obs.shape == (64, 2) and batch.action.shape == (64, 1) and batch.reward.shape == (64,)
    assert set(batch.reward.tolist()) == {2.0, 3.0, 4.0}
    torch.testing.assert_close(batch.next_obs, batch.obs + 1)
    torch.testing.assert_close(batch.terminated, (batch.reward == 4.0).float())
    disc = ReplayBuffer(4, (1,), (), discrete=True)
    disc.add([0.0], 1, 0.0, [1.0], False)
    assert disc.sample(2).action.dtype == torch.int64
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (1,))
