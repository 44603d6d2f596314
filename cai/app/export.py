"""One self-contained HTML page of the explorer: solutions precomputed over a grid of alphas and
slips, embedded as JSON, drawn and stepped through by plain JavaScript (``static/explorer.js``).

The page opens offline from a file: it loads no script, style or font from anywhere (no CDN).
It does not re-solve, so cells cannot be edited there; ``cai explore`` is the live version.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional, Sequence, Union

from cai.app.draw import DRAW_JS
from cai.app.model import Controls, GridWorldSpec, check_controls, solve, spec_from_mdp
from cai.mdp.tabular import TabularMDP
from cai.typing import PathLike

__all__ = ["DEFAULT_ALPHAS", "DEFAULT_SLIPS", "precompute", "export_html"]

#: temperatures precomputed by default
DEFAULT_ALPHAS = (0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
#: slip probabilities precomputed by default
DEFAULT_SLIPS = (0.0, 0.05, 0.1, 0.2)

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cai explore: __TITLE__</title>
<style>
body { font-family: sans-serif; margin: 12px; }
.cai-controls label { display: inline-block; margin-right: 16px; font-size: 13px; }
.cai-note { font-size: 12px; color: #555; }
</style></head>
<body>
<h3>cai explore: __TITLE__</h3>
<div class="cai-controls">
<label>alpha <input id="cai-alpha" type="range" min="0" max="0" step="1" value="0"> <span id="cai-alpha-value"></span></label>
<label>slip <input id="cai-slip" type="range" min="0" max="0" step="1" value="0"> <span id="cai-slip-value"></span></label>
<label>t <input id="cai-t" type="range" min="0" max="0" step="1" value="0"> <span id="cai-t-value"></span></label>
<button id="cai-play">play</button>
<label><input type="checkbox" class="cai-method" value="exact" checked> exact inference</label>
<label><input type="checkbox" class="cai-method" value="soft" checked> soft VI</label>
<label><input type="checkbox" class="cai-method" value="hard" checked> hard VI</label>
</div>
<p class="cai-note" id="cai-note">Precomputed by cai for the alphas and slips on the sliders.
Editing cells needs the live explorer: <code>cai explore</code>.</p>
<div id="cai-root"></div>
<script id="cai-data" type="application/json">__DATA__</script>
<script>
__DRAW_JS__
(function () {
  var data = JSON.parse(document.getElementById("cai-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var alpha = $("cai-alpha"), slip = $("cai-slip"), tt = $("cai-t"), play = $("cai-play"), timer = null;
  alpha.max = data.alphas.length - 1; alpha.value = data.alpha_index;
  slip.max = data.slips.length - 1; slip.value = data.slip_index;
  tt.max = data.horizon;
  function methods() {
    return Array.prototype.slice.call(document.querySelectorAll(".cai-method"))
      .filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
  }
  function draw() {
    var rec = data.frames[slip.value][alpha.value];
    $("cai-alpha-value").textContent = data.alphas[alpha.value];
    $("cai-slip-value").textContent = data.slips[slip.value];
    $("cai-t-value").textContent = tt.value;
    caiExplorerDraw($("cai-root"), rec, {t: Number(tt.value), methods: methods()}, function () {
      $("cai-note").style.color = "#b00";
    });
  }
  [alpha, slip, tt].forEach(function (e) { e.addEventListener("input", draw); });
  document.querySelectorAll(".cai-method").forEach(function (e) { e.addEventListener("change", draw); });
  play.addEventListener("click", function () {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
    play.textContent = "pause";
    timer = setInterval(function () { tt.value = (Number(tt.value) + 1) % (data.horizon + 1); draw(); }, 300);
  });
  draw();
})();
</script>
</body></html>
"""


def precompute(spec: GridWorldSpec, controls: Controls, alphas: Sequence[float] = DEFAULT_ALPHAS,
               slips: Sequence[float] = DEFAULT_SLIPS) -> dict:
    """Solve ``spec`` at every (slip, alpha) pair; return the page's data.

    Args:
        spec: the grid world.
        controls: the horizon, and the alpha and slip the page opens at (the nearest precomputed).
        alphas, slips: the grids (non-empty; each value valid for :class:`Controls`).

    Returns:
        ``{"alphas", "slips", "horizon", "alpha_index", "slip_index", "frames"}`` with
        ``frames[i][j] = solve(spec, Controls(alphas[j], slips[i], T)).to_json()``.

    Raises:
        ValueError: an empty grid or an invalid value (named).
    """
    if len(alphas) == 0 or len(slips) == 0:
        raise ValueError(f"alphas, slips: expected non-empty sequences, got {len(alphas)} alphas and {len(slips)} slips")
    controls = check_controls(controls)
    frames = []
    for s in slips:
        frames.append([solve(spec, Controls(alpha=a, slip=s, horizon=controls.horizon)).to_json() for a in alphas])
    nearest = lambda xs, x: min(range(len(xs)), key=lambda i: abs(float(xs[i]) - x))  # noqa: E731
    return {"alphas": [float(a) for a in alphas], "slips": [float(s) for s in slips], "horizon": controls.horizon,
            "alpha_index": nearest(alphas, controls.alpha), "slip_index": nearest(slips, controls.slip),
            "frames": frames}


def export_html(mdp: Union[TabularMDP, GridWorldSpec], path: PathLike, *, name: Optional[str] = None,
                controls: Optional[Controls] = None, alphas: Sequence[float] = DEFAULT_ALPHAS,
                slips: Sequence[float] = DEFAULT_SLIPS) -> Path:
    """Write the explorer of ``mdp`` as one self-contained HTML file.

    Args:
        mdp: a finite-horizon grid world, or a :class:`GridWorldSpec`.
        path: the file to write.
        name: title of the page (default the spec's name).
        controls: horizon and opening alpha/slip (default: the world's own, alpha 1).
        alphas, slips: the precomputed grid.

    Returns:
        The path written.

    Raises:
        ValueError: not a finite-horizon grid world, or invalid settings.
    """
    if isinstance(mdp, GridWorldSpec):
        spec, own = mdp, Controls()
    else:
        spec, own = spec_from_mdp(mdp, name or "grid")
    data = precompute(spec, controls or own, alphas, slips)
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = (_PAGE.replace("__TITLE__", html.escape(name or spec.name))
            .replace("__DRAW_JS__", DRAW_JS).replace("__DATA__", text))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
