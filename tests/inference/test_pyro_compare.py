"""The comparison report and its command line."""
import pytest
import torch

import cai
from cai.inference.compare import ComparisonReport, compare_inference, main, policy_tv, square_layout
from cai.mdp.builders import gridworld, lottery


def test_policy_tv_by_hand():
    ref = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]], dtype=torch.float64)         # (T=1, S=2, A=2)
    pol = torch.tensor([[[0.5, 0.5], [0.4, 0.6]]], dtype=torch.float64)
    # TV(state 0) = 0.5, TV(state 1) = 0.1; state 0 is below the visitation threshold
    assert policy_tv(pol, ref, torch.tensor([[1e-4, 0.5], [0.0, 0.0]]), 1e-3) == pytest.approx(0.1, abs=1e-15)
    assert policy_tv(pol, ref, torch.tensor([[0.5, 0.5]]), 1e-3) == pytest.approx(0.5, abs=1e-15)
    assert policy_tv(pol, ref, torch.zeros(1, 2), 1e-3) == 0.0


def test_report_on_slippery_grid():
    mdp = gridworld(square_layout(4), slip=0.2, horizon=6)
    rep = compare_inference(mdp, 1.0, methods=("closed_form", "svi_tabular"), steps=400)
    assert isinstance(rep, ComparisonReport)
    ref = cai.backward_messages(mdp, 1.0).log_evidence.item()
    assert abs(rep.log_evidence - ref) <= 1e-12 and abs(rep.log_evidence_pyro - ref) <= 1e-8
    assert rep.max_elbo < rep.log_evidence                         # stochastic dynamics: a real gap
    names = [r.name for r in rep.rows]
    assert names == ["exact_posterior", "closed_form", "svi_tabular"]
    for r in rep.rows:
        assert r.gap >= -1e-9 and 0 <= r.policy_tv <= 1
    assert rep.rows[0].gap > 1e-2                                  # the optimistic posterior policy loses ELBO
    assert rep.rows[2].gap <= 1e-2
    text = str(rep)
    assert "Pyro SVI, tabular guide" in text and "log evidence (Pyro enumeration)" in text
    assert rep.as_dict()["rows"][1]["name"] == "closed_form"


def test_cli_prints_the_table(capsys):
    assert main(["--world", "lottery", "--methods", "svi_tabular_enum", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "TraceEnum_ELBO" in out and "7.69831334" in out         # log(e^.5 + .1 e^10 + .9 e^-1)


def test_bad_input():
    with pytest.raises(ValueError, match="methods"):
        compare_inference(lottery(), methods=("nope",))
    with pytest.raises(ValueError, match="n"):
        square_layout(2)
