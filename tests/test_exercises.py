"""cai.exercises: every exercise accepts a right answer and rejects a wrong one; the references
agree with answers derived by hand (or by an independent computation), so they cannot be silently wrong."""
import math

import numpy as np
import pytest
import torch

from cai.exercises import EXERCISES, check, questions, show

ALL = [(t, k) for t, ex in EXERCISES.items() for k in ex]


def _repair_hard_value_by_hand(T=10):
    # independent backward induction over the two-state machine of exercise 10a
    V = {"ok": 0.0, "broken": 0.0}
    for _ in range(T):
        V = {"ok": max(1.0 + 0.9 * V["ok"] + 0.1 * V["broken"], -3.0 + V["ok"]),
             "broken": max(0.0 + V["broken"], -3.0 + V["ok"])}
    return V["ok"]


def _tiger_horizon_two_by_hand():
    # rewards of the tiger: listen -1, open the tiger's door -100, open the other door +10
    listen_then_best = -1 + max(0.85 * 10 - 0.15 * 100, -1.0)      # after one hearing: open the other door, or listen
    open_now = 0.5 * 10 - 0.5 * 100 + max(-1.0, 0.5 * 10 - 0.5 * 100)   # the tiger is placed again
    return max(listen_then_best, open_now)


# answers derived without the reference functions (closed forms from the questions' hints)
BY_HAND = {
    (1, "a"): math.e / (math.e + math.exp(0.2)),
    (1, "c"): 2 * math.log(0.1 * math.exp(5) + 0.9 * math.exp(-0.5)),
    (1, "b"): math.log(math.exp(0.5) + 0.1 * math.exp(10) + 0.9 * math.exp(-1))
    - math.log(math.exp(0.5) + math.exp(0.1)),
    (2, "a"): 0.1 * math.exp(10) / (math.exp(0.5) + 0.1 * math.exp(10) + 0.9 * math.exp(-1)),
    (2, "b"): math.log(math.exp(1.0) + 0.1 * math.exp(20) + 0.9 * math.exp(-2)),
    (4, "a"): 0.7 * 5,
    (4, "b"): 0.0,
    (4, "c"): 0.0,
    (5, "b"): 0.2,
    (7, "a"): -0.5,
    (8, "a"): 1 / (3 * math.e + 1),
    (8, "b"): 0.5 / math.log(3.0),
    (9, "a"): 3 / (3 + math.e),
    (9, "b"): 1 / (1 + math.e),
    (10, "a"): _repair_hard_value_by_hand(),
    (11, "a"): math.log(0.7 / 0.3),                 # softmax(w, 0) matches the 70/30 frequencies
    (11, "b"): 0.7 * math.log(0.7) + 0.3 * math.log(0.3),   # minus the entropy of the 70/30 choice
    (11, "c"): 2.0,                                 # a constant tilts no policy: the prior's sd survives
    (12, "a"): 0.85 ** 2 / (0.85 ** 2 + 0.15 ** 2),  # two net hearings of "left"
    (12, "b"): _tiger_horizon_two_by_hand(),
    (12, "c"): -3.0 * 2.0 / (1.0 + 3.0),            # argmax_u -u^2/2 - 3 (2 + u)^2 / 2 = -Q_T x0 / (R + Q_T)
}


@pytest.mark.parametrize("key", sorted(BY_HAND), ids=[f"{t}{k}" for t, k in sorted(BY_HAND)])
def test_hand_derived_answers_pass(key):
    assert "correct" in check(*key, BY_HAND[key])


@pytest.mark.parametrize("key", ALL, ids=[f"{t}{k}" for t, k in ALL])
def test_right_and_wrong_answer(key):
    t, k = key                                   # the reference itself passes; a nearby number fails
    ref = np.asarray(EXERCISES[t][k].reference(), dtype=np.float64)
    assert np.isfinite(ref).all()
    assert "correct" in check(t, k, float(ref))
    with pytest.raises(ValueError, match=f"exercise {t}{k}: not yet; your answer is off by"):
        check(t, k, float(ref) + 10 * EXERCISES[t][k].atol)


def test_every_tutorial_has_two_or_three_exercises_with_text(capsys):
    assert sorted(EXERCISES) == list(range(1, 13))
    for t in EXERCISES:
        qs = questions(t)
        assert 1 <= len(qs) <= 3 and all(len(q) > 20 for _, q in qs)
    show(4)
    assert "Exercise 4a" in capsys.readouterr().out


def test_bad_input():
    with pytest.raises(ValueError, match="tutorial: expected one of"):
        check(13, "a", 1.0)
    with pytest.raises(ValueError, match="exercise: expected one of"):
        check(1, "z", 1.0)
    with pytest.raises(TypeError, match="answer: expected a number"):
        check(1, "a", "half")
    with pytest.raises(ValueError, match="answer: expected a number, got shape"):
        check(1, "a", [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        check(1, "a", float("nan"))
    assert "correct" in check(1, "a", torch.tensor(BY_HAND[(1, "a")]))
