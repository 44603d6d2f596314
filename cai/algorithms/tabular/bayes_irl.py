r"""Bayesian inverse RL in Pyro: a posterior over linear reward weights, not a point.

The model (Ramachandran and Amir 2007, with the MaxEnt likelihood of Ziebart et al.)::

    theta ~ Normal(prior_loc, prior_scale^2 I)                     (F,)
    log p(demos | theta) = n * MaxEntIRL.log_likelihood(demos, weights=theta)

where ``MaxEntIRL.log_likelihood`` is the *exact* mean log-likelihood of a demonstration
(causal: ``sum_t log pi_theta(a_t | s_t)``; exact: ``log p(tau | s_0, O)``), computed from cai's
soft value iteration / backward messages and differentiable in ``theta``; it enters the Pyro
model as a ``pyro.factor``. Three ways to the posterior:

* ``method="nuts"``: :class:`pyro.infer.NUTS` inside :class:`pyro.infer.MCMC` (asymptotically
  exact; the reference);
* ``method="svi"``: stochastic variational inference with a full-covariance Gaussian guide
  (:class:`pyro.infer.autoguide.AutoMultivariateNormal`);
* ``method="laplace"``: the Gaussian at the MAP with covariance the inverse Hessian of the
  negative log joint (damped Newton with the exact Hessian by double differentiation through the
  core's recursion). Fast and deterministic: the tests' coverage study uses it.

Directions of ``theta`` the likelihood does not depend on (a constant feature under the causal
model, two identical features) keep the prior's width: the posterior there *is* the prior.

References:
    Ramachandran and Amir (2007), "Bayesian inverse reinforcement learning", IJCAI.
    Ziebart (2010), PhD thesis, CMU (the causal likelihood).
    Hoffman and Gelman (2014), "The No-U-Turn sampler", JMLR.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import pyro
import pyro.distributions as pdist
import torch
from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal
from tqdm.auto import tqdm

from cai.algorithms.tabular.irl import Demonstrations, MaxEntIRL, validate_demonstrations
from cai.algorithms.tabular.irl_many import log_likelihood_many
from cai.exact.sampling import Trajectories
from cai.mdp.checks import check_positive_int
from cai.mdp.tabular import TabularMDP
from cai.typing import ArrayLike

__all__ = ["BayesianIRL", "NUTS_METHOD", "SVI_METHOD", "LAPLACE_METHOD"]

NUTS_METHOD = "nuts"
SVI_METHOD = "svi"
LAPLACE_METHOD = "laplace"


class BayesianIRL:
    r"""A posterior over the linear reward weights of :class:`~cai.algorithms.tabular.irl.MaxEntIRL`.

    Args:
        mdp: :class:`~cai.TabularMDP` (dynamics; its rewards are ignored).
        features: ``(S, F)`` or ``(S, A, F)`` features (``None``: one indicator per state).
        alpha: temperature of the demonstrator model (> 0).
        variant: ``"causal"`` or ``"exact"`` (see :class:`~cai.algorithms.tabular.irl.MaxEntIRL`).
        initial: ``"empirical"`` (condition on each demonstration's start; the likelihood is then
            a proper likelihood of the actions) or ``"mdp"``.
        action_prior: ``None`` or a normalised ``(S, A)`` prior over actions.
        prior_loc: mean of the Normal prior (scalar or ``(F,)``).
        prior_scale: standard deviation of the prior (> 0; scalar or ``(F,)``).
        method: ``"nuts"``, ``"svi"`` or ``"laplace"``.
        num_samples: posterior samples kept (NUTS; SVI and Laplace draw this many from their
            Gaussian for :attr:`samples_`).
        warmup_steps: NUTS warm-up (adaptation) steps.
        svi_steps: SVI optimisation steps; ``lr``: its Adam learning rate.
        seed: seed of the sampler / SVI (the global torch RNG is restored afterwards).
        progress: show a progress bar.

    Attributes (after :meth:`fit`):
        samples_: ``(num_samples, F)`` posterior samples.
        mean_: ``(F,)`` posterior mean (sample mean for NUTS, the Gaussian's mean otherwise).
        cov_: ``(F, F)`` posterior covariance; ``std_``: ``(F,)`` its diagonal's square root.
        map_: ``(F,)`` the MAP (Laplace), ``None`` otherwise.
        history_: SVI losses (negative ELBO per step); NUTS: the acceptance diagnostics dict;
            Laplace: ``[negative log joint at the MAP]``.
        n_demonstrations_: number of demonstrations.

    Raises:
        ValueError: an unknown method, a non-positive scale, or bad arguments passed on to
            :class:`~cai.algorithms.tabular.irl.MaxEntIRL`.

    References:
        Ramachandran and Amir (2007); Ziebart (2010); Hoffman and Gelman (2014).
    """

    def __init__(self, mdp: TabularMDP, features: Optional[ArrayLike] = None, *, alpha: float = 1.0,
                 variant: str = "causal", initial: str = "empirical", action_prior: Optional[ArrayLike] = None,
                 prior_loc: Union[float, ArrayLike] = 0.0, prior_scale: Union[float, ArrayLike] = 1.0,
                 method: str = NUTS_METHOD, num_samples: int = 200, warmup_steps: int = 200, svi_steps: int = 1000,
                 lr: float = 0.02, seed: int = 0, progress: bool = False) -> None:
        self._irl = MaxEntIRL(mdp, features, alpha=alpha, variant=variant, initial=initial, action_prior=action_prior)
        F = self._irl.n_features
        dt, dev = mdp.dtype, mdp.device
        loc = torch.as_tensor(prior_loc, dtype=dt, device=dev)
        scale = torch.as_tensor(prior_scale, dtype=dt, device=dev)
        for nm, v in (("prior_loc", loc), ("prior_scale", scale)):
            if v.dim() > 1 or (v.dim() == 1 and v.shape[0] != F):
                raise ValueError(f"{nm}: expected a scalar or shape ({F},), got {tuple(v.shape)}")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{nm}: expected finite values, got {v.tolist()}")
        if not bool((scale > 0).all()):
            raise ValueError(f"prior_scale: expected positive values, got {scale.tolist()}")
        if method not in (NUTS_METHOD, SVI_METHOD, LAPLACE_METHOD):
            raise ValueError(f"method: expected 'nuts', 'svi' or 'laplace', got {method!r}")
        check_positive_int("num_samples", num_samples)
        check_positive_int("warmup_steps", warmup_steps)
        check_positive_int("svi_steps", svi_steps)
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr: expected a positive number, got {lr!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        self.mdp, self.features, self.alpha, self.variant, self.initial = mdp, features, alpha, variant, initial
        self.action_prior, self.prior_loc, self.prior_scale, self.method = action_prior, prior_loc, prior_scale, method
        self.num_samples, self.warmup_steps, self.svi_steps, self.lr = num_samples, warmup_steps, svi_steps, lr
        self.seed, self.progress = seed, progress
        self._loc, self._scale = loc.expand(F).clone(), scale.expand(F).clone()

    @property
    def n_features(self) -> int:
        return self._irl.n_features

    # -----------------------------------------------------------------------------------------
    def log_likelihood(self, demonstrations: Union[Trajectories, Sequence, Demonstrations],
                       weights: ArrayLike) -> torch.Tensor:
        """Total log-likelihood ``n * MaxEntIRL.log_likelihood`` of the demonstrations (differentiable).

        Args:
            demonstrations: see :func:`~cai.algorithms.tabular.irl.validate_demonstrations`.
            weights: ``(F,)``.

        Returns:
            Scalar tensor.
        """
        demos = demonstrations if isinstance(demonstrations, Demonstrations) else \
            validate_demonstrations(demonstrations, self.mdp)
        return demos.n * self._irl.log_likelihood(demos, weights=weights)

    def log_likelihood_many(self, demonstration_sets: Sequence, weights: ArrayLike) -> torch.Tensor:
        """Each set's total log-likelihood under its own weights, in one batched solve.

        ``out[b] = log_likelihood(demonstration_sets[b], weights[b])``, through
        :func:`~cai.algorithms.tabular.irl_many.log_likelihood_many`.

        Args:
            demonstration_sets: ``B`` demonstration sets.
            weights: ``(B, F)``; differentiable.

        Returns:
            ``(B,)`` tensor.
        """
        sets = [d if isinstance(d, Demonstrations) else validate_demonstrations(d, self.mdp)
                for d in demonstration_sets] if isinstance(demonstration_sets, (list, tuple)) else demonstration_sets
        ll = log_likelihood_many(self._irl, sets, weights)
        n = torch.tensor([d.n for d in sets], dtype=ll.dtype, device=ll.device)
        return n * ll

    def log_joint(self, demonstrations: Union[Trajectories, Sequence, Demonstrations],
                  weights: ArrayLike) -> torch.Tensor:
        """``log p(theta) + log p(demos | theta)`` (differentiable), scalar."""
        w = torch.as_tensor(weights, dtype=self.mdp.dtype, device=self.mdp.device)
        prior = pdist.Normal(self._loc, self._scale).log_prob(w).sum()
        return prior + self.log_likelihood(demonstrations, w)

    def _model(self, demos: Demonstrations) -> None:
        w = pyro.sample("w", pdist.Normal(self._loc, self._scale).to_event(1))
        pyro.factor("log_likelihood", demos.n * self._irl.log_likelihood(demos, weights=w))

    # -----------------------------------------------------------------------------------------
    def fit(self, demonstrations: Union[Trajectories, Sequence]) -> BayesianIRL:
        """Compute the posterior given demonstrations.

        Args:
            demonstrations: see :func:`~cai.algorithms.tabular.irl.validate_demonstrations`.

        Returns:
            ``self``, with the attributes listed in the class docstring.
        """
        demos = validate_demonstrations(demonstrations, self.mdp)
        self.n_demonstrations_ = demos.n
        self.map_ = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if self.method == NUTS_METHOD:
                self._fit_nuts(demos)
            elif self.method == SVI_METHOD:
                self._fit_svi(demos)
            else:
                self._fit_laplace(demos)
        self.std_ = self.cov_.diagonal().sqrt()
        return self

    def _fit_nuts(self, demos: Demonstrations) -> None:
        kernel = NUTS(self._model, adapt_step_size=True, init_strategy=pyro.infer.autoguide.init_to_mean)
        mcmc = MCMC(kernel, num_samples=self.num_samples, warmup_steps=self.warmup_steps,
                    disable_progbar=not self.progress)
        mcmc.run(demos)
        s = mcmc.get_samples()["w"].detach()
        self.samples_ = s
        self.mean_ = s.mean(0)
        c = s - self.mean_
        self.cov_ = c.t() @ c / max(s.shape[0] - 1, 1)
        self.history_ = mcmc.diagnostics()

    def _fit_svi(self, demos: Demonstrations) -> None:
        pyro.clear_param_store()
        guide = AutoMultivariateNormal(self._model, init_loc_fn=pyro.infer.autoguide.init_to_mean)
        svi = SVI(self._model, guide, pyro.optim.Adam({"lr": self.lr}), loss=Trace_ELBO())
        losses: List[float] = []
        for _ in tqdm(range(self.svi_steps), disable=not self.progress, desc="BayesianIRL (svi)"):
            losses.append(float(svi.step(demos)))
        with torch.no_grad():
            loc = guide.loc.detach().clone()
            L = guide.scale_tril.detach() * guide.scale.detach().unsqueeze(-1) \
                if hasattr(guide, "scale") else guide.scale_tril.detach()
        self.mean_, self.cov_ = loc, L @ L.t()
        self.samples_ = self._gaussian_samples()
        self.history_ = losses
        pyro.clear_param_store()

    def _fit_laplace(self, demos: Demonstrations) -> None:
        # damped Newton on the negative log joint (convex: the prior is strictly convex and the
        # MaxEnt log-likelihood is concave in linear weights), with the exact Hessian
        def nlj(x):
            return -self.log_joint(demos, x)

        w = self._loc.clone()
        f = float(nlj(w).detach())
        for _ in range(100):
            x = w.clone().requires_grad_(True)
            grad, = torch.autograd.grad(nlj(x), x)
            H = torch.autograd.functional.hessian(nlj, w)
            step = torch.linalg.solve(0.5 * (H + H.t()), grad)
            t = 1.0
            while True:
                w_new = w - t * step
                f_new = float(nlj(w_new).detach())
                if f_new <= f + 1e-12 * abs(f) or t < 1e-6:
                    break
                t *= 0.5
            w, f = w_new, f_new
            if float((t * step).abs().max()) < 1e-10:
                break
        H = torch.autograd.functional.hessian(nlj, w)
        H = 0.5 * (H + H.t())
        self.map_, self.mean_ = w, w
        self.cov_ = torch.linalg.inv(H)
        self.samples_ = self._gaussian_samples()
        self.history_ = [f]

    def _gaussian_samples(self) -> torch.Tensor:
        L = torch.linalg.cholesky(0.5 * (self.cov_ + self.cov_.t()))
        z = torch.randn(self.num_samples, self.n_features, dtype=self.mdp.dtype, device=self.mdp.device)
        return self.mean_ + z @ L.t()

    # -----------------------------------------------------------------------------------------
    def credible_interval(self, level: float = 0.9) -> Tuple[torch.Tensor, torch.Tensor]:
        """Central per-weight credible intervals ``(lo, hi)``, each ``(F,)``.

        NUTS: empirical quantiles of the samples; SVI and Laplace: ``mean -/+ z std`` of the
        Gaussian.

        Args:
            level: probability mass inside, in (0, 1).

        Returns:
            ``(lo, hi)``.

        Raises:
            ValueError: ``level`` outside (0, 1).
            AttributeError: before :meth:`fit`.
        """
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
        if not hasattr(self, "mean_"):
            raise AttributeError("BayesianIRL: the posterior is set by fit(); call fit(demonstrations) first")
        if self.method == NUTS_METHOD:
            q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=self.samples_.dtype)
            lo, hi = torch.quantile(self.samples_, q, dim=0)
            return lo, hi
        z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor((1 + level) / 2)))
        return self.mean_ - z * self.std_, self.mean_ + z * self.std_
