"""Exact messages for linear-Gaussian control as inference (MaxEnt LQR).

With linear-Gaussian dynamics and a quadratic reward every backward message is a quadratic in
the state, so the soft Bellman recursion of ``docs/design.md`` §2 closes in matrix form (§2.7). Values are in
reward units and written

    V_t(x)   = -1/2 x^T P_t x + p_t^T x + v_t                                  (t = 0..T)
    Q_t(z)   = -1/2 z^T M_t z + m_t^T z + q_t,        z = [x; u]                (t = 0..T-1)

The two recursions differ in one place only, the backup over the next state ``x' = y + w``
with ``y = A x + B u + c`` and ``w ~ N(0, W)``:

* soft value iteration (the variational posterior, dynamics held fixed):
  ``E_w[V(y + w)] = V(y) - 1/2 tr(P W)``  — same ``P``, ``p``;
* exact inference (backward messages ``alpha log E_w[exp(V(y + w) / alpha)]``):
  a quadratic with ``P~ = P - P S P / alpha``, ``S = (W^-1 + P / alpha)^-1``; when ``P`` is
  invertible ``P~ = (P^-1 + W / alpha)^-1`` — the information-form Kalman update with
  measurement covariance ``alpha P^-1``. ``P~ <= P``: the exact posterior is optimistic
  (risk-seeking) about the noise whenever ``W != 0``.

The action integral is the same for both (Lebesgue action prior, i.e. the entropy-regularised
objective with differential entropy): with ``M_uu`` positive definite

    pi_t(u | x) = N(u; K_t x + k_t, alpha M_uu^-1),   K_t = -M_uu^-1 M_ux,   k_t = M_uu^-1 m_u
    V_t(x)      = max_u Q_t(x, u) + alpha (m/2 log(2 pi alpha) - 1/2 log det M_uu)

so ``P_t, p_t, K_t, k_t`` do not depend on ``alpha`` in soft VI: they are the LQR solution,
and the policy covariance is ``alpha`` times ``(R + B^T P_{t+1} B)^-1``.

References:
    Levine, S. (2018). Reinforcement learning and control as probabilistic inference:
    tutorial and review. arXiv:1805.00909, §2–3.
    Todorov, E. (2008). General duality between optimal control and estimation. CDC.
    Toussaint, M. (2009). Robot trajectory optimization using approximate inference. ICML.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import torch

from cai.mdp.linear_gaussian import LinearGaussianSystem

__all__ = [
    "LinearGaussianMessages",
    "LinearGaussianMarginals",
    "lg_soft_value_iteration",
    "lg_backward_messages",
    "lg_forward_messages",
    "quadratic_value",
]


class LinearGaussianMessages(NamedTuple):
    """Quadratic backward messages of a :class:`LinearGaussianSystem`.

    ``...`` is the system's batch shape. Values are in reward units.

    Attributes:
        V_quad: ``P_t``, shape ``(..., T+1, n, n)``; ``V_t(x) = -1/2 x^T P_t x + p_t^T x + v_t``.
        V_lin: ``p_t``, shape ``(..., T+1, n)``.
        V_const: ``v_t``, shape ``(..., T+1)``.
        Q_quad: ``M_t``, shape ``(..., T, n+m, n+m)``; ``Q_t(z) = -1/2 z^T M_t z + m_t^T z + q_t``.
        Q_lin: ``m_t``, shape ``(..., T, n+m)``.
        Q_const: ``q_t``, shape ``(..., T)``.
        K: Feedback gains, shape ``(..., T, m, n)``; the policy mean is ``K_t x + k_t``.
        k: Feed-forward terms, shape ``(..., T, m)``.
        policy_cov: Policy covariance ``alpha M_uu^-1``, shape ``(..., T, m, m)``.
        log_partition: For exact inference the log evidence ``log p(O_{0:T-1})``; for soft value
            iteration the maximal ELBO ``(1/alpha) E_{p0}[V_0(x_0)]``, a lower bound on it.
            Shape ``(...)``.
        alpha: The temperature.
        exact: True for exact inference (backward messages), False for soft value iteration.
    """

    V_quad: torch.Tensor
    V_lin: torch.Tensor
    V_const: torch.Tensor
    Q_quad: torch.Tensor
    Q_lin: torch.Tensor
    Q_const: torch.Tensor
    K: torch.Tensor
    k: torch.Tensor
    policy_cov: torch.Tensor
    log_partition: torch.Tensor
    alpha: float
    exact: bool

    def value(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """``V_t(x)`` for states ``x`` of shape ``(..., n)``; returns shape ``(...)``."""
        return quadratic_value(self.V_quad[..., t, :, :], self.V_lin[..., t, :], self.V_const[..., t], x)

    def q_value(self, x: torch.Tensor, u: torch.Tensor, t: int) -> torch.Tensor:
        """``Q_t(x, u)`` for ``x (..., n)`` and ``u (..., m)``; returns shape ``(...)``."""
        x, u = torch.broadcast_tensors(x[..., :, None], u[..., None, :])
        z = torch.cat([x[..., :, 0], u[..., 0, :]], dim=-1)
        return quadratic_value(self.Q_quad[..., t, :, :], self.Q_lin[..., t, :], self.Q_const[..., t], z)

    def policy_mean(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Policy mean ``K_t x + k_t`` for ``x (..., n)``; returns ``(..., m)``."""
        return _mv(self.K[..., t, :, :], x) + self.k[..., t, :]

    def policy_log_prob(self, x: torch.Tensor, u: torch.Tensor, t: int) -> torch.Tensor:
        """``log pi_t(u | x)`` (a density over ``R^m``); ``x (..., n)``, ``u (..., m)`` -> ``(...)``."""
        dist = torch.distributions.MultivariateNormal(self.policy_mean(x, t), self.policy_cov[..., t, :, :])
        return dist.log_prob(u)


class LinearGaussianMarginals(NamedTuple):
    """Gaussian forward messages: posterior state and state-action marginals.

    Attributes:
        state_mean: ``E[x_t]``, shape ``(..., T+1, n)``.
        state_cov: ``Cov[x_t]``, shape ``(..., T+1, n, n)``.
        joint_mean: ``E[z_t]`` with ``z_t = [x_t; u_t]``, shape ``(..., T, n+m)``.
        joint_cov: ``Cov[z_t]``, shape ``(..., T, n+m, n+m)``.
    """

    state_mean: torch.Tensor
    state_cov: torch.Tensor
    joint_mean: torch.Tensor
    joint_cov: torch.Tensor


def _mv(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (M @ v.unsqueeze(-1)).squeeze(-1)


def _sym(M: torch.Tensor) -> torch.Tensor:
    return 0.5 * (M + M.transpose(-1, -2))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def quadratic_value(P: torch.Tensor, p: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``-1/2 x^T P x + p^T x + v``.

    Args:
        P: ``(..., d, d)``. p: ``(..., d)``. v: ``(...)``. x: ``(..., d)`` (broadcasts).

    Returns:
        torch.Tensor: shape ``(...)``.
    """
    return -0.5 * _dot(x, _mv(P, x)) + _dot(p, x) + v


def _log_expected_exp(P, p, v, cov, alpha, name: str = "W"):
    """Rewrite ``alpha log E_{w ~ N(0, cov)}[exp(V(y + w) / alpha)]`` as a quadratic in ``y``.

    ``V(y) = -1/2 y^T P y + p^T y + v``. With ``S = (cov^-1 + P / alpha)^-1 = (I + cov P / alpha)^-1 cov``
    (no inverse of ``cov`` needed, so a singular or zero ``cov`` is fine) the result is
    ``-1/2 y^T P~ y + p~^T y + v~`` with ``P~ = P - P S P / alpha``, ``p~ = p - P S p / alpha`` and
    ``v~ = v + p^T S p / (2 alpha) - alpha/2 log det(I + cov P / alpha)``.

    Returns:
        tuple: ``(P~, p~, v~, S)``; ``S`` is the covariance of ``w`` under the tilted density
        ``N(w; 0, cov) exp(V(y + w) / alpha)``, whose mean is ``S (p - P y) / alpha``.

    Raises:
        ValueError: If the expectation diverges (``cov^-1 + P / alpha`` not positive definite).
    """
    n = P.shape[-1]
    eye = torch.eye(n, dtype=P.dtype, device=P.device)
    G = eye + cov @ P / alpha
    if not bool(torch.isfinite(G).all()):
        raise ValueError(f"alpha: cov P / alpha overflows {P.dtype} at alpha={alpha!r}; raise the temperature")
    # The integral is finite iff cov^-1 + P/alpha is positive definite on the support of cov, i.e.
    # iff I + C P C / alpha > 0 with C = cov^(1/2). G = I + cov P / alpha has the same eigenvalues
    # (those of C P C and cov P coincide), all real; a positive determinant alone is not enough
    # (two negative eigenvalues have one).
    lam = torch.linalg.eigvals(G.detach()).real.amin(-1)
    if bool((lam <= 1e-12).any()):
        raise ValueError(
            f"{name}: expected E[exp(V/alpha)] to be finite (cov^-1 + P/alpha positive definite), "
            f"got a diverging Gaussian integral (smallest eigenvalue of I + cov P / alpha: {lam.min().item():.3g}); "
            "the reward is too convex for this noise and temperature"
        )
    _, logdet = torch.linalg.slogdet(G)
    S = _sym(torch.linalg.solve(G, cov.expand(G.shape)))
    PS = P @ S
    P_new = _sym(P - PS @ P / alpha)
    p_new = p - _mv(PS, p) / alpha
    v_new = v + 0.5 * _dot(p, _mv(S, p)) / alpha - 0.5 * alpha * logdet
    return P_new, p_new, v_new, S


def _expected_value(P, p, v, cov):
    """``E_{w ~ N(0, cov)}[V(y + w)]`` as a quadratic in ``y``: ``(P, p, v - 1/2 tr(P cov))``."""
    return P, p, v - 0.5 * (P * cov).sum((-1, -2))


def _joint_dynamics(system: LinearGaussianSystem) -> torch.Tensor:
    """``F = [A, B]`` of shape ``(..., n, n+m)`` so that ``A x + B u = F z``."""
    batch = torch.broadcast_shapes(system.A.shape[:-2], system.B.shape[:-2])
    n, m = system.state_dim, system.action_dim
    return torch.cat([system.A.expand(batch + (n, n)), system.B.expand(batch + (n, m))], dim=-1)


def _check_system(system, fn: str) -> None:
    if not isinstance(system, LinearGaussianSystem):
        raise TypeError(f"{fn}: system: expected a cai.LinearGaussianSystem, got {type(system).__name__}")


def _backward(system: LinearGaussianSystem, alpha: float, exact: bool) -> LinearGaussianMessages:
    _check_system(system, "lg_backward_messages" if exact else "lg_soft_value_iteration")
    if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a finite number > 0, got {alpha!r}")
    alpha = float(alpha)
    n, m, T = system.state_dim, system.action_dim, system.horizon
    batch = system.batch_shape
    F = _joint_dynamics(system)  # (..., n, n+m)
    Ft = F.transpose(-1, -2)
    c, W, H, h = system.c, system.W, system.H, system.h

    P = system.H_T.expand(batch + (n, n))
    p = system.h_T.expand(batch + (n,))
    v = torch.zeros(batch, dtype=P.dtype, device=P.device)
    Ps, ps, vs = [P], [p], [v]
    Ms, ms, qs, Ks, ks, covs = [], [], [], [], [], []
    for _ in range(T):
        # Backup over the next state: the one line where exact inference and soft VI differ.
        if exact:
            Pb, pb, vb, _ = _log_expected_exp(P, p, v, W, alpha)
        else:
            Pb, pb, vb = _expected_value(P, p, v, W)
        # Substitute y = F z + c.
        M = _sym(H + Ft @ Pb @ F)
        mvec = h + _mv(Ft, pb - _mv(Pb, c))
        q0 = vb - 0.5 * _dot(c, _mv(Pb, c)) + _dot(pb, c)
        # Soft maximum over u (Gaussian integral).
        Mxx, Mxu = M[..., :n, :n], M[..., :n, n:]
        Mux, Muu = M[..., n:, :n], M[..., n:, n:]
        mx, mu = mvec[..., :n], mvec[..., n:]
        L, info = torch.linalg.cholesky_ex(Muu)
        if (info != 0).any():
            raise ValueError(
                "H: expected the soft Q function to be concave in u (M_uu = H_uu + B^T P B positive "
                "definite), got a non-positive-definite M_uu; the action integral diverges"
            )
        K = -torch.cholesky_solve(Mux, L)
        k = torch.cholesky_solve(mu.unsqueeze(-1), L).squeeze(-1)
        logdet_Muu = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        P = _sym(Mxx + Mxu @ K)
        p = mx - _mv(Mxu, k)
        v = q0 + 0.5 * _dot(mu, k) + alpha * (0.5 * m * math.log(2 * math.pi * alpha) - 0.5 * logdet_Muu)
        Ps.append(P), ps.append(p), vs.append(v)
        Ms.append(M), ms.append(mvec), qs.append(q0), Ks.append(K), ks.append(k)
        covs.append(alpha * torch.cholesky_inverse(L))

    # Log partition over the initial state.
    mu0, Sigma0 = system.mu0, system.Sigma0
    if exact:
        Pb, pb, vb, _ = _log_expected_exp(P, p, v, Sigma0, alpha, "Sigma0")
    else:
        Pb, pb, vb = _expected_value(P, p, v, Sigma0)
    log_partition = quadratic_value(Pb, pb, vb, mu0) / alpha

    def stack(xs, k):
        return torch.stack(torch.broadcast_tensors(*xs), dim=-1 - k)

    return LinearGaussianMessages(
        V_quad=stack(Ps[::-1], 2), V_lin=stack(ps[::-1], 1), V_const=stack(vs[::-1], 0),
        Q_quad=stack(Ms[::-1], 2), Q_lin=stack(ms[::-1], 1), Q_const=stack(qs[::-1], 0),
        K=stack(Ks[::-1], 2), k=stack(ks[::-1], 1), policy_cov=stack(covs[::-1], 2),
        log_partition=log_partition, alpha=alpha, exact=exact,
    )


def lg_soft_value_iteration(system: LinearGaussianSystem, alpha: float = 1.0) -> LinearGaussianMessages:
    """Soft value iteration (variational inference with fixed dynamics) for a linear-Gaussian system.

    ``Q_t(x, u) = r(x, u) + E[V_{t+1}(x')]`` and ``V_t(x) = alpha log ∫ exp(Q_t(x, u) / alpha) du``.
    The policy is ``N(K_t x + k_t, alpha (R + B^T P_{t+1} B)^-1)`` (with ``R = H_uu``, no cross
    term) and ``K_t, k_t, P_t, p_t`` are exactly the LQR solution for every ``alpha``.

    Args:
        system: The model.
        alpha: Temperature > 0.

    Returns:
        LinearGaussianMessages: with ``exact=False``; ``log_partition`` is the maximal ELBO.

    Raises:
        ValueError: If ``alpha`` is not a positive finite number or ``M_uu`` is not positive definite.
    """
    return _backward(system, alpha, exact=False)


def lg_backward_messages(system: LinearGaussianSystem, alpha: float = 1.0) -> LinearGaussianMessages:
    """Exact backward messages ``Q_t = r + alpha log E[exp(V_{t+1}(x') / alpha)]``.

    With ``W = 0`` they coincide with :func:`lg_soft_value_iteration`. With ``W != 0`` the values
    are higher (Jensen) and the gains differ: the posterior believes it controls the noise.

    Args:
        system: The model.
        alpha: Temperature > 0.

    Returns:
        LinearGaussianMessages: with ``exact=True``; ``log_partition`` is ``log p(O_{0:T-1})``.

    Raises:
        ValueError: If ``alpha`` is invalid, ``M_uu`` is not positive definite or a Gaussian
            expectation of ``exp(V / alpha)`` diverges.
    """
    return _backward(system, alpha, exact=True)


def lg_forward_messages(system: LinearGaussianSystem, messages: LinearGaussianMessages) -> LinearGaussianMarginals:
    """Forward Gaussian messages: posterior marginals of ``x_t`` and ``z_t = [x_t; u_t]``.

    For soft value iteration (``messages.exact`` False) the posterior is
    ``q(tau) = p0(x_0) prod_t p(x_{t+1} | x_t, u_t) pi_t(u_t | x_t)``. For exact inference the
    initial state and the dynamics are tilted too:
    ``p(x_0 | O) ∝ p0(x_0) exp(V_0(x_0) / alpha)`` and
    ``p(x' | x, u, O) ∝ p(x' | x, u) exp(V_{t+1}(x') / alpha)``, both Gaussian.

    Args:
        system: The model the messages were computed for.
        messages: Output of :func:`lg_soft_value_iteration` or :func:`lg_backward_messages`.

    Returns:
        LinearGaussianMarginals: means and covariances for ``t = 0..T`` (states) and
        ``t = 0..T-1`` (state-action pairs).
    """
    _check_system(system, "lg_forward_messages")
    if not isinstance(messages, LinearGaussianMessages):
        raise TypeError(f"lg_forward_messages: messages: expected the result of lg_backward_messages or "
                        f"lg_soft_value_iteration, got {type(messages).__name__}")
    n, m, T = system.state_dim, system.action_dim, system.horizon
    if tuple(messages.K.shape[-3:]) != (T, m, n) or tuple(messages.V_quad.shape[-3:]) != (T + 1, n, n):
        raise ValueError(
            f"lg_forward_messages: messages: expected messages of this system (T={T}, n={n}, m={m}: K of "
            f"trailing shape {(T, m, n)}), got K of shape {tuple(messages.K.shape)}; they were computed for "
            f"another system"
        )
    try:
        torch.broadcast_shapes(messages.V_const.shape[:-1], system.batch_shape)
    except RuntimeError:
        raise ValueError(
            f"lg_forward_messages: messages: expected the batch shape {tuple(system.batch_shape)} of this "
            f"system, got {tuple(messages.V_const.shape[:-1])}; they were computed for another system"
        ) from None
    alpha = messages.alpha
    batch = messages.V_const.shape[:-1]
    eye = torch.eye(n, dtype=messages.V_quad.dtype, device=messages.V_quad.device)

    def value_params(t):
        return messages.V_quad[..., t, :, :], messages.V_lin[..., t, :], messages.V_const[..., t]

    mean = system.mu0.expand(batch + (n,))
    cov = system.Sigma0.expand(batch + (n, n))
    if messages.exact:
        # p(x_0 | O) ∝ N(x_0; mu0, Sigma0) exp(V_0(x_0) / alpha).
        P, p, v = value_params(0)
        _, _, _, S = _log_expected_exp(P, p, v, cov, alpha, "Sigma0")
        mean, cov = mean + _mv(S, p - _mv(P, mean)) / alpha, S
    F = _joint_dynamics(system)
    Ft = F.transpose(-1, -2)
    means, covs, zmeans, zcovs = [mean], [cov], [], []
    for t in range(T):
        K, k, Sig = messages.K[..., t, :, :], messages.k[..., t, :], messages.policy_cov[..., t, :, :]
        u_mean = _mv(K, mean) + k
        cross = K @ cov  # Cov[u, x]
        u_cov = _sym(cross @ K.transpose(-1, -2) + Sig)
        z_mean = torch.cat([mean, u_mean], dim=-1)
        z_cov = torch.cat([torch.cat([cov, cross.transpose(-1, -2)], dim=-1),
                           torch.cat([cross, u_cov], dim=-1)], dim=-2)
        zmeans.append(z_mean), zcovs.append(z_cov)
        y_mean = _mv(F, z_mean) + system.c
        y_cov = F @ z_cov @ Ft
        if messages.exact:
            # p(x' | z, O) ∝ N(x'; y, W) exp(V_{t+1}(x') / alpha) = N(G y + S p / alpha, S),
            # G = I - S P / alpha: an affine map of y = F z + c plus noise of covariance S.
            P, p, v = value_params(t + 1)
            _, _, _, S = _log_expected_exp(P, p, v, system.W.expand(batch + (n, n)), alpha)
            G = eye - S @ P / alpha
            mean = _mv(G, y_mean) + _mv(S, p) / alpha
            cov = _sym(G @ y_cov @ G.transpose(-1, -2) + S)
        else:
            mean, cov = y_mean, _sym(y_cov + system.W)
        means.append(mean), covs.append(cov)
    return LinearGaussianMarginals(
        state_mean=torch.stack(means, -2), state_cov=torch.stack(covs, -3),
        joint_mean=torch.stack(zmeans, -2), joint_cov=torch.stack(zcovs, -3),
    )
