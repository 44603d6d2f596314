"""The ``cai`` command: lecture demos, solving named worlds, inference-vs-DP tables, the model's graph.

::

    cai demo     [--world WORLD] [--out DIR] [--format png|svg|pdf] [--style paper|slides] [--alpha A]
                 [--slip P] [--horizon T] [--no-gif]
    cai solve    WORLD [--method exact|soft_vi|vi|svi] [--alpha A] [--horizon T] [--discount G]
                       [--action-prior auto|counting|uniform] [--out FILE]
    cai compare  WORLD [--alpha A] [--horizon T] [--discount G] [--action-prior auto|counting|uniform]
    cai graph    [--steps T] [--world WORLD] [--all-steps] [--out FILE]
    cai sweep    SPEC [--out DIR] [--engine serial|joblib|ray] [--workers N]
    cai worlds
    cai --version
    cai explore  [WORLD] [--port N] [--no-browser] [--html FILE] [--alpha A] [--slip P] [--horizon T]

``WORLD`` is a name from ``cai worlds`` or the path of a text layout file (``#`` wall, ``S``
start, ``G`` goal, ``L`` lava, ``.`` free). Errors in arguments or layout files print one line on
stderr and exit with status 2. ``python -m cai`` runs the same command.

``--action-prior auto`` (the default) uses the counting prior for a finite horizon and the uniform
prior over the allowed actions for ``--horizon none``; ``cai compare`` prints the prior it used in
its header and defines every number it prints in one line under the table
(:func:`cai.report.table.inference_table`).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

__all__ = ["main", "load_world"]

from cai._version import __version__
from cai.worlds.registry import DEFAULT, WORLDS

if TYPE_CHECKING:
    from cai.mdp.tabular import TabularMDP


class UsageError(Exception):
    """A problem with the command line or its inputs: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, no traceback
        raise UsageError(f"{self.prog}: error: {message}")


# ---------------------------------------------------------------------------------------------
# worlds (the registry is cai.worlds.registry; this turns its errors into one-line usage errors)

def load_world(spec: str, *, horizon: Union[int, None, str] = DEFAULT, discount: Optional[float] = None,
               slip: Optional[float] = None) -> Tuple[str, TabularMDP]:
    """Build a world by registry name (:data:`cai.worlds.WORLDS`) or from a layout file.

    Returns:
        ``(name, TabularMDP)``.

    Raises:
        UsageError: unknown world, missing, unreadable or malformed layout file, or invalid settings.
    """
    from cai.worlds.registry import canonical_name, load_layout, make_world

    key = canonical_name(spec)
    if key in WORLDS:
        if WORLDS[key].kind != "tabular":
            what = "a POMDP (see cai.pomdp)" if WORLDS[key].kind == "pomdp" else \
                "a continuous environment for the deep learners"
            raise UsageError(f"world {key!r} is {what}, not a tabular MDP")
        try:
            return key, make_world(key, slip=slip, horizon=horizon, discount=discount)
        except ImportError as exc:
            raise UsageError(f"world {key!r} needs an optional dependency: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise _setting_error(exc, f"world {key!r}") from None
    path = Path(spec)
    looks_like_file = path.suffix != "" or "/" in spec or path.exists()
    if not looks_like_file:
        raise UsageError(f"unknown world {spec!r}: expected one of {', '.join(WORLDS)} or a layout file")
    if not path.is_file():
        raise UsageError(f"layout file {spec!r} does not exist")
    try:
        return path.stem, load_layout(path, slip=0.0 if slip is None else slip, horizon=horizon, discount=discount)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read layout file {spec!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise _setting_error(exc, f"malformed layout file {spec!r}") from None


#: the registry's and the builders' argument names that are command-line options
_OPTIONS = ("horizon", "discount", "slip")


def _setting_error(exc: Exception, context: str) -> UsageError:
    """An error about ``--horizon``/``--discount``/``--slip`` names the option; any other is ``context``'s."""
    msg = str(exc)
    for name in _OPTIONS:
        if msg.startswith(f"{name}:"):
            return UsageError(f"--{name}: {msg[len(name) + 1:].strip()} ({context.replace('malformed ', '')})")
    return UsageError(f"{context}: {msg}")


def _out_dir(path: Path) -> Path:
    """Create the ``--out`` folder (and its parents); a one-line usage error when that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create the folder {str(path)!r}: {exc.strerror or exc}") from None
    return path


# ---------------------------------------------------------------------------------------------
# argument types

def _number_type(check, expected: str):
    """An argparse ``type`` that parses a float and checks it, naming what was ``expected``."""
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not check(x):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return x
    return parse


_positive_float = _number_type(lambda x: math.isfinite(x) and x > 0, "a finite number > 0")
_probability = _number_type(lambda x: 0.0 <= x < 1.0, "a probability in [0, 1)")
_discount = _number_type(lambda x: 0.0 < x <= 1.0, "a discount in (0, 1]")


_STATIONARY = -1          # --horizon none


def _world_horizon(value):
    """The command line's horizon as :func:`load_world` takes it."""
    if value is None:
        return DEFAULT
    return None if value == _STATIONARY else value


def _horizon(text: str):
    if text.lower() in ("none", "inf", "stationary"):
        return _STATIONARY
    try:
        return _steps(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text!r}") from None


def _port(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number in [1, 65535], got {text!r}") from None
    if not 1 <= x <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in [1, 65535], got {text!r}")
    return x


def _steps(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if x < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return x


# ---------------------------------------------------------------------------------------------
# solving and measuring

#: The methods ``cai solve`` runs: names from :data:`cai.methods.METHODS` (``soft-vi`` is accepted too).
METHODS = ("exact", "soft_vi", "vi", "svi")


def _method(text: str) -> str:
    """``--method``: a method name, or an old spelling of one (:data:`cai.methods.ALIASES`)."""
    from cai.methods import ALIASES

    return ALIASES.get(text, text)


def _solve(mdp, method: str, alpha: float, *, prior=None, quiet: bool = True, svi_steps: Optional[int] = None):
    """Run one method with the action prior ``prior`` (``None``: counting); return ``(Solution, seconds)``."""
    import cai

    t0 = time.perf_counter()
    if method == "exact":
        sol = cai.backward_messages(mdp, alpha=alpha, action_prior=prior)
    elif method == "soft_vi":
        sol = cai.soft_value_iteration(mdp, alpha=alpha, action_prior=prior)
    elif method == "vi":
        sol = cai.value_iteration(mdp)
    elif method == "svi":
        try:
            from cai.ppl.svi import fit_policy_svi
        except ImportError:
            raise UsageError("method 'svi' needs cai.ppl.svi.fit_policy_svi (Pyro SVI), which this "
                             "installation of cai does not have; use --method soft_vi for the same optimum") from None
        kw = {} if svi_steps is None else {"steps": svi_steps}
        fit = fit_policy_svi(mdp, alpha=alpha, action_prior=prior, progress=not quiet, **kw)
        sol = cai.soft_policy_evaluation(mdp, fit.policy, alpha=alpha, action_prior=prior)
    else:  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"unknown method {method!r}")
    _ = sol.policy                                            # include materialisation in the time
    return sol, time.perf_counter() - t0


def _write_solution(path: Path, mdp, sol, method: str, alpha: float, world: str, prior_name: str) -> None:
    import numpy as np

    d = {
        "world": world,
        "method": method,
        "alpha": float(alpha) if method != "vi" else 0.0,
        "action_prior": prior_name if method != "vi" else "none",
        "horizon": -1 if mdp.horizon is None else mdp.horizon,
        "discount": mdp.gamma,
        "V": sol.V.detach().cpu().numpy(),
        "Q": sol.Q.detach().cpu().numpy(),
        "policy": sol.policy.detach().cpu().numpy(),
        "value": float(sol.value),
        "state_names": list(mdp.state_names or [str(s) for s in range(mdp.n_states)]),
        "action_names": list(mdp.action_names or [str(a) for a in range(mdp.n_actions)]),
    }
    if sol.log_evidence is not None:
        d["log_evidence"] = float(sol.log_evidence)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".json":
        def clean(x):
            if isinstance(x, np.ndarray):
                return clean(x.tolist())
            if isinstance(x, list):
                return [clean(v) for v in x]
            if isinstance(x, float) and not math.isfinite(x):
                return None                                   # -inf (forbidden action) -> null
            return x
        with open(path, "w") as f:
            json.dump({k: clean(v) for k, v in d.items()}, f, allow_nan=False)
            f.write("\n")
    else:
        np.savez(path, **{k: np.asarray(v) for k, v in d.items()})


# ---------------------------------------------------------------------------------------------
# subcommands

def _cmd_worlds(args) -> int:
    width = max(len(k) for k in WORLDS)
    for name, w in WORLDS.items():
        print(f"{name.ljust(width)}  {w.description}")
    print(f"{'<file>'.ljust(width)}  a text layout: # wall, S start, G goal, L lava, . free")
    return 0


def _prior(mdp, name: str):
    """``(prior, name)`` for ``--action-prior`` (see :func:`cai.report.table.resolve_action_prior`)."""
    from cai.report.table import resolve_action_prior

    return resolve_action_prior(mdp, name)


def _cmd_solve(args) -> int:
    world, mdp = load_world(args.world, horizon=_world_horizon(args.horizon), discount=args.discount, slip=args.slip)
    import cai

    prior, prior_name = _prior(mdp, args.action_prior)
    try:
        sol, secs = _solve(mdp, args.method, args.alpha, prior=prior, quiet=args.quiet, svi_steps=args.svi_steps)
    except cai.DivergenceError as exc:
        raise UsageError(f"{exc} (action prior: {prior_name}; try --action-prior uniform)") from None
    out = Path(args.out) if args.out else Path(f"{world}-{args.method}.npz")
    if out.suffix.lower() not in (".npz", ".json"):
        raise UsageError(f"--out: expected a file ending in .npz or .json, got {str(out)!r}")
    _out_dir(out.parent)
    try:
        _write_solution(out, mdp, sol, args.method, args.alpha, world, prior_name)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {str(out)!r}: {exc.strerror or exc}") from None
    if not args.quiet:
        extra = f", log p(O) = {float(sol.log_evidence):.6g}" if sol.log_evidence is not None else ""
        used = "" if args.method == "vi" else f", {prior_name} action prior"
        print(f"{world} ({mdp!r}) by {args.method}{used}: value sum_s p0(s) V_0(s) = {float(sol.value):.6g}{extra}, "
              f"{secs * 1000:.1f} ms -> {out}")
    return 0


def _cmd_compare(args) -> int:
    world, mdp = load_world(args.world, horizon=_world_horizon(args.horizon), discount=args.discount, slip=args.slip)
    from cai.report.table import inference_table

    prior, _ = _prior(mdp, args.action_prior)
    if args.variational and mdp.horizon is None:
        raise UsageError("--variational: the variational fits need a finite horizon, got --horizon none")
    print(inference_table(mdp, args.alpha, args.action_prior, title=f"{world}: {mdp!r}"))
    if args.variational:
        from cai.report.compare import compare_inference

        kw = {} if args.svi_steps is None else {"steps": args.svi_steps}
        print()
        print(compare_inference(mdp, args.alpha, prior, methods=tuple(args.variational), **kw))
    return 0


def _graph_world(args):
    """``(world, mdp, T, note)`` for ``cai graph --world``: the world at its own horizon unless
    ``--steps`` asks for another (and the world allows one); ``note`` says what changed, if anything."""
    world, mdp = load_world(args.world, slip=args.slip)
    own = mdp.horizon
    note = None
    if own is None:
        T = args.steps or 3
        world, mdp = load_world(args.world, horizon=T, slip=args.slip)
        note = f"{world} is stationary; drawing and solving it at horizon T = {T}"
    elif args.steps is None or args.steps == own:
        T = own
    elif WORLDS[world].fixed_horizon if world in WORLDS else False:
        T = own
        note = f"{world} has a fixed horizon of {own}; drawing T = {own}, not {args.steps}"
    else:
        T = args.steps
        world, mdp = load_world(args.world, horizon=T, slip=args.slip)
        note = (f"solving {world} at horizon T = {T} (its own is {own}), so the values differ from "
                f"`cai solve {world}`; leave out --steps to use {own}")
    return world, mdp, T, note


def _cmd_graph(args) -> int:
    _use_agg()
    import matplotlib.pyplot as plt

    from cai.viz.graph import draw_unrolled, message_annotations, message_caption

    annotations, caption = None, None
    T = args.steps or 3
    if args.all_steps and not args.world and T > MAX_ALL_STEPS:
        raise _too_wide(T, args.dpi)
    title = f"control as inference, T = {T}"
    if args.world:
        import cai

        world, mdp, T, note = _graph_world(args)
        if args.all_steps and T > MAX_ALL_STEPS:
            raise _too_wide(T, args.dpi)
        if note and not args.quiet:
            print(f"cai graph: note: {note}", file=sys.stderr)
        sol = cai.backward_messages(mdp, alpha=args.alpha)
        annotations = message_annotations(sol, marginals=cai.forward_messages(mdp, sol))
        caption = message_caption(sol, marginals=True)
        title = f"control as inference, T = {T}: exact messages of {world} at its start state"
    out = Path(args.out)
    _out_dir(out.parent)
    ax = draw_unrolled(T, annotations=annotations, action_edges=args.action_edges, title=title, caption=caption,
                       max_steps=None if args.all_steps else 6)
    try:
        ax.figure.savefig(out, dpi=args.dpi, bbox_inches="tight")
    except OSError as exc:
        raise UsageError(f"--out: cannot write {str(out)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:                     # e.g. an unknown image format
        raise UsageError(f"--out: cannot write {str(out)!r}: {exc}") from None
    finally:
        plt.close(ax.figure)
    if not args.quiet:
        print(f"wrote {out}")
    return 0


#: the most decisions ``cai graph --all-steps`` draws in full (2 inches each: ~16,000 pixels at 130 dpi)
MAX_ALL_STEPS = 60


def _too_wide(T: int, dpi: int) -> UsageError:
    px = int((2.0 * T + 2.0) * dpi)
    return UsageError(f"--all-steps: drawing all {T} steps would make an image about {px:,} pixels wide; "
                      f"--all-steps draws at most {MAX_ALL_STEPS} steps (leave it out to draw the first and last "
                      f"steps with an ellipsis)")


def _use_agg():
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")


def _cmd_demo(args) -> int:
    _use_agg()
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    import cai
    from cai import viz
    from cai.report.table import Measure, inference_table, lava_probability
    from cai.viz.graph import draw_unrolled, message_annotations, message_caption

    t_start = time.perf_counter()
    out = _out_dir(Path(args.out))
    name, mdp = load_world(args.world, horizon=DEFAULT if args.horizon is None else args.horizon, slip=args.slip)
    if mdp.horizon is None:
        raise UsageError(f"world {name!r}: cai demo needs a finite horizon, got horizon=None")
    alpha = args.alpha
    grid = "shape" in mdp.metadata and "coords" in mdp.metadata
    slip = mdp.metadata.get("slip")
    about = f"slip {slip:g}, " if slip is not None else ""
    table = inference_table(mdp, alpha, "counting", title=f"cai demo: world {name!r}, {about}{mdp!r}")
    exact, soft, hard = (cai.backward_messages(mdp, alpha), cai.soft_value_iteration(mdp, alpha),
                         cai.value_iteration(mdp))
    t0 = time.perf_counter()
    post = cai.forward_messages(mdp, exact)
    forward_ms = 1000 * (time.perf_counter() - t0)
    written, skipped = [], []
    ext = args.format

    def save(fig, stem):
        path = out / f"{stem}.{ext}"
        try:
            viz.save_figure(fig, path, format=ext, dpi=args.dpi)
        except OSError as exc:
            raise UsageError(f"--out: cannot write {str(path)!r}: {exc.strerror or exc}") from None
        finally:
            plt.close(fig)
        written.append(path)

    T = mdp.horizon
    with viz.style(args.style):
        ax = draw_unrolled(T, annotations=message_annotations(exact, marginals=post),
                           caption=message_caption(exact, marginals=True),
                           title=f"the graphical model (T = {T}), exact messages at the start state")
        save(ax.figure, "graphical_model")

        axes = viz.compare_solutions(mdp, exact, soft, title=f"V_0: exact inference vs soft VI ({about}alpha {alpha:g})")
        save(axes[0].figure, "values_exact_vs_soft")

        if grid:
            rows, cols = (int(x) for x in mdp.metadata["shape"])
            w, h = 5.0, 5.0 * rows / cols + 1.2
            fig, axes = plt.subplots(1, 3, figsize=viz.figure_size(3 * w + 1.5, h))
            kw = {"background": "entropy"}
        else:
            fig, axes = plt.subplots(3, 1, figsize=viz.figure_size(max(6.0, 0.45 * min(mdp.n_states, 30) * mdp.n_actions / 2), 11))
            fig.subplots_adjust(hspace=0.9)
            kw = {}
        viz.policy_arrows(mdp, exact, ax=axes[0], title="exact inference: p(a_0 | s_0, O)", **kw)
        viz.policy_arrows(mdp, soft, ax=axes[1], title=f"soft VI policy (alpha {alpha:g}), t = 0", **kw)
        viz.policy_arrows(mdp, hard, ax=axes[2], title="hard VI (greedy), t = 0", **kw)
        save(fig, "policies")

        ax = viz.soft_q_heatmap(mdp, soft, title="soft Q_0 (soft VI)")
        save(ax.figure, "soft_q")

        axes = viz.state_marginals(mdp, post, title="posterior state marginals p(s_t | O)")
        save(axes[0].figure, "posterior_marginals")
        if not args.no_gif:
            try:
                viz.marginals_animation(mdp, post, out / "posterior_marginals.gif", dpi=args.dpi)
                written.append(out / "posterior_marginals.gif")
            except ImportError:
                skipped.append("posterior_marginals.gif (needs pillow)")

        if grid:
            g = torch.Generator().manual_seed(args.seed)
            axes = viz.trajectory_comparison(mdp, exact, soft, n=60, generator=g)
            save(axes[0].figure, "trajectories")
        else:
            skipped.append(f"trajectories.{ext} (world {name!r} has no grid to draw paths on)")

        ax = viz.temperature_sweep(mdp, np.logspace(-2, 1, 16), title="temperature sweep")
        save(ax.figure, "temperature_sweep")

    extra = []
    if mdp.metadata.get("lava"):
        for what, sol in (("exact inference's policy", exact), ("soft VI policy", soft), ("hard VI policy", hard)):
            extra.append(Measure(f"P(falls off the cliff), {what}",
                                 lava_probability(mdp, cai.policy_marginals(mdp, sol.policy).state),
                                 f"P(falls off the cliff), {what}: sum_(t<T) sum_(s in lava) p(s_t = s) running that "
                                 "policy in the real dynamics (lava leads to the exit, so one fall at most)"))
        extra.append(Measure("P(falls off the cliff), exact posterior", lava_probability(mdp, post.state),
                             "P(falls off the cliff), exact posterior: sum_(t<T) sum_(s in lava) p(s_t = s | O), the "
                             "posterior that controls its luck"))
    extra.append(Measure("forward messages (ms)", forward_ms,
                         "forward messages (ms): wall time of cai.forward_messages for the posterior marginals"))
    extra.append(Measure("total demo time (s)", time.perf_counter() - t_start,
                         "total demo time (s): wall time of the whole demo, figures included"))
    print(table.with_measures(*extra))
    print()
    print(f"figures in {out}/: " + ", ".join(p.name for p in written))
    if skipped:
        print("skipped: " + "; ".join(skipped))
    return 0


def _cmd_sweep(args) -> int:
    _use_agg()
    import matplotlib.pyplot as plt

    from cai.sweep import make_engine, sweep
    from cai.sweep.engines import RayEngine
    from cai.sweep.spec import load_spec
    from cai.sweep.studies import STUDIES
    from cai.viz.studies import study_figure

    try:
        spec = load_spec(args.spec)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    except ImportError as exc:
        raise UsageError(f"{exc}") from None
    engine_name = args.engine or spec["engine"]
    workers = args.workers or spec["workers"]
    if engine_name == "ray" and spec["address"]:
        engine = RayEngine(workers, address=spec["address"])
    else:
        try:
            engine = make_engine(engine_name, workers)
        except (TypeError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot create {str(out)!r}: {exc.strerror}") from None
    fn = STUDIES[spec["study"]][0]
    try:
        df = sweep(fn, spec["configs"], engine=engine, workers=workers, path=out / "results.jsonl",
                   progress=not args.quiet)
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    df.to_csv(out / "results.csv", index=False)
    ax = study_figure(spec["study"], df)
    ax.figure.savefig(out / "figure.png", dpi=110, bbox_inches="tight")
    plt.close(ax.figure)
    if not args.quiet:
        n_err = int(df["error"].notna().sum())
        print(f"cai sweep: {spec['study']}: {len(df)} configurations ({n_err} failed) on {engine.name} -> "
              f"{out / 'results.csv'}, {out / 'figure.png'}")
def _cmd_explore(args) -> int:
    """Serve the live explorer, or write it as one self-contained HTML page with ``--html``."""
    horizon = DEFAULT if args.horizon is None else args.horizon
    world, mdp = load_world(args.world, horizon=horizon, slip=args.slip)
    try:
        from cai.app.model import Controls, check_controls, check_layout, spec_from_mdp
        spec, own = spec_from_mdp(mdp, world)
        check_layout(spec.layout)
        controls = check_controls(Controls(alpha=args.alpha, slip=own.slip, horizon=own.horizon))
        if args.html:
            from cai.app.export import export_html

            out = export_html(spec, args.html, name=world, controls=controls)
            print(f"wrote {out} (open it in a browser; it works offline)")
            return 0
        from cai.app.view import serve
    except ImportError as exc:
        raise UsageError(f"cai explore needs Panel: pip install 'control-as-inference[app]' ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"world {world!r}: {exc}") from None
    print(f"cai explore: serving {world} at http://localhost:{args.port}/ (Ctrl-C stops it)", flush=True)
    serve(mdp, name=world, port=args.port, show=not args.no_browser, alpha=args.alpha)
    return 0


# ---------------------------------------------------------------------------------------------

def _parser() -> _Parser:
    p = _Parser(prog="cai", description="Control as inference: lecture demos and checks.")
    p.add_argument("--version", action="version", version=f"cai {__version__}",
                   help="print `cai <version>` and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def world_args(q, slip=True):
        q.add_argument("world", help="a world name (see `cai worlds`) or a layout file")
        q.add_argument("--alpha", type=_positive_float, default=1.0, help="temperature > 0 (default 1)")
        q.add_argument("--horizon", type=_horizon, default=None,
                       help="number of decisions, or 'none' for the stationary problem (default: the world's)")
        q.add_argument("--discount", type=_discount, default=None, help="discount in (0, 1]")
        q.add_argument("--slip", type=_probability, default=None, help="slip probability of grid worlds")
        q.add_argument("--action-prior", choices=("auto", "counting", "uniform"), default="auto",
                       help="action prior of the graphical model: counting (rho = 1, soft values include "
                            "alpha * entropy) or uniform over the allowed actions (soft values include "
                            "-alpha * KL); default auto: counting with a horizon, uniform for --horizon none, "
                            "where the counting prior's evidence is infinite on most worlds")

    d = sub.add_parser("demo", help="the lecture demo: a slippery grid world by exact inference and soft VI",
                       description="Solve a world (default: the slippery cliff walk) by exact inference, soft VI "
                                   "and hard VI, write the figures to --out and print a summary table.")
    d.add_argument("--world", default="demo",
                   help="any tabular world of `cai worlds` or a layout file (default demo: the cliff walk with "
                        "slip 0.1); worlds without a grid get bar charts, and figures that need a grid are skipped")
    d.add_argument("--out", default="cai-demo", help="output folder (default ./cai-demo/)")
    d.add_argument("--format", choices=("png", "svg", "pdf"), default="png",
                   help="figure format (default png; svg and pdf are vector graphics)")
    d.add_argument("--style", choices=("paper", "slides"), default="paper",
                   help="paper (default) or slides (large fonts, thick lines)")
    d.add_argument("--alpha", type=_positive_float, default=1.0, help="temperature > 0 (default 1)")
    d.add_argument("--slip", type=_probability, default=None, help="slip probability (default: the world's; demo 0.1)")
    d.add_argument("--horizon", type=_steps, default=None,
                   help="number of decisions (default: the world's; demo 30)")
    d.add_argument("--seed", type=int, default=0, help="seed of the trajectory samples")
    d.add_argument("--dpi", type=_steps, default=110, help="figure resolution")
    d.add_argument("--no-gif", action="store_true", help="skip the animated GIF of the marginals")
    d.set_defaults(fn=_cmd_demo)

    s = sub.add_parser("solve", help="solve a world and write values/policy (.npz or .json)",
                       description="Solve a world and write V, Q, policy (and log p(O) for exact) "
                                   "to an .npz or .json file.")
    world_args(s)
    from cai.methods import METHODS as DESCRIPTIONS

    s.add_argument("--method", type=_method, choices=METHODS, default="exact",
                   help="; ".join(f"{m}: {DESCRIPTIONS[m].split(':')[0]}" for m in METHODS)
                   + " (default exact; the old spelling soft-vi is accepted)")
    s.add_argument("--out", default=None, help="output file .npz or .json (default ./<world>-<method>.npz)")
    s.add_argument("--svi-steps", type=_steps, default=None, help="optimisation steps for --method svi")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    s.set_defaults(fn=_cmd_solve)

    c = sub.add_parser("compare", help="the inference-vs-DP table for a world",
                       description="Exact inference vs soft VI vs hard VI on one world: values, log "
                                   "evidence vs max ELBO, value gaps, policy distances, timings.")
    world_args(c)
    from cai.report.compare import METHODS as VARIATIONAL

    c.add_argument("--variational", nargs="+", choices=sorted(VARIATIONAL), default=None, metavar="METHOD",
                   help="also fit the policy by these variational methods (Pyro SVI, closed-form ascent) and "
                        f"print their ELBO gaps: {', '.join(sorted(VARIATIONAL))}")
    c.add_argument("--svi-steps", type=_steps, default=None, help="optimisation steps for --variational")
    c.set_defaults(fn=_cmd_compare)

    g = sub.add_parser("graph", help="draw the unrolled graphical model",
                       description="Draw the unrolled model s_t, a_t, O_t for T steps (optionally "
                                   "annotated with a world's exact messages).")
    g.add_argument("--steps", "-T", type=_steps, default=None,
                   help="number of decisions T (default 3, or with --world the world's own horizon; "
                        "a world with a fixed horizon, such as the lottery, keeps its own); more than 7 "
                        "are drawn as the first and last steps with an ellipsis between")
    g.add_argument("--world", default=None, help="annotate with this world's exact messages at its start state")
    g.add_argument("--all-steps", action="store_true", help="draw every step of a long horizon (no ellipsis)")
    g.add_argument("--alpha", type=_positive_float, default=1.0, help="temperature for --world")
    g.add_argument("--slip", type=_probability, default=None, help="slip probability for --world")
    g.add_argument("--action-edges", action="store_true", help="draw the action-prior edges s_t -> a_t")
    g.add_argument("--out", default="graphical_model.png", help="output image (default graphical_model.png)")
    g.add_argument("--dpi", type=_steps, default=130, help="figure resolution")
    g.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    g.set_defaults(fn=_cmd_graph)

    sw = sub.add_parser("sweep", help="run a study over a grid of configurations (YAML/TOML spec)",
                        description="Run a built-in study (optimism, garnet, irl) over the grid of a YAML or TOML "
                                    "spec; write results.jsonl (resumable), results.csv and figure.png to --out.")
    sw.add_argument("spec", help="the spec file (.yaml, .yml or .toml)")
    sw.add_argument("--out", default="cai-sweep", help="output folder (default ./cai-sweep/)")
    sw.add_argument("--engine", choices=["serial", "joblib", "ray"], default=None, help="overrides the spec's engine")
    sw.add_argument("--workers", type=_steps, default=None, help="overrides the spec's workers")
    sw.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    sw.set_defaults(fn=_cmd_sweep)
    e = sub.add_parser("explore", help="the live explorer in the browser (needs control-as-inference[app])",
                       description="Edit a grid world and move alpha, slip, horizon and time in the browser; "
                                   "exact inference, soft VI and hard VI re-solve and redraw side by side.")
    e.add_argument("world", nargs="?", default="demo", help="a grid world name or a layout file (default demo)")
    e.add_argument("--port", type=_port, default=5006, help="port on localhost (default 5006)")
    e.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    e.add_argument("--html", default=None, metavar="FILE",
                   help="write one self-contained page (solutions precomputed over alphas and slips) and exit")
    e.add_argument("--alpha", type=_positive_float, default=1.0, help="initial temperature (default 1)")
    e.add_argument("--slip", type=_probability, default=None, help="slip probability (default: the world's)")
    e.add_argument("--horizon", type=_steps, default=None, help="number of decisions (default: the world's)")
    e.set_defaults(fn=_cmd_explore)

    w = sub.add_parser("worlds", help="list the named worlds", description="List the named worlds.")
    w.set_defaults(fn=_cmd_worlds)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``cai`` command; return the exit status (0 success, 2 usage or input error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        for key, value in vars(args).items():     # argparse turns "--alpha=--" into an empty list
            if isinstance(value, list) and key != "variational":
                raise UsageError(f"--{key.replace('_', '-')}: expected one value, got none")
        return int(args.fn(args) or 0)
    except UsageError as exc:
        print(str(exc) if str(exc).startswith("cai") else f"cai: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:                         # a file the command could not read or write
        print(f"cai: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
