"""Batched MaxEnt IRL: fit_many equals a loop of single fits; log_likelihood_many equals single calls."""
import copy

import pytest
import torch

import cai
from cai.algorithms.tabular.irl import MaxEntIRL
from cai.algorithms.tabular.irl_many import fit_many, log_likelihood_many
from cai.worlds.builders import random_mdp


def _sets(horizon, B=4, seed=0):
    mdp = random_mdp(6, 3, 2, seed=1, horizon=horizon, discount=None if horizon else 0.8)
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    sets = []
    for b in range(B):
        w = torch.randn(4, generator=g, dtype=torch.float64)
        sol = cai.soft_value_iteration(mdp.replace(rewards=phi @ w), 1.0)
        # sets of different sizes (and, on the stationary MDP, lengths)
        sets.append(cai.sample_trajectories(mdp, sol.policy, 15 + 5 * b, generator=g,
                                            length=None if horizon else 5 + b))
    return mdp, phi, sets


@pytest.mark.parametrize("variant,initial,horizon", [
    ("causal", "mdp", 5), ("causal", "empirical", 5), ("exact", "empirical", 5), ("causal", "empirical", None)])
def test_fit_many_equals_loop_of_fits(variant, initial, horizon):
    mdp, phi, sets = _sets(horizon)
    # tol chosen so that sets stop at different iterations: the frozen-row logic is exercised
    irl = MaxEntIRL(mdp, phi, variant=variant, initial=initial, n_iter=40, lr=0.1, tol=2e-2, l2=0.01)
    res = fit_many(irl, sets)
    singles = [copy.deepcopy(irl).fit(s) for s in sets]
    w = torch.stack([s.weights_ for s in singles])
    torch.testing.assert_close(res.weights, w, atol=1e-8, rtol=0)
    torch.testing.assert_close(res.reward, torch.stack([s.reward_ for s in singles]), atol=1e-8, rtol=0)
    torch.testing.assert_close(res.policy, torch.stack([s.policy_ for s in singles]), atol=1e-8, rtol=0)
    torch.testing.assert_close(res.visitation, torch.stack([s.visitation_ for s in singles]), atol=1e-8, rtol=0)
    assert res.n_iter.tolist() == [s.n_iter_ for s in singles]
    for h, s in zip(res.history, singles):
        assert len(h) == len(s.history_)
        for a, b in zip(h, s.history_):
            assert a.iteration == b.iteration and abs(a.log_likelihood - b.log_likelihood) < 1e-8
            assert abs(a.gap - b.gap) < 1e-8
    if initial == "mdp":
        assert len(set(res.n_iter.tolist())) > 1, "expected the sets to stop at different iterations"
    assert not hasattr(irl, "weights_")                                  # the template is untouched


def test_log_likelihood_many_equals_single_calls_and_is_differentiable():
    mdp, phi, sets = _sets(5)
    irl = MaxEntIRL(mdp, phi, variant="exact", initial="empirical")
    w = torch.randn(len(sets), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    ll = log_likelihood_many(irl, sets, w)
    ref = torch.stack([irl.log_likelihood(s, weights=wb) for s, wb in zip(sets, w)])
    torch.testing.assert_close(ll, ref, atol=1e-10, rtol=0)
    g, = torch.autograd.grad(ll.sum(), w)
    gref = torch.stack([irl.gradient(s, wb.detach()) for s, wb in zip(sets, w)])
    torch.testing.assert_close(g, gref, atol=1e-8, rtol=0)


def test_bad_input():
    mdp, phi, sets = _sets(5)
    irl = MaxEntIRL(mdp, phi)
    with pytest.raises(ValueError, match="demonstration_sets: expected at least one"):
        fit_many(irl, [])
    with pytest.raises(TypeError, match="demonstration_sets: expected a list"):
        fit_many(irl, "abc")
    with pytest.raises(TypeError, match="irl: expected a cai MaxEntIRL"):
        fit_many(object(), sets)
    bad = (torch.zeros(1, 6, dtype=torch.long), torch.full((1, 5), 9))
    with pytest.raises(ValueError, match=r"demonstration_sets\[1\]: .*actions"):
        fit_many(irl, [sets[0], bad])
    with pytest.raises(ValueError, match="weights: expected shape"):
        log_likelihood_many(irl, sets, torch.zeros(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="reward module"):
        fit_many(MaxEntIRL(mdp, phi, reward_model=torch.nn.Linear(4, 1).double()), sets)
