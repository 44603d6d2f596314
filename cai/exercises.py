"""Exercises for the tutorials, with answers checked against cai's exact routines.

Each tutorial in ``tutorials/`` ends with two or three exercises. A learner works out the answer
(by hand, or with cai) and checks it::

    from cai.exercises import check, show
    show(1)                          # the questions of tutorial 1
    check(1, "a", 0.69)              # a message if right; a ValueError saying how far off if not

The reference of every exercise is computed when it is checked, by cai's exact routines
(:func:`cai.backward_messages`, :func:`cai.soft_value_iteration`, :func:`cai.value_iteration`,
:class:`cai.LMDP`, ...), never typed in, so an answer is compared with what the library computes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from cai.typing import ArrayLike

__all__ = ["Exercise", "EXERCISES", "check", "show", "questions"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: its question, the function computing its reference answer, the tolerance.

    Attributes:
        question: the text shown to the learner.
        reference: a function of no arguments returning the answer (a float or an array).
        atol: absolute tolerance of the comparison (answers are accepted within it).
    """

    question: str
    reference: Callable[[], ArrayLike]
    atol: float = 1e-3


# --- references, each computed by cai's exact routines ------------------------------------------

def _lottery_safe_prob(alpha: float) -> float:
    import cai
    from cai.worlds.builders import lottery
    return float(cai.soft_value_iteration(lottery(), alpha).policy[0, 0, 0])


def _lottery_gap() -> float:
    import cai
    from cai.worlds.builders import lottery
    lot = lottery()
    return float(cai.backward_messages(lot, 1.0).log_evidence - cai.soft_value_iteration(lot, 1.0).max_elbo)


def _lottery_exact_q_gamble() -> float:
    import cai
    from cai.worlds.builders import lottery
    return float(cai.backward_messages(lottery(), 2.0).Q[0, 0, 1])


def _lottery_posterior_win() -> float:
    import cai
    from cai.worlds.builders import lottery
    lot = lottery()
    fm = cai.forward_messages(lot, cai.backward_messages(lot, 1.0))
    return float(fm.state[1, lot.state_names.index("win")])


def _lottery_log_evidence(alpha: float) -> float:
    import cai
    from cai.worlds.builders import lottery
    return float(cai.backward_messages(lottery(), alpha).log_evidence)


def _chain(**kw):
    from cai.worlds.builders import chain
    return chain(6, horizon=8, **kw)


def _chain_value_start() -> float:
    import cai
    m = _chain()
    return float(cai.backward_messages(m, 1.0).V[0, 1])


def _chain_slip_optimism() -> float:
    import cai
    m = _chain(slip=0.2)
    return float(cai.backward_messages(m, 1.0).V[0, 1] - cai.soft_value_iteration(m, 1.0).V[0, 1])


def _chain_right_prob() -> float:
    import cai
    return float(cai.soft_value_iteration(_chain(slip=0.2), 0.3).policy[0, 1, 1])


def _shift_value(c: float) -> float:
    import cai
    from cai.worlds.builders import random_mdp
    m = random_mdp(6, 3, 3, seed=4, horizon=5)
    shifted = m.replace(rewards=m.rewards + c)
    return float((cai.soft_value_iteration(shifted, 1.0).V[0] - cai.soft_value_iteration(m, 1.0).V[0]).mean())


def _shift_policy() -> float:
    import cai
    from cai.worlds.builders import random_mdp
    m = random_mdp(6, 3, 3, seed=4, horizon=5)
    a = cai.soft_value_iteration(m, 1.0).policy
    b = cai.soft_value_iteration(m.replace(rewards=m.rewards + 2.0), 1.0).policy
    return float((a - b).abs().max())


def _scaled_policy_temperature() -> float:
    # the policy of (2r, alpha=2) equals that of (r, alpha=1): only r / alpha is identified
    import cai
    from cai.worlds.builders import random_mdp
    m = random_mdp(6, 3, 3, seed=4, horizon=5)
    a = cai.soft_value_iteration(m, 1.0).policy
    b = cai.soft_value_iteration(m.replace(rewards=2 * m.rewards), 2.0).policy
    return float((a - b).abs().max())


def _walk(n: int) -> torch.Tensor:
    P = torch.zeros(n * n, n * n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            s = i * n + j
            nb = [(i + di, j + dj) for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)) if 0 <= i + di < n and 0 <= j + dj < n]
            P[s, s] = 0.2
            for a, b in nb:
                P[s, a * n + b] = 0.8 / len(nb)
    return P


def _lmdp_first_exit() -> float:
    from cai.algorithms.tabular.lmdp import LMDP
    P = _walk(4)
    q = torch.full((16,), 0.1, dtype=torch.float64)
    q[15] = 0.0
    return float(LMDP(P, q, terminal=[15]).solve_first_exit().v[0])


def _lmdp_average_cost() -> float:
    from cai.algorithms.tabular.lmdp import LMDP
    return float(LMDP(_walk(4), torch.full((16,), 0.2, dtype=torch.float64)).solve_average_cost().average_cost)


def _garnet():
    from cai.worlds.builders import random_mdp
    return random_mdp(5, 2, 3, seed=0, horizon=None, discount=0.8)


def _garnet_soft_q() -> float:
    import cai
    return float(cai.soft_value_iteration(_garnet(), 1.0).Q[0, 0])


def _garnet_soft_minus_hard() -> float:
    import cai
    m = _garnet()
    return float((cai.soft_value_iteration(m, 1.0).Q - cai.value_iteration(m).Q).max())


def _lqr_scalar_gain() -> float:
    # x' = x + u, reward -(x^2 + u^2)/2, two decisions, no terminal reward: K_0 from soft VI
    from cai.gaussian.messages import lg_soft_value_iteration
    from cai.mdp.linear_gaussian import LinearGaussianSystem
    one = torch.ones(1, 1, dtype=torch.float64)
    system = LinearGaussianSystem(A=one, B=one, H=torch.eye(2, dtype=torch.float64), horizon=2)
    return float(lg_soft_value_iteration(system, 1.0).K[0].reshape(-1)[0])


def _bandit(rewards):
    from cai.mdp.tabular import TabularMDP
    goals = list(range(len(rewards)))
    return TabularMDP.from_functions(["origin", "done"], goals,
                                     lambda s, a: {"done": 1.0},
                                     lambda s, a: float(rewards[a]) if s == "origin" else 0.0,
                                     initial="origin", horizon=1)


def _bandit_prob() -> float:
    import cai
    return float(cai.soft_value_iteration(_bandit([1.0, 1.0, 1.0, 0.5]), 0.5).policy[0, 0, 3])


def _bandit_alpha() -> float:
    # the alpha at which the worst goal gets 10%: 3 e^{1/a} * 0.1 = 0.9 e^{0.5/a}  (solved in closed form)
    # checked by cai: the policy at that alpha gives it probability 0.1
    import cai
    alpha = 0.5 / math.log(1.0 / 3.0 * 0.9 / 0.1)
    p = float(cai.soft_value_iteration(_bandit([1.0, 1.0, 1.0, 0.5]), alpha).policy[0, 0, 3])
    if abs(p - 0.1) > 1e-9:      # pragma: no cover - the derivation above is wrong if this fires
        raise RuntimeError(f"exercise 8b: the derived alpha gives probability {p}, not 0.1")
    return alpha


def _fork_soft(n: int, c: float) -> float:
    import cai
    from cai.worlds.builders import options_fork
    return float(cai.soft_value_iteration(options_fork(n, corridor_bonus=c), 1.0).policy[0, 0, 1])


def _fork_myopic(n: int, c: float) -> float:
    import cai
    from cai.worlds.builders import options_fork
    m = options_fork(n, corridor_bonus=c)
    hard = cai.value_iteration(m)
    q = hard.Q[0, 0] / 1.0
    return float(torch.softmax(q, -1)[1])


def _repair():
    from cai.mdp.tabular import TabularMDP

    def transition(s, a):
        if a == "repair":
            return {"ok": 1.0}
        return {"ok": 0.9, "broken": 0.1} if s == "ok" else {"broken": 1.0}

    def reward(s, a):
        if a == "repair":
            return -3.0
        return 1.0 if s == "ok" else 0.0

    return TabularMDP.from_functions(["ok", "broken"], ["run", "repair"], transition, reward,
                                     initial="ok", horizon=10)


def _repair_hard_value() -> float:
    import cai
    return float(cai.value_iteration(_repair()).V[0, 0])


def _repair_soft_prob() -> float:
    import cai
    return float(cai.soft_value_iteration(_repair(), 1.0).policy[0, 1, 1])


def _repair_gap() -> float:
    import cai
    m = _repair()
    return float(cai.backward_messages(m, 1.0).V[0, 0] - cai.soft_value_iteration(m, 1.0).V[0, 0])


def _choice_demos(n_first: int = 70, n: int = 100):
    # one-step two-action bandit (no reward); n demonstrations, n_first of them pick action 0
    m = _bandit([0.0, 0.0])
    states = torch.tensor([[0, 1]] * n)
    actions = torch.tensor([[0]] * n_first + [[1]] * (n - n_first))
    phi = torch.zeros(2, 2, 2, dtype=torch.float64)
    phi[0, 0, 0] = 1.0          # feature 0: "chose action 0"
    phi[:, :, 1] = 1.0          # feature 1: a constant
    return m, (states, actions), phi


def _choice_irl():
    from cai.algorithms.tabular import MaxEntIRL
    m, demos, phi = _choice_demos()
    irl = MaxEntIRL(m, phi[..., :1], optimizer="lbfgs", n_iter=100, tol=1e-12).fit(demos)
    return irl, demos


def _choice_weight() -> float:
    return float(_choice_irl()[0].weights_[0])


def _choice_log_likelihood() -> float:
    irl, demos = _choice_irl()
    return float(irl.log_likelihood(demos, weights=irl.weights_))


def _choice_constant_sd() -> float:
    from cai.algorithms.tabular import BayesianIRL
    m, demos, phi = _choice_demos()
    return float(BayesianIRL(m, phi, prior_scale=2.0, method="laplace").fit(demos).std_[1])


def _tiger_belief() -> float:
    from cai.pomdp import filter_beliefs
    from cai.worlds import make_world
    f = filter_beliefs(make_world("tiger", horizon=4), actions=[0, 0, 0, 0], observations=[0, 0, 1, 0])
    return float(f.beliefs[-1, 0])


def _tiger_hard_value() -> float:
    from cai.pomdp import belief_value_iteration
    from cai.worlds import make_world
    return float(belief_value_iteration(make_world("tiger", horizon=2)).value)


def _path_integral_limit() -> float:
    from cai.mdp.linear_gaussian import LinearGaussianSystem
    from cai.pathint import lg_exact_first_control
    system = LinearGaussianSystem.from_lqr([[1.0]], [[1.0]], [[0.0]], [[1.0]], horizon=1, Q_T=[[3.0]])
    return float(lg_exact_first_control(system, torch.tensor([2.0], dtype=torch.float64), 1.0).reshape(-1)[0])


#: ``EXERCISES[tutorial][exercise]``: the exercises of each tutorial, keyed by letter.
EXERCISES: Dict[int, Dict[str, Exercise]] = {
    1: {
        "a": Exercise("The lottery (cai.worlds.builders.lottery()) at alpha = 0.5: the soft VI probability of "
                      "`safe` at the start. (By hand: Q(safe) = 0.5, Q(gamble) = E[r] = 0.1.)",
                      lambda: _lottery_safe_prob(0.5)),
        "b": Exercise("The lottery at alpha = 1: log evidence minus the maximal ELBO (the optimism gap, in nats).",
                      _lottery_gap),
        "c": Exercise("The lottery at alpha = 2: exact inference's Q(start, gamble). "
                      "(By hand: alpha log E[exp(r/alpha)].)", _lottery_exact_q_gamble),
    },
    2: {
        "a": Exercise("The lottery at alpha = 1: the exact posterior probability p(s_1 = win | O) that the gamble "
                      "is won. (By hand: p(gamble | O) times 0.1 e^10 / (0.1 e^10 + 0.9 e^-1).)",
                      _lottery_posterior_win),
        "b": Exercise("The lottery at alpha = 0.5: the log evidence log p(O) that Pyro's enumeration returns.",
                      lambda: _lottery_log_evidence(0.5)),
    },
    3: {
        "a": Exercise("chain(6, horizon=8) at alpha = 1: exact inference's V_0 at the start state 1.",
                      _chain_value_start),
        "b": Exercise("chain(6, horizon=8, slip=0.2) at alpha = 1: V_0(1) of exact inference minus that of "
                      "soft VI (exact inference's optimism at the start).", _chain_slip_optimism),
        "c": Exercise("chain(6, horizon=8, slip=0.2) at alpha = 0.3: the soft VI probability of `right` at t = 0 "
                      "in state 1.", _chain_right_prob),
    },
    4: {
        "a": Exercise("random_mdp(6, 3, 3, seed=4, horizon=5): add c = 0.7 to every reward. By how much does "
                      "soft VI's V_0 change (alpha = 1)? (Think: how many rewards does every trajectory collect?)",
                      lambda: _shift_value(0.7)),
        "b": Exercise("The same MDP: the largest change in the soft-optimal policy when 2 is added to every "
                      "reward. (So can MaxEnt IRL recover a constant offset of the reward?)", _shift_policy),
        "c": Exercise("The same MDP: the largest policy difference between (reward r, alpha = 1) and "
                      "(reward 2r, alpha = 2). (What about the reward's scale?)", _scaled_policy_temperature),
    },
    5: {
        "a": Exercise("A lazy random walk on a 4 x 4 grid (stay 0.2, else a uniform neighbour), cost q = 0.1 per "
                      "step, the last cell (15) terminal with cost 0: the first-exit cost-to-go v(0) = -log z(0).",
                      _lmdp_first_exit),
        "b": Exercise("The same walk without a terminal state and q = 0.2 everywhere: the average cost c. "
                      "(Hint: a constant cost tilts nothing.)", _lmdp_average_cost),
    },
    6: {
        "a": Exercise("random_mdp(5, 2, 3, seed=0, horizon=None, discount=0.8) at alpha = 1: the soft Q[0, 0] "
                      "that soft Q-learning converges to.", _garnet_soft_q),
        "b": Exercise("The same MDP: max over (s, a) of Q_soft - Q_hard (at most alpha log|A| / (1 - gamma)).",
                      _garnet_soft_minus_hard),
    },
    7: {
        "a": Exercise("Scalar system x' = x + u, reward -(x^2 + u^2)/2, two decisions, no terminal reward: the "
                      "soft VI (= LQR) gain K_0 at alpha = 1. (By hand: one Riccati step from P_2 = 0.)",
                      _lqr_scalar_gain),
    },
    8: {
        "a": Exercise("A one-step version of the multi-goal world: four goals paying [1, 1, 1, 0.5]. The soft-"
                      "optimal probability of the fourth goal at alpha = 0.5.", _bandit_prob),
        "b": Exercise("The same four goals: the temperature alpha at which the fourth goal gets probability 0.1.",
                      _bandit_alpha),
    },
    9: {
        "a": Exercise("options_fork(3, corridor_bonus=1.0) at alpha = 1: the soft-optimal probability of going "
                      "to the hub (action 1) at the fork.", lambda: _fork_soft(3, 1.0)),
        "b": Exercise("The same fork: the myopic (Boltzmann over the hard Q*) probability of the hub.",
                      lambda: _fork_myopic(3, 1.0)),
    },
    10: {
        "a": Exercise("Build with TabularMDP.from_functions: states ok/broken, actions run/repair; `run` pays 1 "
                      "in ok (0 in broken) and breaks the machine w.p. 0.1 (broken stays broken); `repair` costs 3 "
                      "and returns to ok. Start ok, horizon 10. The hard-optimal V_0(ok).", _repair_hard_value),
        "b": Exercise("The same machine at alpha = 1: the soft VI probability of `repair` in `broken` at t = 0.",
                      _repair_soft_prob),
        "c": Exercise("The same machine at alpha = 1: the optimism gap V_0(ok) of exact inference minus soft VI.",
                      _repair_gap),
    },
    11: {
        "a": Exercise("A one-step choice between two actions, reward 0 (TabularMDP.from_functions: states "
                      "origin/done, horizon 1); 70 of 100 demonstrations choose action 0. One feature, 'chose action 0'. The maximum-"
                      "likelihood MaxEnt IRL weight at alpha = 1. (By hand: set the gradient, empirical minus "
                      "expected feature count, to zero.)", _choice_weight),
        "b": Exercise("The same demonstrations: MaxEnt IRL's mean log-likelihood per demonstration at that weight. "
                      "(Which entropy is it minus?)", _choice_log_likelihood),
        "c": Exercise("Add a second, constant feature (1 for both actions) and fit BayesianIRL with prior_scale = 2 "
                      "and method = 'laplace': the posterior standard deviation of the constant's weight.",
                      _choice_constant_sd),
    },
    12: {
        "a": Exercise("The tiger (make_world('tiger', horizon=4)): listen four times and hear left, left, right, "
                      "left (observations [0, 0, 1, 0]). The filtered belief that the tiger is on the left.",
                      _tiger_belief),
        "b": Exercise("The tiger with horizon 2: the hard-optimal value of the initial belief (belief_value_iteration)."
                      " (Compare listening twice with listening once and then opening a door.)", _tiger_hard_value),
        "c": Exercise("Scalar system x' = x + u, no running state cost, control cost u^2 / 2, terminal reward "
                      "-3 x^2 / 2, one decision, x_0 = 2, alpha = 1: the first control that path integral control "
                      "converges to as the samples grow (lg_exact_first_control).", _path_integral_limit),
    },
}

_VALIDATED: Dict[Tuple[int, str], np.ndarray] = {}


def _get(tutorial: int, exercise: str) -> Exercise:
    if isinstance(tutorial, bool) or not isinstance(tutorial, (int, np.integer)) or int(tutorial) not in EXERCISES:
        raise ValueError(f"tutorial: expected one of {sorted(EXERCISES)}, got {tutorial!r}")
    ex = EXERCISES[int(tutorial)]
    if exercise not in ex:
        raise ValueError(f"exercise: expected one of {sorted(ex)} for tutorial {int(tutorial)}, got {exercise!r}")
    return ex[exercise]


def questions(tutorial: int) -> List[Tuple[str, str]]:
    """The ``(letter, question)`` pairs of a tutorial's exercises.

    Args:
        tutorial: the tutorial's number (1 to 12).

    Returns:
        A list of ``(letter, question)``.

    Raises:
        ValueError: for an unknown tutorial.
    """
    _get(tutorial, "a")
    return [(k, e.question) for k, e in EXERCISES[int(tutorial)].items()]


def show(tutorial: int) -> None:
    """Print a tutorial's exercises (the text the notebook's last cell shows).

    Args:
        tutorial: the tutorial's number (1 to 12).

    Raises:
        ValueError: for an unknown tutorial.
    """
    for k, q in questions(tutorial):
        print(f"Exercise {int(tutorial)}{k}: {q}\n")


def _reference(tutorial: int, exercise: str) -> np.ndarray:
    key = (int(tutorial), exercise)
    if key not in _VALIDATED:
        ref = EXERCISES[key[0]][exercise].reference()
        if isinstance(ref, torch.Tensor):
            ref = ref.detach().cpu().numpy()
        _VALIDATED[key] = np.asarray(ref, dtype=np.float64)
    return _VALIDATED[key]


def check(tutorial: int, exercise: str, answer: ArrayLike) -> str:
    """Check an answer to an exercise against cai's exact computation.

    Args:
        tutorial: the tutorial's number (1 to 12).
        exercise: the exercise's letter (``"a"``, ``"b"`` ...).
        answer: a number (or an array, for an exercise asking for one).

    Returns:
        A message saying the answer is right (within the exercise's tolerance).

    Raises:
        ValueError: for an unknown tutorial or exercise, an answer of the wrong shape, a NaN,
            or a wrong answer (the message says how far off it is, not the answer).
        TypeError: for an answer that is not a number or an array of numbers.
    """
    ex = _get(tutorial, exercise)
    try:
        a = np.asarray(answer.detach().cpu().numpy() if isinstance(answer, torch.Tensor) else answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"answer: expected a number or an array of numbers, got {answer!r}") from None
    ref = _reference(tutorial, exercise)
    if a.shape != ref.shape:
        raise ValueError(f"answer: expected {'a number' if ref.ndim == 0 else f'an array of shape {ref.shape}'}, "
                         f"got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError("answer: expected a number, got NaN")
    err = float(np.max(np.abs(a - ref))) if a.size else 0.0
    name = f"{int(tutorial)}{exercise}"
    if not err <= ex.atol:
        raise ValueError(f"exercise {name}: not yet; your answer is off by {err:.3g} (tolerance {ex.atol:g}). "
                         f"Compute it again with cai and compare.")
    return f"exercise {name}: correct (within {ex.atol:g} of cai's exact computation)"
