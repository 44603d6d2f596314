"""``cai explore``: the subcommand is thin; it builds the world, then serves or writes the page."""
import json
import re

import pytest

pytest.importorskip("panel", reason="cai explore needs cai[app] (Panel)")

import cai  # noqa: E402
from cai.cli import main  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402


def test_html_writes_a_page_of_the_named_world(tmp_path, capsys, monkeypatch):
    import cai.app.export as export

    monkeypatch.setattr(export, "DEFAULT_ALPHAS", (1.0,))          # one solve per slip keeps it quick
    monkeypatch.setattr(export.export_html, "__kwdefaults__",
                        {**export.export_html.__kwdefaults__, "alphas": (1.0,), "slips": (0.0,)})
    out = tmp_path / "two.html"
    assert main(["explore", "two-route", "--html", str(out), "--horizon", "9"]) == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads(re.search(r'type="application/json">(.*?)</script>', out.read_text(), re.S).group(1))
    rec = data["frames"][0][0]
    mdp = cai.worlds.two_route(horizon=9)
    assert rec["numbers"]["log_evidence"] == float(f"{float(cai.backward_messages(mdp, alpha=1.0).log_evidence):.6g}")


def test_serve_prints_its_address(monkeypatch, capsys, tmp_path):
    import cai.app.view as view

    seen = {}
    monkeypatch.setattr(view, "serve", lambda mdp, **kw: seen.update(kw, mdp=mdp))
    layout = tmp_path / "room.txt"
    layout.write_text("S..\n.#.\n..G\n")
    assert main(["explore", str(layout), "--port", "5123", "--no-browser", "--alpha", "0.5"]) == 0
    assert "http://localhost:5123/" in capsys.readouterr().out
    assert seen["port"] == 5123 and seen["show"] is False and seen["alpha"] == 0.5 and seen["name"] == "room"
    assert seen["mdp"].metadata["layout"] == gridworld("S..\n.#.\n..G").metadata["layout"]


@pytest.mark.parametrize("argv, match", [
    (["explore", "chain"], "grid world"),
    (["explore", "nowhere"], "unknown world"),
    (["explore", "--port", "0"], "port"),
    (["explore", "cliff", "--horizon", "none"], "positive integer"),
])
def test_errors_are_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_bad_layout_file_is_named(tmp_path, capsys):
    bad = tmp_path / "walled.txt"
    bad.write_text("S#.\n##.\n..G\n")
    assert main(["explore", str(bad), "--no-browser"]) == 2
    assert "reachable" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["explore", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: cai explore" in out and "--html" in out and "--no-browser" in out
