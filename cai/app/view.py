"""The explorer's Panel view: controls, the grid panels drawn in the browser, messages; and the server.

Needs ``pip install 'control-as-inference[app]'`` (Panel). All numbers come from :func:`cai.app.model.solve`; this
module only turns widget events into model calls and the model's :class:`~cai.app.model.Frame`
into what the browser draws (the drawing itself is ``static/explorer.js``, shared with the
exported page).
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Dict, Optional

import panel as pn
import param
from bokeh.models import CustomJSTickFormatter
from panel.custom import JSComponent

from cai.app.draw import DRAW_JS
from cai.app.model import (
    ALPHA_RANGE,
    BRUSHES,
    HORIZON_RANGE,
    METHOD_LABELS,
    METHODS,
    Controls,
    Frame,
    GridWorldSpec,
    check_layout,
    edit_layout,
    solve,
    spec_from_mdp,
)
from cai.mdp.tabular import TabularMDP
from cai.worlds.registry import WORLDS, make_world

__all__ = ["Explorer", "ExplorerCanvas", "grid_worlds", "serve"]

_ESM = DRAW_JS + """
export function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "cai-explorer";
  let rec = model.record ? JSON.parse(model.record) : null;
  const draw = () => caiExplorerDraw(root, rec, {t: model.t, methods: model.methods},
                                     (r, c) => model.send_msg({row: r, col: c}));
  draw();
  model.on("record", () => { rec = model.record ? JSON.parse(model.record) : null; draw(); });
  model.on("t", draw);
  model.on("methods", draw);
  return root;
}
"""


class ExplorerCanvas(JSComponent):
    """The grids and the numbers, drawn in the browser from one :meth:`Frame.to_json` record."""

    record = param.String(default="", doc="Frame.to_json() of the current solution, as JSON text (one "
                          "string: Bokeh sends it as is, without walking a nested dict)")
    t = param.Integer(default=0, doc="time step shown")
    methods = param.List(default=list(METHODS), doc="methods shown side by side")

    _esm = _ESM

    def __init__(self, on_cell: Optional[Callable[[int, int], None]] = None, **params: Any) -> None:
        super().__init__(**params)
        self._on_cell = on_cell

    def _handle_msg(self, data) -> None:
        if self._on_cell is not None and isinstance(data, dict):
            self._on_cell(int(data.get("row", -1)), int(data.get("col", -1)))


def grid_worlds() -> Dict[str, TabularMDP]:
    """The registry's grid worlds with no optional dependency, by name."""
    out = {}
    for name, w in WORLDS.items():
        if w.kind != "tabular" or w.extra is not None:
            continue
        mdp = make_world(name)
        if (mdp.metadata or {}).get("kind") == "grid" and mdp.horizon is not None:
            out[name] = mdp
    return out


_CUSTOM = "(custom layout)"


class Explorer:
    """A live explorer of one grid world: every change re-solves with cai and redraws.

    Args:
        mdp: a finite-horizon grid world (default: the registry's ``demo``).
        alpha: initial temperature.
        name: label of the world (default: the registry name, or ``"grid"``).

    Raises:
        ValueError: ``mdp`` is not a finite-horizon grid world, or ``alpha`` is out of range.
    """

    def __init__(self, mdp: Optional[TabularMDP] = None, *, alpha: float = 1.0, name: Optional[str] = None) -> None:
        if mdp is None:
            mdp, name = make_world("demo"), name or "demo"
        spec, controls = spec_from_mdp(mdp, name or "grid")
        controls = Controls(alpha=alpha, slip=controls.slip, horizon=controls.horizon)
        self.spec: GridWorldSpec = spec
        self.controls: Controls = controls
        t0 = time.perf_counter()
        self.frame: Frame = solve(spec, controls)
        self.last_solve_s: float = time.perf_counter() - t0
        self.message: str = ""
        self._worlds = grid_worlds()
        self._build_widgets()
        self._push()

    # ---- widgets ------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        lo, hi = (math.log10(x) for x in ALPHA_RANGE)
        fmt = CustomJSTickFormatter(code="return Number(Math.pow(10, tick).toPrecision(3)).toString()")
        c = self.controls
        options = [_CUSTOM] + list(self._worlds)
        self.world = pn.widgets.Select(label="world", options=options,
                                       value=self.spec.name if self.spec.name in self._worlds else _CUSTOM, width=200)
        self.alpha = pn.widgets.FloatSlider(label="alpha (log scale)", start=lo, end=hi, step=0.05,
                                            value=round(math.log10(c.alpha), 2), format=fmt, width=260)
        self.alpha_text = pn.widgets.TextInput(label="alpha (type a value, Enter)", value=f"{c.alpha:g}", width=200)
        self.slip = pn.widgets.FloatSlider(label="slip", start=0.0, end=0.5, step=0.01, value=c.slip, width=200)
        self.horizon = pn.widgets.IntSlider(label="horizon T", start=HORIZON_RANGE[0], end=HORIZON_RANGE[1],
                                            value=c.horizon, width=200)
        self.t = pn.widgets.Player(label="time step t", start=0, end=c.horizon, value=0, interval=300,
                                   loop_policy="loop", width=260, show_value=True)
        self.brush = pn.widgets.RadioButtonGroup(label="brush", options=list(BRUSHES), value="wall")
        self.methods = pn.widgets.CheckButtonGroup(label="methods", value=list(METHODS), options={
            METHOD_LABELS[m]: m for m in METHODS})
        self.layout_text = pn.widgets.TextAreaInput(label="layout (# wall, S start, G goal, L lava, . free)",
                                                    value=self.spec.layout, height=160, width=260)
        self.apply = pn.widgets.Button(label="apply layout", width=120)
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, css_classes=["cai-message"])
        self.status = pn.pane.Markdown("", css_classes=["cai-status"])
        self.canvas = ExplorerCanvas(on_cell=self.click)

        self.world.param.watch(lambda e: self.load_world(e.new), "value")
        self.alpha.param.watch(lambda e: self.set_controls(alpha=10 ** e.new), "value_throttled")
        self.alpha_text.param.watch(lambda e: self.type_alpha(e.new), "value")
        self.slip.param.watch(lambda e: self.set_controls(slip=e.new), "value_throttled")
        self.horizon.param.watch(lambda e: self.set_controls(horizon=e.new), "value_throttled")
        self.t.param.watch(lambda e: setattr(self.canvas, "t", int(e.new)), "value")
        self.methods.param.watch(lambda e: setattr(self.canvas, "methods", [m for m in METHODS if m in e.new]),
                                 "value")
        self.brush.param.watch(lambda e: self._show_status(), "value")
        self.apply.on_click(lambda e: self.set_layout(self.layout_text.value))

    def panel(self) -> pn.viewable.Viewable:
        """The whole explorer as one Panel layout."""
        controls = pn.Column(
            "### cai explore", self.world, self.alpha, self.alpha_text, self.slip, self.horizon, self.t,
            pn.pane.Markdown("click a cell to paint it with:"), self.brush, self.methods,
            self.layout_text, self.apply, width=300)
        return pn.Row(controls, pn.Column(self.alert, self.canvas, self.status))

    # ---- actions (each re-solves, or shows a message and keeps the previous state) -----
    def _update(self, spec: GridWorldSpec, controls: Controls) -> bool:
        t0 = time.perf_counter()
        try:
            frame = solve(spec, controls)
        except (ValueError, TypeError) as exc:
            self._fail(str(exc))
            return False
        self.last_solve_s = time.perf_counter() - t0
        self.spec, self.controls, self.frame = spec, frame.controls, frame
        self.message = ""
        self._push()
        return True

    def _fail(self, message: str) -> None:
        self.message = f"{message} (kept the previous world)"
        self.alert.object = self.message
        self.alert.visible = True
        # the sliders go back to the state that is shown
        c = self.controls
        with param.parameterized.discard_events(self.alpha):
            self.alpha.value = round(math.log10(c.alpha), 2)
        with param.parameterized.discard_events(self.alpha_text):
            self.alpha_text.value = f"{c.alpha:g}"
        with param.parameterized.discard_events(self.slip):
            self.slip.value = c.slip
        with param.parameterized.discard_events(self.horizon):
            self.horizon.value = c.horizon

    def _push(self) -> None:
        """Send the current frame to the browser."""
        self.alert.visible = bool(self.message)
        c = self.controls
        with param.parameterized.discard_events(self.alpha):
            self.alpha.value = round(math.log10(c.alpha), 2)
        with param.parameterized.discard_events(self.alpha_text):
            self.alpha_text.value = f"{c.alpha:g}"
        T = self.controls.horizon
        self.t.end = T
        if self.t.value > T:
            self.t.value = T
        record = json.dumps(self.frame.to_json(), allow_nan=False, separators=(",", ":"))
        self.canvas.param.update(record=record, t=int(self.t.value))
        self._show_status()

    def _show_status(self) -> None:
        self.status.object = (f"solved by exact inference, soft VI and hard VI in {self.last_solve_s * 1000:.0f} ms; "
                              f"brush: {self.brush.value}")

    def set_controls(self, **changes) -> bool:
        """Change ``alpha``, ``slip`` and/or ``horizon`` and re-solve; ``False`` (and a message) if invalid."""
        try:
            controls = Controls(**{**self.controls.__dict__, **changes})
        except TypeError as exc:
            self._fail(f"controls: {exc}")
            return False
        return self._update(self.spec, controls)

    def type_alpha(self, text: str) -> bool:
        """Set alpha from typed text; ``False`` (and a message) if it is not a number in range."""
        try:
            alpha = float(text)
        except (TypeError, ValueError):
            self._fail(f"alpha: expected a number in [{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}], got {text!r}")
            return False
        return self.set_controls(alpha=alpha)

    def set_layout(self, layout: str) -> bool:
        """Replace the layout and re-solve; ``False`` (and a message) if it is invalid."""
        try:
            check_layout(layout)
        except (ValueError, TypeError) as exc:
            self._fail(str(exc))
            return False
        spec = GridWorldSpec(layout, self.spec.step_cost, self.spec.goal_reward, self.spec.lava_reward,
                             name=self.spec.name)
        ok = self._update(spec, self.controls)
        if ok:
            self.layout_text.value = spec.layout
            if self.world.value != _CUSTOM and self._worlds[self.world.value].metadata["layout"] != spec.layout:
                with param.parameterized.discard_events(self.world):
                    self.world.value = _CUSTOM
        return ok

    def click(self, row: int, col: int) -> bool:
        """Paint cell ``(row, col)`` with the current brush and re-solve."""
        try:
            layout = edit_layout(self.spec.layout, row, col, self.brush.value)
        except ValueError as exc:
            self._fail(str(exc))
            return False
        return self.set_layout(layout)

    def load_world(self, name: str) -> bool:
        """Switch to a registry grid world (its own rewards, slip and horizon)."""
        if name == _CUSTOM:
            return True
        if name not in self._worlds:
            self._fail(f"world: expected one of {', '.join(self._worlds)}, got {name!r}")
            return False
        spec, controls = spec_from_mdp(self._worlds[name], name)
        ok = self._update(spec, Controls(alpha=self.controls.alpha, slip=controls.slip, horizon=controls.horizon))
        if ok:
            with param.parameterized.discard_events(self.slip):
                self.slip.value = controls.slip
            with param.parameterized.discard_events(self.horizon):
                self.horizon.value = controls.horizon
            self.layout_text.value = spec.layout
        return ok


def serve(mdp: Optional[TabularMDP] = None, *, name: Optional[str] = None, port: int = 5006, show: bool = True,
          threaded: bool = False, alpha: float = 1.0) -> Any:
    """Serve the explorer on ``http://localhost:PORT/`` (one fresh :class:`Explorer` per browser tab).

    Args:
        mdp, name, alpha: as :class:`Explorer`.
        port: TCP port on localhost.
        show: open a browser tab.
        threaded: return at once with the server running in a thread (stop it with ``.stop()``);
            otherwise block until interrupted.

    Returns:
        The Panel server (a thread with ``.stop()`` when ``threaded``).
    """
    Explorer(mdp, name=name, alpha=alpha)          # fail here, before serving, on a bad world

    def page():
        return Explorer(mdp, name=name, alpha=alpha).panel()

    return pn.serve({"/": page}, port=port, address="localhost", allow_websocket_origin=[f"localhost:{port}"],
                    show=show, threaded=threaded, title="cai explore", print_url=False)

