"""Why MaxEnt RL: its theorems and claims, each demonstrated exactly on tabular worlds.

One module per claim:

* :func:`cai.soft_policy_iteration` (in :mod:`cai.dp`) — the soft policy improvement theorem;
* :mod:`.hard_limit` — ``alpha -> 0`` recovers hard value iteration and spreads over all optima;
* :mod:`.future_entropy` — the MaxEnt objective against a one-step (myopic) entropy bonus;
* :mod:`.temperature` — the automatic temperature as the exact dual of entropy-constrained RL;
* :mod:`.robust_reward` — MaxEnt RL solves a robust-reward problem (Eysenbach and Levine, 2022);
* :mod:`.robust_dynamics` — returns of hard and soft policies when the world changes at test time;
* :mod:`.exploration` — samples until a deceptive chain's far reward is first collected: soft
  Q-learning's Boltzmann exploration against epsilon-greedy, censored over seeds, with intervals;
* :mod:`.finetune` — samples until a changed task is solved, starting soft Q-learning from the old
  task's soft Q, its hard Q or from scratch, censored over seeds, with intervals;
* :mod:`.meta_pomdp` — MaxEnt RL solves a goal-reaching meta-POMDP (Eysenbach and Levine, 2019):
  a hidden goal, episodes repeated until one reaches it, the optimum ``q ∝ sqrt(p)``.
"""
from cai.why.exploration import (
    FirstHitTimes,
    bootstrap_median_interval,
    censored_median,
    first_hit_samples,
    first_hit_times,
    kaplan_meier,
    wilson_interval,
)
from cai.why.finetune import FinetuneTimes, finetune_samples, finetune_tasks, finetune_times
from cai.why.future_entropy import MyopicPolicy, myopic_policy
from cai.why.hard_limit import ZeroTemperatureLimit, zero_temperature_limit
from cai.why.meta_pomdp import (
    MetaPolicy,
    adaptive_episodes,
    expected_episodes,
    goal_reach,
    maxent_goal_weights,
    maxent_meta_policy,
    meta_reward,
    optimal_reach,
    simulate_episodes,
)
from cai.why.robust_dynamics import PerturbedReturns, perturb_cell, perturbed_returns
from cai.why.robust_reward import robust_return, worst_case_reward
from cai.why.temperature import TemperatureDescent, dual_temperature_descent, mean_policy_entropy, temperature_for_entropy

__all__ = ["ZeroTemperatureLimit", "zero_temperature_limit", "MyopicPolicy", "myopic_policy",
           "mean_policy_entropy", "temperature_for_entropy", "dual_temperature_descent", "TemperatureDescent",
           "worst_case_reward", "robust_return",
           "perturb_cell", "perturbed_returns", "PerturbedReturns",
           "first_hit_samples", "first_hit_times", "FirstHitTimes", "wilson_interval", "kaplan_meier", "censored_median",
           "bootstrap_median_interval", "finetune_tasks", "finetune_samples", "finetune_times", "FinetuneTimes",
           "expected_episodes", "optimal_reach", "adaptive_episodes", "goal_reach", "maxent_goal_weights", "meta_reward",
           "maxent_meta_policy", "MetaPolicy", "simulate_episodes"]
