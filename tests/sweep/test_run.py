"""cai.sweep: grids, engines that agree row for row, resumable files, failures as rows, the studies."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import cai
from cai.sweep import config_key, grid, read_results, sweep
from cai.sweep.studies import garnet, irl_recovery, optimism
from cai.worlds import make_world, random_mdp
from tests.sweep.helpers import batched_affine, make_interrupting, square_or_fail

CONFIGS = grid(x=[3, -1, 0, 2, 5, 7, -4, 1], tag="t")


def _table(df):
    return df.drop(columns=[]).to_dict("records")


def test_grid_is_the_cartesian_product_in_order():
    g = grid(a=[1, 2], b="x", c=[0.5, 1.5])
    assert g == [{"a": 1, "b": "x", "c": 0.5}, {"a": 1, "b": "x", "c": 1.5},
                 {"a": 2, "b": "x", "c": 0.5}, {"a": 2, "b": "x", "c": 1.5}]
    assert config_key({"a": 1, "b": 2}) == config_key({"b": 2, "a": 1}) != config_key({"a": 1, "b": 3})
    with pytest.raises(ValueError, match="alpha"):
        grid(alpha=[])


def test_serial_rows_and_failures():
    df = sweep(square_or_fail, CONFIGS, progress=False)
    assert list(df["x"]) == [c["x"] for c in CONFIGS] and (df["tag"] == "t").all()
    ok = df["error"].isna()
    assert list(df.loc[ok, "y"]) == [c["x"] ** 2 for c in CONFIGS if c["x"] >= 0]
    bad = df.loc[~ok]
    assert list(bad["x"]) == [-1, -4] and bad["error"].str.startswith("ValueError: negative x").all()
    assert bad["y"].isna().all()


def test_joblib_gives_the_serial_table():
    serial = sweep(square_or_fail, CONFIGS, progress=False)
    par = sweep(square_or_fail, CONFIGS, engine="joblib", workers=2, chunk_size=2, progress=False)
    pd.testing.assert_frame_equal(serial, par)


def test_local_ray_cluster_gives_the_serial_table():
    ray = pytest.importorskip("ray", reason="the Ray engine is an optional extra (cai[ray])")
    from cai.sweep import RayEngine

    serial = sweep(square_or_fail, CONFIGS, progress=False)
    eng = RayEngine(workers=2)
    try:
        par = sweep(square_or_fail, CONFIGS, engine=eng, chunk_size=3, progress=False)
    finally:
        eng.close()
    assert not ray.is_initialized()
    pd.testing.assert_frame_equal(serial, par)


def test_interrupted_sweep_resumes_without_redoing_or_losing_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    fn, seen = make_interrupting(limit=5)
    cfg = grid(x=list(range(8)))
    with pytest.raises(KeyboardInterrupt):
        sweep(fn, cfg, path=path, chunk_size=1, progress=False)
    assert [r["x"] for r in read_results(path)] == [0, 1, 2, 3, 4]      # written as they arrived
    with open(path, "a") as f:
        f.write('{"x": 5, "y": 2')                                         # a torn last line
    fn2, seen2 = make_interrupting(limit=100)
    df = sweep(fn2, cfg, path=path, chunk_size=1, progress=False)
    assert seen2 == [5, 6, 7]                                              # nothing redone
    assert list(df["y"]) == [x * x for x in range(8)]
    again, seen3 = make_interrupting(limit=100)
    assert sweep(again, cfg, path=path, progress=False).equals(df) and seen3 == []


def test_batched_function_is_called_once_per_group():
    cfg = grid(a=[1.0, 2.0], x=[1, 2, 3])
    df = sweep(batched_affine, cfg, progress=False)
    assert list(df["y"]) == [c["a"] * c["x"] for c in cfg] and (df["group_size"] == 3).all()


def test_bad_arguments():
    with pytest.raises(TypeError, match="configs"):
        sweep(square_or_fail, {"x": 1}, progress=False)
    with pytest.raises(ValueError, match="duplicate"):
        sweep(square_or_fail, [{"x": 1}, {"x": 1}], progress=False)
    with pytest.raises(ValueError, match="engine"):
        sweep(square_or_fail, CONFIGS, engine="spark", progress=False)
    with pytest.raises(ValueError, match="workers"):
        sweep(square_or_fail, CONFIGS, workers=0, progress=False)
    with pytest.raises(ValueError, match="reserved"):
        sweep(square_or_fail, [{"x": 1, "error": 2}], progress=False)
    df = sweep(lambda c: 3, [{"x": 1}], progress=False)
    assert df["error"][0].startswith("TypeError: expected the function to return a dict")


def test_optimism_study_matches_direct_solves():
    cfg = grid(world="two-route", slip=[0.0, 0.2], alpha=[0.5, 2.0])
    df = sweep(optimism, cfg, progress=False)
    for row in df.to_dict("records"):
        mdp = make_world("two-route", slip=row["slip"])
        le = float(cai.backward_messages(mdp, row["alpha"]).log_evidence)
        me = float(cai.soft_value_iteration(mdp, row["alpha"]).max_elbo)
        assert row["log_evidence"] == pytest.approx(le, abs=1e-10)
        assert row["optimism_gap"] == pytest.approx(le - me, abs=1e-10)
        assert row["optimism_gap"] >= -1e-12
    det = df[df["slip"] == 0.0]
    assert np.allclose(det["optimism_gap"], 0.0, atol=1e-10)               # deterministic: no gap
    assert (df[df["slip"] == 0.2]["optimism_gap"] > 1e-6).all()


def test_garnet_and_irl_studies():
    row = sweep(garnet, [{"seed": 3, "n_states": 15, "alpha": 0.7}], progress=False).iloc[0]
    mdp = random_mdp(15, 4, 3, seed=3, horizon=20)
    le = float(cai.backward_messages(mdp, 0.7).log_evidence)
    assert row["log_evidence"] == pytest.approx(le, abs=1e-10)
    assert row["hard_value"] == pytest.approx(float(cai.value_iteration(mdp).value), abs=1e-10)
    df = sweep(irl_recovery, grid(n_demos=[4, 200], seed=[0], n_states=8, n_iter=150), progress=False)
    assert df["error"].isna().all()
    assert df["policy_tv"].iloc[1] < df["policy_tv"].iloc[0]               # more data, closer policy
    assert df["policy_tv"].min() >= 0 and df["policy_tv"].max() <= 1


def test_records_with_tensors_are_the_same_in_memory_and_on_disk(tmp_path):
    def fn(c):
        return {"t": torch.tensor(c["x"], dtype=torch.float64), "v": np.float32(0.5)}
    df = sweep(fn, [{"x": 2}], path=tmp_path / "r.jsonl", progress=False)
    assert df["t"][0] == 2.0 and json.loads((tmp_path / "r.jsonl").read_text())["t"] == 2.0


def test_multimodality_study_records_the_goal_distribution():
    # tiny budget: the record must be the goal fractions of that very learner's rollouts, with the
    # entropy and the count derived from them as documented
    import math

    from cai.sweep.studies import multimodality
    from cai.viz.studies import study_figure

    cfg = grid(algo=["sql", "sac"], alpha=1.0, seed=0, steps=120, hidden=[[8]], rollouts=6)
    df = sweep(multimodality, cfg, progress=False)
    assert df["error"].isna().all(), df["error"].tolist()
    for row in df.to_dict("records"):
        frac = np.array([row[f"goal_{i}"] for i in range(4)])
        assert ((frac >= 0) & (frac <= 1)).all() and frac.sum() <= 1 + 1e-12
        assert row["goals_reached"] == int((frac >= 0.05).sum())
        p = frac / frac.sum() if frac.sum() > 0 else frac
        assert row["goal_entropy"] == pytest.approx(-sum(x * math.log(x) for x in p if x > 0), abs=1e-12)
        assert 0 <= row["goal_entropy"] <= math.log(4) + 1e-12
    bad = sweep(multimodality, [{"algo": "dqn", "alpha": 1.0, "seed": 0}], progress=False)
    assert bad["error"][0].startswith("ValueError: algo")
    ax = study_figure("multimodality", df)
    assert len(ax.lines) == 3
