"""A cell turns into a wall or lava at test time: exact returns of hard and soft policies."""
import pytest
import torch

import cai
import cai.worlds
from cai.dp import expected_return
from cai.why import perturb_cell, perturbed_returns, zero_temperature_limit


@pytest.mark.parametrize("kind,hard_ret,limit_ret", [("wall", -12.0, -5.0), ("lava", -14.0, -6.0)])
def test_two_route_by_hand(kind, hard_ret, limit_ret):
    # hard VI goes up (first arg-max): 4 steps to the blocked cell (1,3). As a wall it bumps for
    # all 12 steps (-12); as lava it pays -4 - 10. The alpha -> 0 soft policy goes each way
    # w.p. 1/2, and the lower route earns -8 + 10 = 2: 0.5 * 2 + 0.5 * hard.
    mdp = cai.worlds.two_route()
    test = perturb_cell(mdp, (1, 3), kind)
    pr = perturbed_returns(mdp, test, [0.02, 0.5, 2.0])
    assert pr.hard_train == pytest.approx(2.0, abs=1e-12)
    assert pr.hard_test == pytest.approx(hard_ret, abs=1e-12)
    lim = zero_temperature_limit(mdp).policy
    assert expected_return(test, lim).item() == pytest.approx(limit_ret, abs=1e-12)
    assert pr.soft_test[0].item() == pytest.approx(limit_ret, abs=1e-9)
    assert bool((pr.soft_test > pr.hard_test).all())


def test_open_grid_wall_soft_escapes_where_hard_is_stuck():
    mdp = cai.worlds.square(5, lava=False, horizon=12)
    test = perturb_cell(mdp, (0, 2), "wall")
    pr = perturbed_returns(mdp, test, [0.02, 0.1, 0.3])
    assert pr.hard_test == pytest.approx(-12.0, abs=1e-12)        # bumps into the wall forever
    assert bool((pr.soft_test > 1.0).all())                      # keeps most of its return of 2
    assert pr.soft_train[0].item() == pytest.approx(2.0, abs=1e-9)


def test_perturb_cell_structure_and_bad_input():
    mdp = cai.worlds.square(4, lava=False, horizon=6)
    test = perturb_cell(mdp, (0, 1), "wall")
    P = test.dense_transitions()
    torch.testing.assert_close(P.sum(-1), torch.ones(P.shape[:2], dtype=P.dtype), atol=1e-15, rtol=0)
    s = mdp.metadata["coords"].index([0, 1])
    others = [x for x in range(mdp.n_states) if x != s]
    assert float(P[others][:, :, s].max()) == 0.0                # unreachable
    lava = perturb_cell(mdp, (0, 1), "lava", lava_reward=-3.0)
    assert float(lava.rewards[s].max()) == -3.0 and s in lava.metadata["lava"]
    with pytest.raises(ValueError, match="cell"):
        perturb_cell(mdp, (9, 9))
    with pytest.raises(ValueError, match="cell"):
        perturb_cell(mdp, (0, 0))                                  # the start
    with pytest.raises(ValueError, match="kind"):
        perturb_cell(mdp, (0, 1), "ice")
    with pytest.raises(ValueError, match="grid"):
        perturb_cell(cai.worlds.chain(4), (0, 1))
    with pytest.raises(ValueError, match="test"):
        perturbed_returns(mdp, cai.worlds.square(5, lava=False, horizon=6), [1.0])
