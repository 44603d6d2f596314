"""`cai sweep SPEC`: the table, the figure, resumability and one-line errors."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cai.cli import main


def test_yaml_spec_writes_table_and_figure(tmp_path, capsys):
    spec = tmp_path / "opt.yaml"
    spec.write_text("study: optimism\ngrid:\n  world: chain\n  slip: [0.0, 0.2]\n  alpha: [0.5, 2.0]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and df["error"].isna().all() and (df["optimism_gap"] >= -1e-12).all()
    data = (out / "figure.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = plt.imread(out / "figure.png")
    assert img.shape[0] > 100 and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20   # not blank
    assert main(["sweep", str(spec), "--out", str(out), "-q"]) == 0      # resumes: nothing to do
    assert len((out / "results.jsonl").read_text().splitlines()) == 4


def test_toml_spec(tmp_path):
    spec = tmp_path / "g.toml"
    spec.write_text('study = "garnet"\n[grid]\nn_states = 10\nseed = [0, 1, 2]\n')
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-q"]) == 0
    assert len(pd.read_csv(tmp_path / "o" / "results.csv")) == 3


def test_bad_specs_give_one_line(tmp_path, capsys):
    cases = {"x.yaml": "study: nope\n", "y.yaml": "study: optimism\nbogus: 1\n", "z.txt": "", "w.yaml": "[1, 2\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["sweep", str(tmp_path / name), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("cai: error:") and len(err.splitlines()) == 1, err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
