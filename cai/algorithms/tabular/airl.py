r"""Adversarial inverse RL on a tabular MDP, with exact expectations (no sampling anywhere).

AIRL (Fu, Luo and Levine 2018) trains a discriminator between demonstrated and generated
transitions whose form makes its logit a reward plus a shaping term::

    D(s, a, s') = exp(f(s, a, s') / alpha) / (exp(f(s, a, s') / alpha) + pi(a | s)),
    f(s, a, s') = g(s) + gamma h(s') - h(s)

with ``g`` a state-only reward (linear in state features; default one indicator per state) and
``h`` a tabular shaping potential. The policy's reward ``log D - log(1 - D) = f / alpha - log pi``
makes the policy step an entropy-regularised RL problem with reward ``E_{s'} f(s, a, s')`` at
temperature ``alpha``: it is solved *exactly* by :func:`cai.soft_value_iteration`. The
discriminator minimises the logistic loss

    L(g, h) = - E_demo[ log D(s, a, s') ] - E_pi[ log (1 - D(s, a, s')) ]

where ``E_demo`` is over the demonstrations' (discounted) transitions and ``E_pi`` over the
*exact* distribution of ``(s_t, a_t, s_{t+1})`` of the current policy from the demonstrations'
start states, with the same time weights (``gamma^t`` times the fraction of demonstrations
still running at ``t``): the loss is an expectation computed in closed form, not a sample
average. Each iteration solves the policy once and takes ``disc_steps`` Adam steps on the loss.

What the paper claims and the tests check: with deterministic dynamics and a state-only true
reward, ``g`` recovers it up to a constant (``h`` absorbs the shaping ``gamma V(s') - V(s)``), and
``g`` re-optimised under *changed* dynamics gives a good policy there, where a state-action
reward learned by MaxEnt IRL (which also fits the old dynamics' shaping) does not.

``discriminator="gail"`` is the contrast (Ho and Ermon 2016): an unshaped ``D(s, a) =
sigmoid(c(s, a))`` with a tabular ``c``; the policy's reward is ``c`` (``log D - log(1 - D)``).
At GAIL's equilibrium the discriminator cannot tell the policy from the demonstrator and ``c``
carries no reward information.

(Widely used implementations, e.g. the ``imitation`` library's AIRL, drop the ``- log pi`` term
of the logit and so train the unshaped discriminator; this module keeps the paper's form.)

References:
    Fu, Luo and Levine (2018), "Learning robust rewards with adversarial inverse reinforcement
    learning", ICLR, §4-5 and Theorem 5.1.
    Ho and Ermon (2016), "Generative adversarial imitation learning", NeurIPS.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence, Union

import torch
import torch.nn.functional as nnf
from tqdm.auto import tqdm

from cai.algorithms.tabular.irl import Demonstrations, MaxEntIRL, validate_demonstrations
from cai.dp.soft_vi import soft_value_iteration
from cai.dp.visitation import policy_visitation
from cai.exact.sampling import Trajectories
from cai.mdp.checks import as_tensor, check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.solution import Solution
from cai.typing import ArrayLike

__all__ = ["AIRL", "AIRLStep", "AIRL_FORM", "GAIL_FORM", "transition_distribution", "policy_return"]

AIRL_FORM = "airl"
GAIL_FORM = "gail"


class AIRLStep(NamedTuple):
    """One entry of :attr:`AIRL.history_`.

    Attributes:
        iteration: 0-based iteration.
        loss: the discriminator's expected logistic loss after that iteration's steps
            (``2 log 2 = 1.386`` when it cannot tell demonstrations from the policy).
        gap: ``sum |d_demo(s, a) - d_pi(s, a)|``, the L1 distance between the normalised
            state-action distributions of the demonstrations and of the policy (before the steps).
    """

    iteration: int
    loss: float
    gap: float


def _time_weights(demos: Demonstrations, gamma: float, dtype, device) -> torch.Tensor:
    """``(L,)`` weights ``gamma^t * (fraction of demonstrations with an action at t)``."""
    L = demos.actions.shape[1]
    alive = demos.mask.to(dtype).mean(0)
    return gamma ** torch.arange(L, dtype=dtype, device=device) * alive


def transition_distribution(demos: Demonstrations, mdp: TabularMDP) -> torch.Tensor:
    r"""The demonstrations' (discounted) transition distribution ``(S, A, S)``, summing to 1.

    Each observed ``(s_t, a_t, s_{t+1})`` counts ``gamma^t``; a final action whose next state was
    not observed counts ``gamma^t P(s' | s_t, a_t)``.

    Args:
        demos: validated demonstrations (:func:`~cai.algorithms.tabular.irl.validate_demonstrations`).
        mdp: the MDP.

    Returns:
        ``(S, A, S)`` tensor.
    """
    S, A = mdp.n_states, mdp.n_actions
    L = demos.actions.shape[1]
    P = mdp.dense_transitions()
    w = (mdp.gamma ** torch.arange(L, dtype=mdp.dtype, device=mdp.device)).expand(demos.n, L)
    s, a, s2 = demos.states[:, :L], demos.actions, demos.states[:, 1:]
    obs = demos.has_next
    flat = ((s * A + a) * S + s2)[obs]
    out = torch.zeros(S * A * S, dtype=mdp.dtype, device=mdp.device).index_add_(0, flat, w[obs])
    out = out.reshape(S, A, S)
    unobs = demos.mask & ~obs
    if bool(unobs.any()):
        d = torch.zeros(S * A, dtype=mdp.dtype, device=mdp.device).index_add_(0, (s * A + a)[unobs], w[unobs])
        out = out + d.reshape(S, A, 1) * P
    return out / out.sum()


def policy_return(mdp: TabularMDP, policy: ArrayLike, reward: Optional[ArrayLike] = None) -> torch.Tensor:
    r"""Expected discounted return ``E[sum_t gamma^t r(s_t, a_t)]`` of a stationary policy from ``mdp.initial``.

    ``sum_{s,a} d(s, a) r(s, a)`` with ``d`` the discounted occupancy of
    :func:`~cai.dp.visitation.policy_visitation`; entries with no occupancy contribute 0 (so
    forbidden ``-inf`` rewards are fine). No entropy term.

    Args:
        mdp: a stationary :class:`~cai.TabularMDP`.
        policy: ``(S, A)``.
        reward: ``(S, A)`` reward to score with; default the MDP's own (``"sa"`` layout).

    Returns:
        Scalar tensor.

    Raises:
        ValueError: a finite-horizon MDP (use :func:`cai.expected_return`), or a bad shape.
    """
    if mdp.horizon is not None:
        raise ValueError("mdp: expected a stationary MDP (horizon=None), got a finite horizon; "
                         "use cai.expected_return")
    S, A = mdp.n_states, mdp.n_actions
    r = mdp.rewards if reward is None else as_tensor("reward", reward, mdp.dtype, mdp.device)
    if tuple(r.shape) != (S, A):
        raise ValueError(f"reward: expected shape (S, A) = ({S}, {A}), got {tuple(r.shape)}")
    d = policy_visitation(mdp, policy)
    return torch.where(d > 0, d * r, torch.zeros_like(d)).sum()


class AIRL:
    r"""Adversarial inverse RL (or GAIL's unshaped discriminator) with exact inner solves.

    Args:
        mdp: a stationary (``horizon=None``, discounted) :class:`~cai.TabularMDP` giving the
            dynamics; its rewards are ignored.
        features: ``(S, F)`` state features for ``g(s) = features @ theta`` (``airl`` only);
            ``None``: one indicator per state.
        alpha: temperature of the policy and of the discriminator's logit (> 0).
        discriminator: ``"airl"`` (shaped, ``f = g(s) + gamma h(s') - h(s)``) or ``"gail"``
            (unshaped tabular ``c(s, a)``).
        n_iter: number of (policy solve, discriminator steps) iterations.
        disc_steps: Adam steps on the discriminator per iteration.
        lr: Adam learning rate.
        l2: L2 penalty ``l2/2 |params|^2`` on the discriminator's parameters.
        progress: show a tqdm progress bar.

    There is no seed: nothing is sampled (the policy is solved exactly and both expectations
    of the loss are computed in closed form), so a fit is deterministic.

    Attributes (after :meth:`fit`):
        reward_: ``(S, A)`` the learned reward: ``g(s)`` on every allowed action (``airl``) or
            ``c(s, a)`` (``gail``); ``-inf`` on the MDP's forbidden actions.
        state_reward_: ``(S,)`` ``g`` (``airl``; ``None`` for ``gail``).
        shaping_: ``(S,)`` ``h`` (``airl``; ``None`` for ``gail``).
        weights_: ``(F,)`` ``theta`` (``airl``; ``None`` for ``gail``).
        policy_: ``(S, A)`` the final policy (soft-optimal for the final discriminator's reward).
        solution_: its :class:`~cai.Solution`.
        history_: list of :class:`AIRLStep`.
        n_iter_: iterations run.

    Raises:
        ValueError: a finite-horizon MDP, bad features, an unknown discriminator, or bad numbers.

    References:
        Fu, Luo and Levine (2018), ICLR; Ho and Ermon (2016), NeurIPS.
    """

    def __init__(self, mdp: TabularMDP, features: Optional[ArrayLike] = None, *, alpha: float = 1.0,
                 discriminator: str = AIRL_FORM, n_iter: int = 60, disc_steps: int = 10, lr: float = 0.02,
                 l2: float = 0.0, progress: bool = False) -> None:
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        if mdp.horizon is not None:
            raise ValueError(f"mdp: expected a stationary discounted MDP (horizon=None), got horizon={mdp.horizon}")
        if discriminator not in (AIRL_FORM, GAIL_FORM):
            raise ValueError(f"discriminator: expected 'airl' or 'gail', got {discriminator!r}")
        for nm, v in (("n_iter", n_iter), ("disc_steps", disc_steps)):
            check_positive_int(nm, v)
        for nm, v, lo in (("lr", lr, 0.0), ("l2", l2, None)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or (v <= 0 if lo is not None else v < 0):
                raise ValueError(f"{nm}: expected a {'positive' if lo is not None else 'non-negative'} number, "
                                 f"got {v!r}")
        if features is not None:
            ft = as_tensor("features", features, mdp.dtype, mdp.device)
            if ft.dim() != 2:
                raise ValueError(f"features: expected state features (S, F) = ({mdp.n_states}, F), got "
                                 f"{tuple(ft.shape)}")
        # MaxEntIRL holds the shared checks (alpha, features) and the constrained soft VI solve
        self._irl = MaxEntIRL(mdp, features, alpha=alpha, variant="causal")
        self.mdp, self.features, self.alpha, self.discriminator = mdp, features, alpha, discriminator
        self.n_iter, self.disc_steps, self.lr, self.l2, self.progress = n_iter, disc_steps, lr, l2, progress

    # -----------------------------------------------------------------------------------------
    def _allowed(self) -> torch.Tensor:
        al = self.mdp.allowed
        return al.reshape(-1, *al.shape[-2:]).any(0)

    def _policy_reward(self, params) -> torch.Tensor:
        """``(S, A)``: ``E_{s'} f(s, a, s')`` (airl) or ``c(s, a)`` (gail)."""
        if self.discriminator == GAIL_FORM:
            return params[0]
        theta, h = params
        g = self._irl._phi[:, 0, :] @ theta
        P = self.mdp.dense_transitions()
        return g.unsqueeze(1) + self.mdp.gamma * (P @ h) - h.unsqueeze(1)

    def _logits(self, params, log_pi: torch.Tensor) -> torch.Tensor:
        """The discriminator's logit ``(S, A, S)`` (airl) or ``(S, A)`` (gail)."""
        if self.discriminator == GAIL_FORM:
            return params[0]
        theta, h = params
        g = self._irl._phi[:, 0, :] @ theta
        f = g.reshape(-1, 1, 1) + self.mdp.gamma * h.reshape(1, 1, -1) - h.reshape(-1, 1, 1)
        return f / self._irl._alpha - log_pi.unsqueeze(-1)

    def _policy_distribution(self, policy: torch.Tensor, demos: Demonstrations, tw: torch.Tensor) -> torch.Tensor:
        """``(S, A)``: ``sum_t tw_t p(s_t = s, a_t = a)`` from the demonstrations' start states, normalised."""
        S = self.mdp.n_states
        mu = torch.zeros(S, dtype=self.mdp.dtype, device=self.mdp.device).index_add_(
            0, demos.states[:, 0], torch.ones(demos.n, dtype=self.mdp.dtype, device=self.mdp.device)) / demos.n
        P = self.mdp.dense_transitions()
        total = torch.zeros_like(policy)
        for t in range(tw.shape[0]):
            d = mu.unsqueeze(-1) * policy
            total = total + tw[t] * d
            mu = torch.einsum("sa,sax->x", d, P)
        return total / total.sum()

    @staticmethod
    def _loss(logits, p_demo, p_pol) -> torch.Tensor:
        pos = torch.where(p_demo > 0, p_demo * nnf.logsigmoid(logits), torch.zeros_like(logits))
        neg = torch.where(p_pol > 0, p_pol * nnf.logsigmoid(-logits), torch.zeros_like(logits))
        return -(pos.sum() + neg.sum())

    def discriminator_loss(self, demonstrations: Union[Trajectories, Sequence], policy: ArrayLike) -> torch.Tensor:
        """The fitted discriminator's exact expected loss against ``policy`` (``(S, A)``).

        Args:
            demonstrations: see :func:`~cai.algorithms.tabular.irl.validate_demonstrations`.
            policy: ``(S, A)`` a stationary policy.

        Returns:
            Scalar tensor (``2 log 2`` when ``D = 1/2`` everywhere).
        """
        demos = validate_demonstrations(demonstrations, self.mdp)
        pi = as_tensor("policy", policy, self.mdp.dtype, self.mdp.device)
        p_demo, p_pol = self._distributions(demos, pi)
        with torch.no_grad():
            return self._loss(self._logits(self._params_(), torch.log(pi)), p_demo, p_pol)

    def _params_(self):
        if not hasattr(self, "_fitted_params"):
            raise AttributeError("AIRL: the discriminator is set by fit(); call fit(demonstrations) first")
        return self._fitted_params

    def _distributions(self, demos: Demonstrations, pi: torch.Tensor):
        tw = _time_weights(demos, self.mdp.gamma, self.mdp.dtype, self.mdp.device)
        d_pol = self._policy_distribution(pi, demos, tw)
        if self.discriminator == GAIL_FORM:
            return transition_distribution(demos, self.mdp).sum(-1), d_pol
        return transition_distribution(demos, self.mdp), d_pol.unsqueeze(-1) * self.mdp.dense_transitions()

    # -----------------------------------------------------------------------------------------
    def fit(self, demonstrations: Union[Trajectories, Sequence]) -> AIRL:
        """Train the discriminator and the policy against each other.

        Args:
            demonstrations: see :func:`~cai.algorithms.tabular.irl.validate_demonstrations`.

        Returns:
            ``self``, with the attributes listed in the class docstring.
        """
        demos = validate_demonstrations(demonstrations, self.mdp)
        mdp = self.mdp
        S, A = mdp.n_states, mdp.n_actions
        allowed = self._allowed()
        tw = _time_weights(demos, mdp.gamma, mdp.dtype, mdp.device)
        p_demo_sas = transition_distribution(demos, mdp)
        if self.discriminator == GAIL_FORM:
            params = [torch.zeros(S, A, dtype=mdp.dtype, device=mdp.device, requires_grad=True)]
            p_demo = p_demo_sas.sum(-1)
        else:
            F = self._irl.n_features
            params = [torch.zeros(F, dtype=mdp.dtype, device=mdp.device, requires_grad=True),
                      torch.zeros(S, dtype=mdp.dtype, device=mdp.device, requires_grad=True)]
            p_demo = p_demo_sas
        opt = torch.optim.Adam(params, lr=self.lr)
        history: List[AIRLStep] = []
        bar = tqdm(range(self.n_iter), disable=not self.progress, desc=f"AIRL ({self.discriminator})")
        it = 0
        for it in bar:
            with torch.no_grad():
                r = self._policy_reward([p.detach() for p in params])
                _, sol = self._irl.solve(r)
                pi = sol.policy
                log_pi = torch.where(allowed, sol.log_policy, torch.zeros_like(pi))  # forbidden: no mass
                d_pol = self._policy_distribution(pi, demos, tw)
                p_pol = d_pol if self.discriminator == GAIL_FORM else d_pol.unsqueeze(-1) * mdp.dense_transitions()
                gap = float((p_demo_sas.sum(-1) - d_pol).abs().sum())
            for _ in range(self.disc_steps):
                opt.zero_grad()
                loss = self._loss(self._logits(params, log_pi), p_demo, p_pol)
                if self.l2:
                    loss = loss + 0.5 * self.l2 * sum((p * p).sum() for p in params)
                loss.backward()
                opt.step()
            history.append(AIRLStep(it, float(loss.detach()), gap))
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", gap=f"{gap:.3g}")
        bar.close()
        final = [p.detach().clone() for p in params]
        with torch.no_grad():
            _, sol = self._irl.solve(self._policy_reward(final))
        self._fitted_params = final
        self.n_iter_ = it + 1
        self.history_ = history
        self.solution_ = sol
        self.policy_ = sol.policy.detach()
        if self.discriminator == GAIL_FORM:
            self.weights_, self.state_reward_, self.shaping_ = None, None, None
            c = final[0]
        else:
            self.weights_ = final[0]
            self.state_reward_ = self._irl._phi[:, 0, :] @ final[0]
            self.shaping_ = final[1]
            c = self.state_reward_.unsqueeze(1).expand(S, A)
        self.reward_ = torch.where(allowed, c, torch.full_like(c, -math.inf))
        return self

    def transfer(self, mdp: TabularMDP, alpha: Optional[float] = None) -> Solution:
        """Re-optimise the learned reward ``reward_`` under other dynamics: soft VI on ``mdp``.

        Args:
            mdp: a stationary MDP with the same states and actions (e.g. a moved wall).
            alpha: temperature (default: the learner's).

        Returns:
            :class:`~cai.Solution` of ``mdp`` with its rewards replaced by ``reward_``.

        Raises:
            ValueError: a different number of states or actions.
        """
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp: expected a cai.TabularMDP, got {type(mdp).__name__}")
        self._params_()
        r = self.reward_
        if (mdp.n_states, mdp.n_actions) != tuple(r.shape):
            raise ValueError(f"mdp: expected {tuple(r.shape)} states and actions (the learner's), got "
                             f"({mdp.n_states}, {mdp.n_actions})")
        return soft_value_iteration(mdp.replace(rewards=r, reward_layout="sa"),
                                    self.alpha if alpha is None else alpha)
