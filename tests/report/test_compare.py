"""The comparison report, and `cai compare --variational`."""
import pytest
import torch

import cai
from cai.cli import main
from cai.report.compare import ComparisonReport, compare_inference
from cai.report.table import policy_tv
from cai.worlds.builders import gridworld, lottery, square_layout


def test_policy_tv_by_hand():
    ref = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]], dtype=torch.float64)         # (T=1, S=2, A=2)
    pol = torch.tensor([[[0.5, 0.5], [0.4, 0.6]]], dtype=torch.float64)
    # TV(state 0) = (|0.5| + |0.5|) / 2 = 0.5, TV(state 1) = (0.1 + 0.1) / 2 = 0.1
    w = torch.tensor([[0.2, 0.6], [9.0, 9.0]], dtype=torch.float64)             # (T+1, S): last row dropped
    # weighted mean: (0.2 * 0.5 + 0.6 * 0.1) / (0.2 + 0.6) = 0.16 / 0.8 = 0.2
    assert policy_tv(pol, ref, w) == pytest.approx(0.2, abs=1e-15)
    assert policy_tv(pol, ref, w, skip=torch.tensor([False, True])) == pytest.approx(0.5, abs=1e-15)
    assert policy_tv(pol, ref, w, skip=torch.tensor([True, True])) == 0.0
    assert policy_tv(pol, ref, torch.zeros(1, 2)) == 0.0
    # the max over states with weight >= threshold: only state 1 has 0.6 >= 0.3
    assert policy_tv(pol, ref, w, reduce="max", threshold=0.3) == pytest.approx(0.1, abs=1e-15)
    assert policy_tv(pol, ref, w, reduce="max") == pytest.approx(0.5, abs=1e-15)
    # stationary: (S, A) policies and an (S,) occupancy: (1 * 0.5 + 3 * 0.1) / 4 = 0.2
    assert policy_tv(pol[0], ref[0], torch.tensor([1.0, 3.0])) == pytest.approx(0.2, abs=1e-15)
    with pytest.raises(ValueError, match="weights: expected shape"):
        policy_tv(pol, ref, torch.ones(3, 3))
    with pytest.raises(ValueError, match="reduce"):
        policy_tv(pol, ref, w, reduce="median")


def test_report_on_slippery_grid():
    mdp = gridworld(square_layout(4), slip=0.2, horizon=6)
    rep = compare_inference(mdp, 1.0, methods=("closed_form", "svi_tabular"), steps=200)
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
    assert main(["compare", "lottery", "--variational", "svi_tabular_enum", "--svi-steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "TraceEnum_ELBO" in out and "7.69831334" in out         # log(e^.5 + .1 e^10 + .9 e^-1)


def test_bad_input():
    with pytest.raises(ValueError, match="methods"):
        compare_inference(lottery(), methods=("nope",))
    with pytest.raises(ValueError, match="n"):
        square_layout(2)


def test_benchmark_script_smoke(capsys):
    # benchmarks/bench_svi.py with tiny arguments (the full run is documented in
    # benchmarks/RESULTS_svi.md)
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_svi.py"
    spec = importlib.util.spec_from_file_location("bench_svi", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--sizes", "3", "--quick", "--with-sample"]) == 0
    out = capsys.readouterr().out
    assert out.count("| 3x3 |") == 5 and "soft value iteration" in out


@pytest.mark.slow
def test_full_size_grid_all_routes_reach_soft_vi():
    # The benchmark's 10x10 slippery grid, T = 20: every deterministic route reaches the soft-VI
    # policy (tabular: TV 0.02 / gap 1e-3; amortized: TV 0.05 / gap 1e-2).
    from cai.ppl.svi import fit_policy_closed_form, fit_policy_svi

    mdp = gridworld(square_layout(10), slip=0.2, horizon=20)
    sv = cai.soft_value_iteration(mdp, 1.0)
    visits = cai.policy_marginals(mdp, sv.policy).state
    for fit, tv, gap in ((fit_policy_closed_form(mdp, progress=False), 0.02, 1e-3),
                         (fit_policy_svi(mdp, progress=False), 0.02, 1e-3),
                         (fit_policy_svi(mdp, guide="amortized", progress=False), 0.05, 1e-2)):
        assert policy_tv(fit.policy, sv.policy, visits, reduce="max", threshold=1e-3) <= tv, fit.method
        assert 0 <= sv.max_elbo.item() - fit.elbo <= gap, fit.method
