"""The Pyro trajectory model: exact enumeration and infer_discrete against the core's messages."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

import cai
from cai.ppl.model import TrajectoryModel, pyro_log_evidence, pyro_sample_posterior
from cai.worlds.builders import gridworld, lottery, random_mdp


def _random_prior(S, A, seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(S, A, generator=g, dtype=torch.float64) + 0.1
    return p / p.sum(-1, keepdim=True)


def _sas_mdp(seed, discount=None, horizon=4):
    """A dense random MDP with r(s, a, s') rewards, a terminal reward and a forbidden action."""
    base = random_mdp(4, 3, 3, seed=seed, horizon=horizon, discount=discount)
    g = torch.Generator().manual_seed(seed + 100)
    r = torch.randn(4, 3, 4, generator=g, dtype=torch.float64)
    r[0, 2, :] = -math.inf                                   # action 2 forbidden in state 0
    rT = torch.randn(4, generator=g, dtype=torch.float64)
    return base.replace(rewards=r, reward_layout="sas", terminal_rewards=rT)


def _tsa_mdp(seed, discount=None, horizon=4):
    """Time-varying rewards r_t(s, a) and a terminal reward."""
    base = random_mdp(5, 2, 2, seed=seed, horizon=horizon, discount=discount)
    g = torch.Generator().manual_seed(seed + 200)
    r = torch.randn(horizon, 5, 2, generator=g, dtype=torch.float64)
    return base.replace(rewards=r, reward_layout="tsa", terminal_rewards=torch.randn(5, generator=g,
                                                                                        dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# log evidence

@pytest.mark.parametrize("discount", [None, 0.8])
@pytest.mark.parametrize("prior", ["counting", "normalised"])
@pytest.mark.parametrize("seed,alpha", [(0, 1.0), (1, 0.3), (2, 2.5)])
def test_log_evidence_matches_backward_messages(discount, prior, seed, alpha):
    mdp = random_mdp(6, 3, 3, seed=seed, horizon=5, discount=discount, reward_scale=2.0)
    rho = None if prior == "counting" else _random_prior(6, 3, seed)
    ref = cai.backward_messages(mdp, alpha, rho).log_evidence
    got = pyro_log_evidence(mdp, alpha, rho)
    assert got.dtype == torch.float64
    assert abs(got.item() - ref.item()) <= 1e-8 * max(1.0, abs(ref.item()))


@pytest.mark.parametrize("build", [_sas_mdp, _tsa_mdp])
@pytest.mark.parametrize("discount", [None, 0.7])
def test_log_evidence_other_reward_layouts(build, discount):
    mdp = build(3, discount)
    for rho in (None, _random_prior(mdp.n_states, mdp.n_actions, 5)):
        ref = cai.backward_messages(mdp, 0.8, rho).log_evidence
        got = pyro_log_evidence(TrajectoryModel(mdp, 0.8, rho))
        assert abs(got.item() - ref.item()) <= 1e-8 * max(1.0, abs(ref.item()))


@pytest.mark.parametrize("sparse", [False, True])
def test_log_evidence_slippery_grid_with_discount(sparse):
    mdp = gridworld("S....\n.....\n.LLL.\n.....\n....G", slip=0.2, horizon=10, discount=0.95, sparse=sparse)
    ref = cai.backward_messages(mdp, 0.5).log_evidence
    assert abs(pyro_log_evidence(mdp, 0.5).item() - ref.item()) <= 1e-8 * max(1.0, abs(ref.item()))


def test_counting_prior_is_uniform_plus_log_A_per_step():
    # The documented representation: with gamma = 1 every one of the T steps pays log A, so
    # log Z(counting) = log Z(uniform prior) + T log A exactly.
    mdp = random_mdp(5, 3, 2, seed=4, horizon=6)
    uniform = torch.full((5, 3), 1 / 3, dtype=torch.float64)
    diff = pyro_log_evidence(mdp, 1.3) - pyro_log_evidence(mdp, 1.3, uniform)
    assert abs(diff.item() - 6 * math.log(3)) <= 1e-10


def test_gradient_of_log_evidence_is_posterior_visitation():
    # d log p(O) / d r(s, a) = sum_t p(s_t = s, a_t = a | O) / alpha: Pyro's enumeration
    # differentiated by autograd against the core's forward messages.
    mdp0 = random_mdp(5, 2, 3, seed=7, horizon=4)
    r = mdp0.rewards.clone().requires_grad_(True)
    mdp = mdp0.replace(rewards=r)
    alpha = 0.7
    log_z = pyro_log_evidence(mdp, alpha)
    (grad,) = torch.autograd.grad(log_z, r)
    msgs = cai.backward_messages(mdp0, alpha)
    visits = cai.forward_messages(mdp0, msgs).visitation
    assert torch.allclose(grad, visits / alpha, atol=1e-10, rtol=0)


def test_lottery_evidence_closed_form():
    # lottery(): one decision at alpha = 1, counting prior; safe pays r_T = 0.5, the gamble
    # pays 10 w.p. 0.1 and -1 w.p. 0.9: p(O) = e^0.5 + 0.1 e^10 + 0.9 e^-1.
    expected = math.log(math.exp(0.5) + 0.1 * math.exp(10) + 0.9 * math.exp(-1))
    assert abs(pyro_log_evidence(lottery(), 1.0).item() - expected) <= 1e-12


# ---------------------------------------------------------------------------------------------
# posterior samples

def _chi2_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square goodness of fit, pooling cells with expected count < 5 into one."""
    n = counts.sum()
    expected = probs * n
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
        if expected[-1] == 0:
            assert counts[-1] == 0
            counts, expected = counts[:-1], expected[:-1]
    stat = ((counts - expected) ** 2 / expected).sum()
    return float(stats.chi2.sf(stat, len(counts) - 1))


@pytest.mark.parametrize("discount", [None, 0.85])
def test_infer_discrete_matches_exact_posterior(discount):
    # Transition triples (s_t, a_t, s_{t+1}) of N posterior samples against the exact
    # p(s_t, a_t, s_{t+1} | O) = p(s_t, a_t | O) K_t(s'|s, a) (forward messages times the
    # posterior dynamics), plus a "dead by t+1" cell with a discount. One chi-square test per
    # step; Bonferroni over the T steps for an overall false-alarm rate of 1e-3 (fixed seed).
    mdp = random_mdp(4, 2, 2, seed=11, horizon=4, discount=discount, reward_scale=1.5)
    alpha, n, T, S, A = 0.8, 20_000, 4, 4, 2
    msgs = cai.backward_messages(mdp, alpha)
    fwd = cai.forward_messages(mdp, msgs)
    K = cai.posterior_dynamics(mdp, msgs)                             # (T, S, A, S)
    tr = pyro_sample_posterior(mdp, n, alpha, seed=123)
    assert tr.states.shape == (n, T + 1) and tr.actions.shape == (n, T)
    for t in range(T):
        probs = (fwd.state_action[t].unsqueeze(-1) * K[t]).reshape(-1).numpy()    # S*A*S cells
        probs = np.append(probs, max(0.0, 1 - probs.sum()))                         # dead
        s, a, s1 = tr.states[:, t], tr.actions[:, t], tr.states[:, t + 1]
        alive = s1 >= 0
        cell = torch.where(alive, (s * A + a) * S + s1, torch.full_like(s, S * A * S))
        counts = np.bincount(cell.numpy(), minlength=S * A * S + 1)
        assert _chi2_pvalue(counts, probs) > 1e-3 / T, f"step {t}"
    if discount is None:
        assert bool((tr.states >= 0).all())
    else:
        # the dead never come back to life
        dead = tr.states < 0
        assert bool((dead[:, :-1] <= dead[:, 1:]).all())


def test_infer_discrete_rejects_a_wrong_posterior():
    # Power check of the test above: samples from a different temperature are rejected.
    mdp = random_mdp(4, 2, 2, seed=11, horizon=4, reward_scale=1.5)
    S, A = 4, 2
    msgs = cai.backward_messages(mdp, 0.8)
    fwd = cai.forward_messages(mdp, msgs)
    K = cai.posterior_dynamics(mdp, msgs)
    tr = pyro_sample_posterior(mdp, 20_000, 0.5, seed=123)
    probs = (fwd.state_action[1].unsqueeze(-1) * K[1]).reshape(-1).numpy()
    cell = (tr.states[:, 1] * A + tr.actions[:, 1]) * S + tr.states[:, 2]
    counts = np.bincount(cell.numpy(), minlength=S * A * S)
    assert _chi2_pvalue(counts, probs) < 1e-6


def test_infer_discrete_seed_reproducible_and_global_rng_untouched():
    mdp = random_mdp(4, 2, 2, seed=1, horizon=3)
    state = torch.get_rng_state()
    a = pyro_sample_posterior(mdp, 50, 1.0, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = pyro_sample_posterior(mdp, 50, 1.0, seed=5)
    assert torch.equal(a.states, b.states) and torch.equal(a.actions, b.actions)


# ---------------------------------------------------------------------------------------------
# bad input

def test_model_rejects_bad_input():
    mdp = random_mdp(3, 2, 2, seed=0, horizon=3)
    with pytest.raises(ValueError, match="horizon"):
        TrajectoryModel(random_mdp(3, 2, 2, seed=0, horizon=None, discount=0.9))
    with pytest.raises(ValueError, match="alpha"):
        TrajectoryModel(mdp, alpha=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="alpha"):
        TrajectoryModel(mdp, alpha=0.0)
    with pytest.raises(ValueError, match="action_prior"):
        TrajectoryModel(mdp, action_prior=torch.ones(3, 2))
    with pytest.raises(ValueError, match="batch"):
        TrajectoryModel(mdp.replace(rewards=torch.zeros(2, 3, 2, dtype=torch.float64), reward_layout="sa"))
    with pytest.raises(TypeError, match="TabularMDP"):
        TrajectoryModel("not an mdp")
    with pytest.raises(ValueError, match="alpha/action_prior"):
        pyro_log_evidence(TrajectoryModel(mdp), alpha=2.0)
    with pytest.raises(ValueError, match="n"):
        pyro_sample_posterior(mdp, 0, 1.0)


def test_model_repr_and_sites():
    mdp = random_mdp(3, 2, 2, seed=0, horizon=2, discount=0.9)
    m = TrajectoryModel(mdp, 0.5)
    assert "counting" in repr(m)
    from pyro import poutine
    tr = poutine.trace(m).get_trace(7)
    names = {k for k, v in tr.nodes.items() if v["type"] == "sample"} - {"trajectories"}  # the plate
    assert names == {"s_0", "a_0", "s_1", "alive_1", "O_0", "a_1", "s_2", "alive_2", "O_1", "O_T"}
    assert tr.nodes["s_2"]["value"].shape == (7,)
