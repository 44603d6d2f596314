"""The exported page: self-contained (no URL to load from) and its numbers are cai's."""
import json
import re

import pytest

import cai
from cai.app.export import export_html, precompute
from cai.app.model import Controls, GridWorldSpec
from cai.worlds.builders import gridworld

LAYOUT = "S..\n.L.\n..G"


def _data(text):
    m = re.search(r'<script id="cai-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_page_is_self_contained_and_holds_cai_numbers(tmp_path):
    out = export_html(gridworld(LAYOUT, horizon=5), tmp_path / "x.html", name="x<y", alphas=(0.5, 2.0),
                      slips=(0.0, 0.1))
    text = out.read_text()
    assert "<script src" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls == {"http://www.w3.org/2000/svg"}                 # the SVG namespace, loaded from nowhere
    assert "x&lt;y" in text
    data = _data(text)
    assert data["alphas"] == [0.5, 2.0] and data["slips"] == [0.0, 0.1] and data["horizon"] == 5
    for i, slip in enumerate(data["slips"]):
        for j, alpha in enumerate(data["alphas"]):
            mdp = gridworld(LAYOUT, slip=slip, horizon=5)
            rec = data["frames"][i][j]
            assert rec["alpha"] == alpha and rec["slip"] == slip
            # to the printed precision (6 significant digits)
            assert rec["numbers"]["log_evidence"] == float(
                f"{float(cai.backward_messages(mdp, alpha=alpha).log_evidence):.6g}")
            assert rec["numbers"]["max_elbo"] == float(
                f"{float(cai.soft_value_iteration(mdp, alpha=alpha).max_elbo):.6g}")


def test_precompute_checks_its_grid():
    with pytest.raises(ValueError, match="alphas"):
        precompute(GridWorldSpec(LAYOUT), Controls(), alphas=(), slips=(0.0,))
    with pytest.raises(ValueError, match="slip"):
        precompute(GridWorldSpec(LAYOUT), Controls(horizon=3), alphas=(1.0,), slips=(1.0,))
    data = precompute(GridWorldSpec(LAYOUT), Controls(alpha=0.9, slip=0.12, horizon=3), alphas=(0.1, 1.0),
                      slips=(0.0, 0.1))
    assert (data["alpha_index"], data["slip_index"]) == (1, 1)
