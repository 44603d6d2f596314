"""Adversarial IRL with exact expectations: the paper's claims on a small deterministic grid.

Fu, Luo and Levine (2018): with deterministic dynamics and a state-only reward, AIRL's ``g``
recovers the reward up to a constant, and re-optimising it under changed dynamics (a moved wall)
gives a good policy there, where MaxEnt IRL's state-action reward and GAIL's discriminator do not.
"""
import math

import pytest
import torch

import cai
from cai.algorithms.tabular.airl import AIRL, policy_return, transition_distribution
from cai.algorithms.tabular.irl import MaxEntIRL, validate_demonstrations
from cai.worlds.builders import random_mdp

R, C = 3, 5
ALPHA = 0.3


def barrier_world(gap_col: int, gamma: float = 0.9) -> cai.TabularMDP:
    """3x5 grid, start anywhere on the top row, goal (absorbing, reward 1 per step) bottom-right,
    step reward -0.1; a wall between rows 0 and 1 except at column ``gap_col``. Deterministic;
    the same 15 states whatever the gap (so rewards transfer state by state)."""
    S = R * C
    P = torch.zeros(S, 4, S, dtype=torch.float64)
    goal = S - 1
    for r in range(R):
        for c in range(C):
            s = r * C + c
            for a, (dr, dc) in enumerate([(-1, 0), (0, 1), (1, 0), (0, -1)]):
                nr, nc = r + dr, c + dc
                blocked = not (0 <= nr < R and 0 <= nc < C) or ({r, nr} == {0, 1} and c != gap_col) or s == goal
                P[s, a, s if blocked else nr * C + nc] = 1.0
    rew = torch.full((S, 4), -0.1, dtype=torch.float64)
    rew[goal] = 1.0
    init = torch.zeros(S, dtype=torch.float64)
    init[:C] = 1.0 / C
    return cai.TabularMDP(P, rew, init, horizon=None, discount=gamma)


@pytest.fixture(scope="module")
def fitted():
    old, new = barrier_world(0), barrier_world(C - 1)
    expert = cai.soft_value_iteration(old, ALPHA)
    demos = cai.sample_trajectories(old, expert.policy, 1000, generator=torch.Generator().manual_seed(0), length=25)
    airl = AIRL(old, alpha=ALPHA, n_iter=60).fit(demos)
    gail = AIRL(old, alpha=ALPHA, n_iter=60, discriminator="gail").fit(demos)
    onehot = torch.eye(R * C * 4, dtype=torch.float64).reshape(R * C, 4, -1)
    irl = MaxEntIRL(old, onehot, alpha=ALPHA, initial="empirical", n_iter=300, lr=0.1).fit(demos)
    return old, new, expert, demos, airl, gail, irl


@pytest.mark.slow
def test_airl_recovers_state_reward_up_to_a_constant(fitted):
    # deterministic dynamics, state-only reward: g = r + const (Fu et al. 2018, Thm 5.1);
    # measured with these 1000 demonstrations: correlation 0.94, centred difference <= 0.2
    # (the rest is the demonstrations' sampling noise: 2000 demonstrations on an open grid give 0.997)
    old, _, expert, _, airl, _, _ = fitted
    g, r = airl.state_reward_, old.rewards[:, 0]
    assert float(torch.corrcoef(torch.stack([g, r]))[0, 1]) > 0.9
    centred = (g - g.mean()) - (r - r.mean())
    assert float(centred.abs().max()) < 0.3              # the goal-vs-step gap is 1.1
    # and the policy imitates: its true return in the demonstrators' world is within 5% of theirs
    assert abs(float(policy_return(old, airl.policy_)) - float(policy_return(old, expert.policy))) \
        < 0.05 * abs(float(policy_return(old, expert.policy)))


@pytest.mark.slow
def test_airl_reward_transfers_to_moved_wall_where_maxent_irl_and_gail_do_not(fitted):
    # the wall's gap moves from the left to the right; each learned reward is re-optimised by
    # soft VI in the new world and scored by the true reward there.
    # measured: optimal 6.15, AIRL 6.09, GAIL 3.65, MaxEnt IRL (state-action one-hot) -1.00
    # (the old policy in the new world: -0.66; uniform: 0.07)
    _, new, _, _, airl, gail, irl = fitted
    best = float(policy_return(new, cai.soft_value_iteration(new, ALPHA).policy))

    def score(reward):
        return float(policy_return(new, cai.soft_value_iteration(new.replace(rewards=reward), ALPHA).policy))

    assert score(airl.reward_) > 0.95 * best
    assert float(policy_return(new, airl.transfer(new).policy)) == pytest.approx(score(airl.reward_), abs=1e-12)
    assert score(irl.reward_) < 0.2 * best
    assert score(gail.reward_) < 0.8 * best


def _demos():
    mdp = random_mdp(4, 2, 2, seed=2, horizon=None, discount=0.8)
    sol = cai.soft_value_iteration(mdp, 1.0)
    demos = cai.sample_trajectories(mdp, sol.policy, 30, generator=torch.Generator().manual_seed(1), length=6)
    return mdp, demos


def test_transition_distribution_is_the_discounted_count():
    mdp, demos = _demos()
    d = validate_demonstrations(demos, mdp)
    ref = torch.zeros(4, 2, 4, dtype=torch.float64)
    for st, ac in zip(demos.states.tolist(), demos.actions.tolist()):
        for t, a in enumerate(ac):
            ref[st[t], a, st[t + 1]] += mdp.gamma ** t
    torch.testing.assert_close(transition_distribution(d, mdp), ref / ref.sum(), atol=1e-14, rtol=0)


@pytest.mark.parametrize("form", ["airl", "gail"])
def test_discriminator_loss_is_the_exact_expectation(form):
    # the closed-form loss equals a brute-force sum over the demonstrations' transitions and
    # over every trajectory of the policy (enumerated to the demonstrations' length)
    mdp, demos = _demos()
    m = AIRL(mdp, alpha=0.7, n_iter=3, discriminator=form).fit(demos)
    pi = m.policy_
    g = torch.Generator().manual_seed(4)
    pi = torch.softmax(torch.randn(4, 2, generator=g, dtype=torch.float64), -1)
    P = mdp.dense_transitions()

    def logit(s, a, s2):
        if form == "gail":
            return float(m.reward_[s, a])
        return (float(m.state_reward_[s]) + mdp.gamma * float(m.shaping_[s2]) - float(m.shaping_[s])) / 0.7 \
            - math.log(float(pi[s, a]))

    def ls(x):
        return -math.log1p(math.exp(-x))

    pos, wsum = 0.0, 0.0
    for st, ac in zip(demos.states.tolist(), demos.actions.tolist()):
        for t, a in enumerate(ac):
            pos += mdp.gamma ** t * ls(logit(st[t], a, st[t + 1]))
            wsum += mdp.gamma ** t
    # the policy: same time weights, from the demonstrations' start states
    neg, nsum = 0.0, 0.0
    mu = torch.zeros(4, dtype=torch.float64)
    for s0 in demos.states[:, 0].tolist():
        mu[s0] += 1 / demos.states.shape[0]
    for t in range(demos.actions.shape[1]):
        for s in range(4):
            for a in range(2):
                for s2 in range(4):
                    p = float(mu[s] * pi[s, a] * P[s, a, s2]) * mdp.gamma ** t
                    if p > 0:
                        neg += p * ls(-logit(s, a, s2))
                        nsum += p
        mu = torch.einsum("s,sa,sax->x", mu, pi, P)
    expected = -(pos / wsum + neg / nsum)
    assert float(m.discriminator_loss(demos, pi)) == pytest.approx(expected, abs=1e-12)


def test_bad_input():
    mdp, demos = _demos()
    with pytest.raises(ValueError, match="stationary"):
        AIRL(random_mdp(4, 2, 2, horizon=5))
    with pytest.raises(ValueError, match="discriminator"):
        AIRL(mdp, discriminator="wgan")
    with pytest.raises(ValueError, match="features: expected state features"):
        AIRL(mdp, torch.zeros(4, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_iter"):
        AIRL(mdp, n_iter=0)
    with pytest.raises(ValueError, match="lr"):
        AIRL(mdp, lr=-1.0)
    with pytest.raises(ValueError, match="actions"):
        AIRL(mdp, n_iter=1).fit((torch.zeros(1, 3, dtype=torch.long), torch.full((1, 2), 5)))
    with pytest.raises(AttributeError, match="call fit"):
        AIRL(mdp).transfer(mdp)
    with pytest.raises(ValueError, match="stationary"):
        policy_return(random_mdp(4, 2, 2, horizon=5), torch.full((4, 2), 0.5, dtype=torch.float64))
