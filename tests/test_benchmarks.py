"""The benchmark scripts run, and their NumPy/SciPy references compute the same backup as cai.

No assertion here is about wall-clock time: timings depend on the machine and its load.
"""
from __future__ import annotations

import importlib.util
import io
import math
import os
import pathlib
import runpy
import subprocess
import sys
import types
from contextlib import redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import cai

EXACT, EXPECTED = "exact", "expected"          # the labels of benchmarks/bench_backup.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "bench_backup.py")


def _load_bench() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("bench_backup", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench():
    return _load_bench()


def _brute_backup(P, r, v, alpha, mode):
    """Loop-by-loop backup over every (s, a) and s', straight from docs/design.md §2.1-2.2."""
    S, A, _ = P.shape
    Q = np.empty((S, A))
    for s in range(S):
        for a in range(A):
            if mode == EXACT:
                Q[s, a] = r[s, a] + alpha * math.log(sum(P[s, a, j] * math.exp(v[j] / alpha) for j in range(S)))
            else:
                Q[s, a] = r[s, a] + sum(P[s, a, j] * v[j] for j in range(S))
    V = np.array([alpha * math.log(sum(math.exp(Q[s, a] / alpha) for a in range(A))) for s in range(S)])
    return Q, V


@pytest.mark.parametrize("mode", [EXACT, EXPECTED])
@pytest.mark.parametrize("sparse", [False, True])
def test_reference_backup_matches_brute_force_and_cai(bench, mode, sparse):
    rng = np.random.default_rng(1)
    S, A, alpha = 7, 3, 0.7
    P = rng.random((S, A, S)) * (rng.random((S, A, S)) < 0.5)
    P[:, :, 0] += 1e-3                                          # every row has mass
    P /= P.sum(-1, keepdims=True)
    r = rng.standard_normal((S, A))
    v = 3 * rng.standard_normal(S)
    P2 = sp.csr_matrix(P.reshape(S * A, S)) if sparse else P.reshape(S * A, S)
    Qn, Vn = bench.np_backup(P2, r, v, alpha, mode)
    Qb, Vb = _brute_backup(P, r, v, alpha, mode)
    np.testing.assert_allclose(Qn, Qb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Vn, Vb, rtol=1e-12, atol=1e-12)
    mdp = cai.TabularMDP(P2 if sparse else P, r, None, horizon=3)
    Qc, Vc = bench.cai_backup(mdp, torch.as_tensor(v), torch.tensor(alpha, dtype=torch.float64), mode)
    np.testing.assert_allclose(Qc.numpy(), Qb, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Vc.numpy(), Vb, rtol=1e-12, atol=1e-12)


def test_reference_solve_matches_cai(bench):
    mdp = cai.worlds.builders.random_mdp(9, 2, branching=3, horizon=4, seed=3)
    P2 = mdp.transition_matrix.numpy()
    for mode, solver in ((EXACT, cai.backward_messages), (EXPECTED, cai.soft_value_iteration)):
        Vn = bench.np_solve(P2, mdp.rewards.numpy(), mdp.terminal_rewards.numpy(), 1.3, mode, 4)
        np.testing.assert_allclose(solver(mdp, 1.3).V.numpy(), Vn, rtol=1e-12, atol=1e-12)


def test_benchmark_refuses_to_time_when_cai_and_reference_disagree(bench):
    # a reference run on perturbed transitions must trip the agreement check before any timing
    rng = np.random.default_rng(0)
    args = types.SimpleNamespace(repeats=1, solve_repeats=1)
    mdp, P2, tb, rb = bench.dense_world(20, 3, rng)
    wrong = P2.copy()
    wrong[0] = np.roll(wrong[0], 1)
    with pytest.raises(AssertionError, match="disagree"):
        bench.bench_world("dense", mdp, wrong, tb, rb, args, rng)


def test_bench_backup_quick_runs():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, BENCH, "--quick"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "agreement: cai vs NumPy/SciPy backup and whole solve within 1e-10" in out
    # one table row per world and mode: dense S=200, 400 and the grid, exact and expected
    rows = [ln for ln in out.splitlines() if ln.startswith("| dense |") or ln.startswith("| grid |")]
    assert len(rows) == 6, out
    assert "memory read bandwidth" in out


def test_bench_low_temperature_quick_runs():
    """The low-temperature script asserts that the fused and general routes agree; at alpha 0.02
    on its smoke grid the values spread over ~1500 alpha, so the slabbed product is exercised."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    script = os.path.join(ROOT, "benchmarks", "bench_low_temperature.py")
    proc = subprocess.run([sys.executable, script, "--quick"], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "agreement: fused and general routes within 1e-10 (relative, entry by entry)" in proc.stdout
    rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("| exact |") or ln.startswith("| soft VI |")]
    assert len(rows) == 4, proc.stdout


def test_bench_sweep_smoke(capsys):
    # benchmarks/bench_sweep.py with tiny arguments (serial and joblib; the Ray engine is tested in tests/sweep)
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sweep.py"
    mod = runpy.run_path(str(path))
    assert mod["main"](["--n", "6", "--states", "10", "--repeats", "1", "--no-ray"]) == 0
    out = capsys.readouterr().out
    assert "every engine's table equals the serial table" in out and "| joblib |" in out


def _run_smoke(name: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", name), "--smoke"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_bench_irl_smoke():
    """The transcription of MCE IRL and cai's MaxEntIRL take the same Adam steps: same iterations,
    weights equal to rounding (the script prints the largest difference)."""
    out = _run_smoke("bench_irl.py")
    row = [ln for ln in out.splitlines() if "S=   16" in ln]
    assert len(row) == 1, out
    assert "transcription (Adam)    5 it" in row[0] and "cai Adam    5 it" in row[0], out
    diff = float(row[0].split("max |theta diff|")[1].split(")")[0])
    assert diff < 1e-12, out


def test_bench_gpu_smoke():
    """On the CPU with a tiny grid: the device-generic route (fused step off) agrees with the
    fused one, and every solver row of the GPU table prints (float32 and float64)."""
    out = _run_smoke("bench_gpu.py")
    assert "general route agrees with the fused CPU route within 1e-10" in out, out
    rows = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert len(rows) == 2 * (3 + 2 + 1), out


def test_bench_vi_smoke():
    """pymdptoolbox (when installed) and cai's value iteration on the same MDPs: cai reaches at
    least pymdptoolbox's measured accuracy (the script asserts it) and the finite-horizon values agree."""
    out = _run_smoke("bench_vi.py")
    assert out.count("branching") == 2 and "finite horizon" in out, out

def test_bench_irl_batch_smoke(capsys):
    # benchmarks/bench_irl_batch.py --smoke: the loop of fits and fit_many agree (the script asserts 1e-8)
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_irl_batch.py"
    mod = runpy.run_path(str(path))
    assert mod["main"](["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| fit_many |" in out and "speed-up" in out


def test_bench_before_after_smoke(capsys):
    # benchmarks/bench_before_after.py against HEAD itself: every ratio is a measurement of noise
    root = pathlib.Path(__file__).resolve().parents[1]
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: bench_before_after.py compares two revisions")
    mod = runpy.run_path(str(root / "benchmarks" / "bench_before_after.py"))
    assert mod["main"](["--base", "HEAD", "--rounds", "1", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| grid |" in out and "worst median ratio" in out


def test_bench_batch_smoke_checks_agreement_and_prints_goals():
    """benchmarks/bench_batch.py --smoke: the batch, the loop and the NumPy batch agree (asserted in
    the script before timing), every goal prints PASS or FAIL, and only --strict turns a FAIL into
    a non-zero exit."""
    path = pathlib.Path(ROOT) / "benchmarks" / "bench_batch.py"
    mod = runpy.run_path(str(path))
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert mod["main"](["--smoke"]) == 0
        strict = mod["main"](["--smoke", "--strict"])
    out = buf.getvalue().split("command:")[-1]          # the second (strict) run's report
    goals = [ln for ln in out.splitlines() if ln.startswith(("PASS ", "FAIL "))]
    assert len(goals) == 2 * 8 + 4, out                 # 8 batch cases x 2 goals, 4 small solves
    assert strict == (1 if any(g.startswith("FAIL") for g in goals) else 0)
    assert "memory bandwidth (np.copyto" in out and "agreement within 1e-12 asserted" in out


@pytest.mark.parametrize("script, names", [
    ("bench_pcl_cartpole.py", ["pcl seed 0"]),
    ("bench_discrete_sac_cartpole.py", ["dsac0.7 seed 0", "soft_dqn seed 0"]),
])
def test_cartpole_benchmarks_smoke(script, names, tmp_path, capsys):
    # benchmarks/bench_pcl_cartpole.py and bench_discrete_sac_cartpole.py in --smoke mode (300 steps,
    # 16 units): every learner runs, evaluates, and writes its curve
    pytest.importorskip("gymnasium")
    mod = runpy.run_path(str(pathlib.Path(ROOT) / "benchmarks" / script))
    results = mod["main"](["--smoke", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    for name in names:
        assert name in out
    assert len(results) == len(names) and len(list(tmp_path.glob("*.json"))) == len(names)


def test_bench_exploration_smoke():
    """benchmarks/bench_exploration.py --smoke: one row per method with both intervals printed."""
    out = _run_smoke("bench_exploration.py")
    rows = [ln for ln in out.splitlines() if ln.startswith("| 5 |")]
    assert len(rows) == 2 and "soft_q" in rows[0] and "epsilon_greedy" in rows[1], out
    assert "Wilson" in out and "Kaplan-Meier" in out, out


def test_bench_finetune_smoke():
    """benchmarks/bench_finetune.py --smoke: one row per start with both intervals printed."""
    out = _run_smoke("bench_finetune.py")
    rows = [ln for ln in out.splitlines() if ln.startswith("| asymmetric |")]
    assert [r.split("|")[3].strip() for r in rows] == ["soft", "hard", "scratch"], out
    assert "Wilson" in out and "Kaplan-Meier" in out, out
