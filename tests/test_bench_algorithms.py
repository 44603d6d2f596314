"""The benchmark script runs end to end with tiny sizes."""
import pathlib
import runpy


def test_bench_algorithms_smoke(capsys):
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_algorithms.py"
    mod = runpy.run_path(str(path))
    mod["main"](["--smoke"])
    out = capsys.readouterr().out
    assert "MaxEnt IRL" in out and "Soft Q-learning" in out
