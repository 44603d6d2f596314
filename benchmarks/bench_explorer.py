"""``cai explore``: time from the change of a control to the new view being ready to send.

On a 10x10 grid (start top-left, goal bottom-right, a lava strip, slip 0.1) with horizon T = 30,
one change of the alpha slider (and, separately, one click that paints a wall) runs
:meth:`cai.app.view.Explorer.set_controls` / :meth:`~cai.app.view.Explorer.click` with the view
attached to a Bokeh document, as in a served session: the three solves (exact inference with
forward messages, soft VI, hard VI), the three policies run in the real dynamics, their ELBOs,
the record for the browser and Panel's update of the document model. Then the record is
serialised to JSON (the bytes the websocket carries). The browser's drawing is not included.

Reports medians and maxima over ``--repeats`` changes. ``--quick`` is a smoke run (a 5x5 grid).

    python benchmarks/bench_explorer.py [--repeats 30] [--size 10] [--horizon 30] [--quick]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from bokeh.document import Document  # noqa: E402

from cai.app.model import solve  # noqa: E402
from cai.app.view import Explorer  # noqa: E402
from cai.worlds.builders import gridworld, square_layout  # noqa: E402


def run(size: int, horizon: int, repeats: int) -> dict:
    mdp = gridworld(square_layout(size), slip=0.1, horizon=horizon)
    ex = Explorer(mdp, name=f"square{size}")
    ex.panel().get_root(Document())                # attached, as in a served session
    ex.brush.value = "wall"
    times = {"alpha slider": [], "cell click": [], "of which solve": []}
    sizes = []
    for i in range(repeats):
        controls = replace(ex.controls, alpha=0.5 + (i % 7) * 0.3)
        t0 = time.perf_counter()
        assert ex.set_controls(alpha=controls.alpha)
        times["alpha slider"].append(time.perf_counter() - t0)
        sizes.append(len(ex.canvas.record))
        t0 = time.perf_counter()
        solve(ex.spec, controls)
        times["of which solve"].append(time.perf_counter() - t0)
        row, col = 1 + i % (size - 2), 1 if i % 2 else size - 2          # never the start, goal or lava row
        if row == size // 2:
            row += 1
        ex.brush.value = "wall" if i % 2 else "free"
        t3 = time.perf_counter()
        assert ex.click(row, col), ex.message
        times["cell click"].append(time.perf_counter() - t3)
    return {"times": times, "bytes": statistics.median(sizes), "states": mdp.n_states}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--size", type=int, default=10)
    p.add_argument("--horizon", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="smoke run: 5x5, T = 10, 3 repeats")
    a = p.parse_args(argv)
    size, horizon, repeats = (5, 10, 3) if a.quick else (a.size, a.horizon, a.repeats)
    load = os.getloadavg()[0]
    res = run(size, horizon, repeats)
    print(f"cai explore: {size}x{size} grid ({res['states']} states), T = {horizon}, {repeats} changes, "
          f"load average {load:.2f} at start")
    print(f"{'step':<20} {'median ms':>10} {'max ms':>10}")
    for k, v in res["times"].items():
        print(f"{k:<20} {1000 * statistics.median(v):>10.1f} {1000 * max(v):>10.1f}")
    print(f"record sent per change: {res['bytes'] / 1000:.0f} kB of JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main())
