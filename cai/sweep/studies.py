r"""Built-in studies for :func:`cai.sweep.sweep` and ``cai sweep SPEC``.

Each study is a module-level function ``config -> record`` (importable by worker processes) with a
default grid and a standard figure (:mod:`cai.viz.studies`):

* :func:`optimism` — the optimism gap ``log p(O) - max ELBO`` (nats; exact inference's log
  evidence minus soft value iteration's maximal ELBO, ``>= 0``, zero for deterministic
  dynamics) of a registry world over slip x alpha. Batched over ``alpha``: one solve per
  (world, slip) for all temperatures.
* :func:`garnet` — the same gap, and the soft − hard value gap, on Garnet random MDPs (one seed
  per configuration): the study behind "how large is the optimism gap over a thousand MDPs".
* :func:`multimodality` — SQL or SAC (fixed temperature ``alpha``) trained on the Multigoal world,
  then rolled out from the origin: the fraction of rollouts reaching each of the four goals, the
  number of goals reached by at least 5% of them, and the entropy of the goal distribution (nats,
  ``log 4`` when the four goals are reached equally often).
* :func:`irl_recovery` — MaxEnt IRL from ``n_demos`` demonstrations of a known reward on a
  Garnet MDP: the error of the recovered reward's policy (total variation to the true soft
  policy, weighted by the true policy's own state visitation) and the demonstrations'
  log-likelihood under both rewards.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch

__all__ = ["optimism", "garnet", "irl_recovery", "multimodality", "STUDIES"]

Record = Dict[str, Any]


def _gap_records(mdp, alphas: List[float]) -> List[Record]:
    from cai.dp.soft_vi import soft_value_iteration, value_iteration
    from cai.exact.messages import backward_messages

    a = torch.tensor([float(x) for x in alphas], dtype=mdp.dtype)
    ex = backward_messages(mdp, alpha=a, keep="V0")
    sv = soft_value_iteration(mdp, alpha=a, keep="V0")
    hard = float(value_iteration(mdp, keep="V0").value)
    out = []
    for i in range(len(alphas)):
        le, me = float(ex.log_evidence[i]), float(sv.max_elbo[i])
        out.append({"log_evidence": le, "max_elbo": me, "optimism_gap": le - me,
                    "soft_value": float(sv.value[i]), "hard_value": hard,
                    "soft_minus_hard": float(sv.value[i]) - hard})
    return out


def optimism(configs: List[Record]) -> List[Record]:
    """Records for configurations ``{"world", "slip", "alpha"[, "horizon"]}`` that differ only in alpha.

    Returns, per configuration: ``log_evidence`` (nats), ``max_elbo`` (nats), ``optimism_gap =
    log_evidence - max_elbo`` (nats, >= 0), ``soft_value`` / ``hard_value`` (``sum_s p0(s)
    V_0(s)`` of soft and hard value iteration, reward units) and their difference.
    """
    from cai.worlds.registry import DEFAULT, make_world

    c0 = configs[0]
    mdp = make_world(c0["world"], slip=c0.get("slip"), horizon=c0.get("horizon", DEFAULT))
    return _gap_records(mdp, [c["alpha"] for c in configs])


optimism.batch_axis = "alpha"


def garnet(config: Record) -> Record:
    """One Garnet MDP ``{"n_states", "n_actions", "branching", "seed", "alpha"[, "horizon"]}``.

    Returns the same fields as :func:`optimism` for that MDP at that temperature.
    """
    from cai.worlds.builders import random_mdp

    mdp = random_mdp(int(config.get("n_states", 200)), int(config.get("n_actions", 4)),
                     int(config.get("branching", 3)), seed=int(config["seed"]), horizon=int(config.get("horizon", 20)))
    return _gap_records(mdp, [config.get("alpha", 1.0)])[0]


def irl_recovery(config: Record) -> Record:
    """MaxEnt IRL from ``n_demos`` demonstrations ``{"n_demos", "seed"[, "n_states", "n_features", "alpha"]}``.

    A Garnet MDP (``n_states`` states, 3 actions, horizon 8) gets a reward ``phi @ w_true`` with
    random state-action features; the demonstrations are sampled from its soft-optimal policy.

    Returns:
        ``policy_tv``: mean total variation between the recovered and the true soft policies,
        weighted by the true policy's state visitation (per step, over the horizon);
        ``loglik_true`` / ``loglik_fit``: the demonstrations' mean causal log-likelihood per trajectory
        under the true and the recovered reward (the fit may exceed the truth on few demos);
        ``iterations``: optimiser steps.
    """
    from cai.algorithms.tabular.irl import MaxEntIRL
    from cai.dp.soft_vi import soft_value_iteration
    from cai.dp.visitation import policy_marginals
    from cai.exact.sampling import sample_trajectories
    from cai.worlds.builders import random_mdp

    S, F = int(config.get("n_states", 12)), int(config.get("n_features", 4))
    alpha, seed = float(config.get("alpha", 1.0)), int(config["seed"])
    mdp = random_mdp(S, 3, 3, seed=seed, horizon=8)
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(S, 3, F, generator=g, dtype=torch.float64)
    w_true = torch.randn(F, generator=g, dtype=torch.float64)
    true = soft_value_iteration(mdp.replace(rewards=phi @ w_true), alpha)
    demos = sample_trajectories(mdp, true.policy, int(config["n_demos"]), generator=g)
    irl = MaxEntIRL(mdp, phi, alpha=alpha, n_iter=int(config.get("n_iter", 300))).fit(demos)
    fit_pi = irl.policy_
    d = policy_marginals(mdp, true.policy).state[:-1]                     # (T, S)
    tv = 0.5 * (fit_pi - true.policy).abs().sum(-1)                        # (T, S)
    return {"policy_tv": float((d * tv).sum() / d.sum()),
            "loglik_true": float(irl.log_likelihood(demos, weights=w_true)),
            "loglik_fit": float(irl.log_likelihood(demos)),
            "iterations": int(irl.n_iter_)}


def multimodality(config: Record) -> Record:
    """One deep learner on Multigoal ``{"algo": "sql"|"sac", "alpha", "seed"[, "steps", "hidden", "rollouts"]}``.

    SQL uses ``alpha`` as its temperature; SAC keeps it fixed (``autotune_alpha=False``), so both
    answer "how many modes at this temperature". After ``steps`` environment steps the stochastic
    policy is rolled out ``rollouts`` times from the origin (:func:`cai.worlds.multigoal.goal_hit_fractions`).

    Returns:
        ``goal_0`` .. ``goal_3``: fraction of rollouts reaching each goal; ``goals_reached``: how
        many goals at least 5% of the rollouts reach; ``goal_entropy``: entropy (nats) of the
        reached goals' distribution (rollouts reaching none left out; 0 when none reach any).
    """
    import math

    import numpy as np

    from cai.algorithms.deep.sac import SAC, SACConfig
    from cai.algorithms.deep.sql import SQL, SQLConfig
    from cai.worlds.multigoal import MultiGoalEnv, goal_hit_fractions

    algo, alpha, seed = str(config["algo"]).lower(), float(config["alpha"]), int(config["seed"])
    steps, rollouts = int(config.get("steps", 3000)), int(config.get("rollouts", 50))
    hidden = tuple(config.get("hidden", (64, 64)))
    if algo == "sql":
        agent = SQL(SQLConfig(hidden_sizes=hidden, alpha=alpha, q_lr=1e-3, sampler_lr=1e-3, batch_size=64,
                              learning_starts=min(500, steps // 2), progress=False, seed=seed))
        act = agent.act
    elif algo == "sac":
        agent = SAC(SACConfig(hidden_sizes=hidden, init_alpha=alpha, autotune_alpha=False, batch_size=64,
                              learning_starts=min(500, steps // 2), progress=False, seed=seed))
        act = lambda obs: agent.act(obs, deterministic=False)  # noqa: E731
    else:
        raise ValueError(f"algo: expected 'sql' or 'sac', got {config['algo']!r}")
    agent.fit(MultiGoalEnv(), total_steps=steps)
    frac, _ = goal_hit_fractions(MultiGoalEnv(), act, n_rollouts=rollouts, seed=seed + 1)
    total = float(frac.sum())
    p = frac / total if total > 0 else np.zeros_like(frac)
    entropy = -sum(float(x) * math.log(float(x)) for x in p if x > 0)
    return {**{f"goal_{i}": float(f) for i, f in enumerate(frac)}, "goals_reached": int((frac >= 0.05).sum()),
            "goal_entropy": entropy}


#: study name -> (function, default grid axes, figure kind)
STUDIES = {
    "optimism": (optimism, {"world": "cliff", "slip": [0.0, 0.05, 0.1, 0.2, 0.3], "alpha": [0.1, 0.3, 1.0, 3.0, 10.0]}),
    "garnet": (garnet, {"n_states": 200, "n_actions": 4, "branching": 3, "alpha": 1.0, "seed": list(range(100))}),
    "irl": (irl_recovery, {"n_demos": [5, 20, 80, 320], "seed": [0, 1, 2]}),
    "multimodality": (multimodality, {"algo": ["sql", "sac"], "alpha": [0.3, 1.0, 3.0, 10.0], "seed": [0, 1],
                                      "steps": 3000}),
}
