"""The `cai` command: the demo, each subcommand, and its error paths (one line, exit 2)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cai  # noqa: E402
from cai.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error" in lines[0]
    return lines[0]


def test_demo_writes_figures_and_table(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = _run(capsys, "demo", "--out", str(out), "--horizon", "16", "--dpi", "40")
    assert code == 0, err
    names = {p.name for p in out.iterdir()}
    for f in ("graphical_model.png", "values_exact_vs_soft.png", "policies.png", "soft_q.png",
              "posterior_marginals.png", "trajectories.png", "temperature_sweep.png"):
        assert f in names and (out / f).stat().st_size > 1000
    for text in ("action prior: counting", "log p(O) - max ELBO", "exact - soft value", "policy TV soft vs hard",
                 "soft - hard value", "time (ms)", "falls off the cliff"):
        assert text in stdout
    # every measure is defined in one line under the table: one [k] in the table, one in the notes
    marks = [ln.split()[0] for ln in stdout.splitlines() if ln.strip().startswith("[")]
    n = len(marks) // 2
    assert n >= 9 and marks[:n] == marks[n:] == [f"[{k + 1}]" for k in range(n)]
    # the gap printed is the one the library computes
    from cai.cli import load_world
    _, m = load_world("demo", horizon=16)
    gap = float(cai.backward_messages(m).log_evidence - cai.soft_value_iteration(m).max_elbo)
    assert f"{gap:.4g}" in stdout


@pytest.mark.parametrize("method", ["exact", "soft_vi", "soft-vi", "vi"])
def test_solve_writes_npz(tmp_path, capsys, method):
    # --method takes the names of cai.methods, and the old hyphenated spelling of soft_vi
    path = tmp_path / f"s-{method}.npz"
    code, stdout, err = _run(capsys, "solve", "two-route", "--method", method, "--alpha", "0.5",
                             "--horizon", "6", "--out", str(path))
    assert code == 0, err
    with np.load(path) as f:
        m = cai.worlds.two_route(horizon=6)
        soft = lambda: cai.soft_value_iteration(m, alpha=0.5)  # noqa: E731
        ref = {"exact": lambda: cai.backward_messages(m, alpha=0.5), "soft_vi": soft, "soft-vi": soft,
               "vi": lambda: cai.value_iteration(m)}[method]()
        assert str(f["method"]) == ref.method == {"soft-vi": "soft_vi"}.get(method, method)
        np.testing.assert_allclose(f["V"], ref.V.numpy(), rtol=1e-12)
        np.testing.assert_allclose(f["policy"], ref.policy.numpy(), rtol=1e-12)
        assert f["policy"].shape == (6, m.n_states, 4)
        assert ("log_evidence" in f.files) == (method == "exact")


def test_solve_json_and_layout_file(tmp_path, capsys):
    layout = tmp_path / "maze.txt"
    layout.write_text("S..#\n.#.G\n....\n")
    path = tmp_path / "maze.json"
    code, _, err = _run(capsys, "solve", str(layout), "--method", "exact", "--out", str(path), "-q",
                        "--discount", "0.9", "--slip", "0.1")
    assert code == 0, err
    d = json.loads(path.read_text())
    assert d["world"] == "maze" and d["discount"] == 0.9
    m = cai.worlds.gridworld(layout.read_text(), slip=0.1, discount=0.9)
    np.testing.assert_allclose(np.array(d["V"]), cai.backward_messages(m).V.numpy(), rtol=1e-12)
    assert d["state_names"] == list(m.state_names)


def test_solve_stationary(tmp_path, capsys):
    code, _, err = _run(capsys, "solve", "chain", "--horizon", "none", "--discount", "0.8", "--method", "soft-vi",
                        "--out", str(tmp_path / "c.npz"), "-q")
    assert code == 0, err
    with np.load(tmp_path / "c.npz") as f:
        assert f["V"].shape == (6,) and int(f["horizon"]) == -1


def test_solve_svi_missing_or_present(tmp_path, capsys):
    try:
        import cai.ppl.svi  # noqa: F401
        have = True
    except ImportError:
        have = False
    code, _, err = _run(capsys, "solve", "lottery", "--method", "svi", "--svi-steps", "50", "-q",
                        "--out", str(tmp_path / "l.npz"))
    if have:
        assert code == 0, err
    else:
        line = _one_line_error(code, err)
        assert "svi" in line and "soft_vi" in line


def test_compare_table(capsys):
    code, out, err = _run(capsys, "compare", "lottery")
    assert code == 0, err
    for text in ("exact inference", "soft VI", "hard VI", "log p(O) - max ELBO", "action prior: counting"):
        assert text in out
    # the lottery's gap: log(e^0.5 + e^7.697) - log(e^0.5 + e^0.1), see tests/test_worlds.py
    import math
    q = math.log(0.1 * math.exp(10) + 0.9 * math.exp(-1))
    gap = math.log(math.exp(0.5) + math.exp(q)) - math.log(math.exp(0.5) + math.exp(0.1))
    assert f"{gap:.4g}" in out


def test_compare_stationary_uses_the_uniform_prior_and_converges(tmp_path, capsys):
    # the counting prior's stationary evidence is infinite on the cliff (4 e^-1 gamma > 1 on its free
    # cells); the default for --horizon none is the uniform prior, and the header says so
    code, out, err = _run(capsys, "compare", "cliff", "--horizon", "none", "--discount", "0.95")
    assert code == 0, err
    assert "diverges" not in out and "action prior: uniform" in out
    from cai.report.table import inference_table
    from cai.worlds.registry import make_world
    m = make_world("cliff", horizon=None, discount=0.95)
    ref = cai.backward_messages(m, 1.0, cai.mdp.tabular.uniform_action_prior(m))
    row = next(ln for ln in out.splitlines() if ln.startswith("exact inference"))
    assert row.split()[2] == f"{float(ref.value):.4g}"
    assert inference_table(m, 1.0, "uniform").rows[0].value == pytest.approx(float(ref.value), abs=1e-12)
    # asked for, the counting prior still diverges and says so
    code, out, err = _run(capsys, "compare", "cliff", "--horizon", "none", "--discount", "0.95",
                          "--action-prior", "counting")
    assert code == 0, err
    assert "action prior: counting" in out and "diverges" in out
    # cai solve takes the same option and records it
    path = tmp_path / "s.json"
    code, out, err = _run(capsys, "solve", "cliff", "--horizon", "none", "--discount", "0.95", "--out", str(path))
    assert code == 0, err and "uniform action prior" in out
    d = json.loads(path.read_text())
    assert d["action_prior"] == "uniform" and d["value"] == pytest.approx(float(ref.value), abs=1e-9)
    code, _, err = _run(capsys, "solve", "cliff", "--horizon", "none", "--discount", "0.95", "--action-prior",
                        "counting", "--out", str(path))
    assert "--action-prior uniform" in _one_line_error(code, err)


def test_graph_and_worlds(tmp_path, capsys):
    path = tmp_path / "g.png"
    code, _, err = _run(capsys, "graph", "-T", "2", "--out", str(path), "-q")
    assert code == 0, err and path.stat().st_size > 1000
    code, _, err = _run(capsys, "graph", "-T", "3", "--world", "two-route", "--out", str(tmp_path / "g2.png"), "-q")
    assert code == 0, err
    code, out, _ = _run(capsys, "worlds")
    assert code == 0 and "cliff" in out and "frozenlake" in out


def test_graph_long_horizon_is_readable(tmp_path, capsys):
    # 50 steps used to give a 10302 x 488 px strip; now the first 4 and last 2 decisions are drawn
    path = tmp_path / "g50.png"
    code, _, err = _run(capsys, "graph", "--steps", "50", "--out", str(path), "--dpi", "100", "-q")
    assert code == 0, err
    import matplotlib.pyplot as plt
    h, w = plt.imread(path).shape[:2]
    assert w < 2000 and w / h < 5, (w, h)
    # --all-steps draws every step: the long strip again
    path = tmp_path / "g50all.png"
    code, _, err = _run(capsys, "graph", "--steps", "50", "--all-steps", "--out", str(path), "--dpi", "20", "-q")
    assert code == 0, err
    assert plt.imread(path).shape[1] > 1500


def _graph_messages(monkeypatch, capsys, *argv):
    """Run `cai graph` and return (exit code, stderr, the solution it annotated, T drawn)."""
    import cai.viz.graph as graph

    seen = {}
    real_ann, real_draw = graph.message_annotations, graph.draw_unrolled

    def ann(sol, *a, **k):
        seen["sol"] = sol
        return real_ann(sol, *a, **k)

    def draw(T, *a, **k):
        seen["T"] = T
        return real_draw(T, *a, **k)

    monkeypatch.setattr(graph, "message_annotations", ann)
    monkeypatch.setattr(graph, "draw_unrolled", draw)
    code, _, err = _run(capsys, "graph", *argv)
    return code, err, seen.get("sol"), seen.get("T")


def test_graph_keeps_a_fixed_horizon(tmp_path, monkeypatch, capsys):
    # the lottery is one decision: -T 2 must not re-solve it at horizon 2 (whose values differ)
    solve_out = tmp_path / "lottery.json"
    code, _, err = _run(capsys, "solve", "lottery", "--out", str(solve_out), "-q")
    assert code == 0, err
    solved = json.loads(solve_out.read_text())
    code, err, sol, T = _graph_messages(monkeypatch, capsys, "--world", "lottery", "-T", "2",
                                        "--out", str(tmp_path / "g.png"))
    assert code == 0 and T == 1 and sol.mdp.horizon == 1
    assert "note" in err and "fixed horizon of 1" in err and "not 2" in err
    np.testing.assert_allclose(sol.V.numpy(), solved["V"], rtol=1e-12)
    assert float(sol.log_evidence) == pytest.approx(solved["log_evidence"], rel=1e-12)
    # without -T: the world's own horizon, no note
    code, err, sol, T = _graph_messages(monkeypatch, capsys, "--world", "lottery", "--out", str(tmp_path / "g.png"))
    assert code == 0 and T == 1 and "note" not in err
    # a world without a fixed horizon is re-solved at -T, and the command says so
    code, err, sol, T = _graph_messages(monkeypatch, capsys, "--world", "two-route", "-T", "3",
                                        "--out", str(tmp_path / "g2.png"))
    assert code == 0 and T == 3 and sol.mdp.horizon == 3
    assert "note" in err and "horizon T = 3" in err and "its own is 12" in err
    code, err, sol, T = _graph_messages(monkeypatch, capsys, "--world", "two-route", "-q",
                                        "--out", str(tmp_path / "g3.png"))
    assert code == 0 and T == 12 and sol.mdp.horizon == 12 and err == ""


@pytest.mark.parametrize("argv,needle", [
    (["solve", "nowhere"], "unknown world"),
    (["solve", "cliff", "--alpha", "-1"], "alpha"),
    (["solve", "cliff", "--alpha", "zero"], "alpha"),
    (["solve", "cliff", "--alpha", "nan"], "alpha"),
    (["compare", "cliff", "--horizon", "0"], "horizon"),
    (["solve", "cliff", "--discount", "1.5"], "discount"),
    (["solve", "cliff", "--method", "magic"], "method"),
    (["solve", "cliff", "--out", "x.csv"], "--out"),
    (["compare", "cliff", "--action-prior", "flat"], "--action-prior"),
    (["solve", "cliff", "--horizon", "none"], "discount"),
    (["graph", "-T", "0"], "steps"),
    (["demo", "--slip", "1.5"], "slip"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_error_paths_one_line_exit_2(capsys, argv, needle):
    code, _, err = _run(capsys, *argv)
    assert needle in _one_line_error(code, err)


@pytest.mark.parametrize("text,needle", [
    ("S..X\n...G\n", "unknown cell"),
    ("S...\n..G\n", "every row"),
    ("....\n...G\n", "start"),
    ("", "empty"),
])
def test_malformed_layout_file(tmp_path, capsys, text, needle):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    code, _, err = _run(capsys, "solve", str(bad))
    line = _one_line_error(code, err)
    assert "malformed layout" in line and needle in line


def test_help_for_every_subcommand(capsys):
    for sub in ("demo", "solve", "compare", "graph", "worlds"):
        with pytest.raises(SystemExit) as e:
            main([sub, "--help"])
        assert e.value.code == 0
        assert "usage: cai " + sub in capsys.readouterr().out


def test_version(capsys):
    # the one home of the version is cai/_version.py; the command prints exactly `cai <version>`
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    from cai._version import __version__
    assert out == f"cai {__version__}\n"
    assert __version__ == cai.__version__ and __version__.count(".") == 2


def test_python_dash_m(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "cai", "solve", "nowhere"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "unknown world" in r.stderr
    r = subprocess.run([sys.executable, "-m", "cai", "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0 and "demo" in r.stdout


# --- issue 11: every error path is one line with status 2, naming the option -----------------

def test_layout_errors_name_the_option_or_the_file(tmp_path, capsys):
    layout = tmp_path / "room.txt"
    layout.write_text("S..\n..G\n")
    code, _, err = _run(capsys, "solve", str(tmp_path / "missing.txt"))
    assert "layout file" in _one_line_error(code, err) and "does not exist" in err
    code, _, err = _run(capsys, "solve", str(layout), "--horizon", "none")
    line = _one_line_error(code, err)
    assert line.startswith("cai: error: --discount:") and "malformed" not in line


@pytest.mark.parametrize("argv,option", [
    (["solve", "lottery", "--slip", "0.2"], "--slip"),
    (["solve", "lottery", "--horizon", "5"], "--horizon"),
    (["compare", "lottery", "--slip", "0.2"], "--slip"),
])
def test_lottery_refuses_slip_and_horizon(capsys, argv, option):
    code, _, err = _run(capsys, *argv)
    assert _one_line_error(code, err).startswith(f"cai: error: {option}:")


@pytest.mark.parametrize("argv", [
    ["demo", "--out", "/proc/cai-cannot-write/x", "--horizon", "3", "--no-gif"],
    ["solve", "chain", "--out", "/proc/cai-cannot-write/x.npz", "-q"],
    ["graph", "--out", "/proc/cai-cannot-write/g.png", "-q"],
])
def test_unwritable_out_is_one_line(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert _one_line_error(code, err).startswith("cai: error: --out: cannot")


def test_graph_all_steps_is_capped(tmp_path, capsys):
    out = tmp_path / "g.png"
    code, _, err = _run(capsys, "graph", "--steps", "1000", "--all-steps", "--out", str(out))
    line = _one_line_error(code, err)
    assert "--all-steps" in line and "260,260 pixels" in line and not out.exists()
    code, _, err = _run(capsys, "graph", "--steps", "12", "--all-steps", "--out", str(out), "--dpi", "20", "-q")
    assert code == 0 and out.exists(), err


def test_pomdp_world_is_refused_with_one_line(capsys):
    """The tabular commands take MDPs: a POMDP world is named as such, with exit code 2."""
    assert main(["solve", "tiger"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "POMDP" in err[0] and "tiger" in err[0]


def _no_empty_marginal_panels(monkeypatch):
    """Record the Axes of every state_marginals the demo draws (their panels are checked after)."""
    from cai import viz

    drawn, real = [], viz.state_marginals

    def spy(*args, **kw):
        axes = real(*args, **kw)
        drawn.append(axes)
        return axes

    monkeypatch.setattr(viz, "state_marginals", spy)
    return drawn


def test_demo_world_chain_as_svg_never_draws_an_empty_marginal_panel(tmp_path, capsys, monkeypatch):
    from cai.viz.marginals import MIN_ON_GRID

    drawn = _no_empty_marginal_panels(monkeypatch)
    out = tmp_path / "chain"
    code, stdout, err = _run(capsys, "demo", "--world", "chain", "--format", "svg", "--out", str(out),
                             "--horizon", "6", "--dpi", "30", "--no-gif")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{n}.svg" for n in ("graphical_model", "values_exact_vs_soft", "policies", "soft_q",
                                                 "posterior_marginals", "trajectories", "temperature_sweep"))
    for p in out.iterdir():
        text = p.read_text()
        assert text.startswith("<?xml") and "<svg" in text[:1000] and text.rstrip().endswith("</svg>")
    assert "world 'chain'" in stdout and "skipped" not in stdout and "cliff" not in stdout   # chain has no lava
    (axes,) = drawn
    for ax in axes:
        assert np.nansum(np.ma.filled(ax.images[0].get_array(), np.nan)) >= MIN_ON_GRID, ax.get_title()


def test_demo_world_without_a_grid_as_pdf_slides(tmp_path, capsys):
    out = tmp_path / "fork"
    code, stdout, err = _run(capsys, "demo", "--world", "options-fork", "--format", "pdf", "--style", "slides",
                             "--out", str(out), "--dpi", "30", "--no-gif")
    assert code == 0, err
    files = sorted(p.name for p in out.iterdir())
    assert "trajectories.pdf" not in files and len(files) == 6
    assert all((out / f).read_bytes().startswith(b"%PDF") for f in files)
    assert "skipped: trajectories.pdf (world 'options-fork' has no grid" in stdout


@pytest.mark.parametrize("argv, names", [
    (["demo", "--world", "multigoal"], "multigoal"),
    (["demo", "--world", "no-such-world"], "unknown world"),
    (["demo", "--format", "jpeg"], "--format"),
    (["demo", "--style", "poster"], "--style"),
])
def test_demo_bad_world_format_or_style_is_one_line(capsys, tmp_path, argv, names):
    code, _, err = _run(capsys, *argv, "--out", str(tmp_path / "x"))
    assert names in _one_line_error(code, err)
