"""The ``cai`` command: lecture demos, solving named worlds, inference-vs-DP tables, the model's graph.

::

    cai demo     [--out DIR] [--alpha A] [--slip P] [--horizon T] [--no-gif]
    cai solve    WORLD [--method exact|soft-vi|vi|svi] [--alpha A] [--horizon T] [--discount G] [--out FILE]
    cai compare  WORLD [--alpha A] [--horizon T] [--discount G]
    cai graph    [--steps T] [--world WORLD] [--all-steps] [--out FILE]
    cai worlds

``WORLD`` is a name from ``cai worlds`` or the path of a text layout file (``#`` wall, ``S``
start, ``G`` goal, ``L`` lava, ``.`` free). Errors in arguments or layout files print one line on
stderr and exit with status 2. ``python -m cai`` runs the same command.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

__all__ = ["main", "load_world"]

from cai.worlds.registry import DEFAULT, WORLDS


class UsageError(Exception):
    """A problem with the command line or its inputs: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump, no traceback
        raise UsageError(f"{self.prog}: error: {message}")


# ---------------------------------------------------------------------------------------------
# worlds (the registry is cai.worlds.registry; this turns its errors into one-line usage errors)

def load_world(spec: str, *, horizon=DEFAULT, discount=None, slip=None):
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
            raise UsageError(f"world {key!r} is a continuous environment for the deep learners, not a tabular MDP")
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

METHODS = ("exact", "soft-vi", "vi", "svi")


def _solve(mdp, method: str, alpha: float, *, quiet: bool = True, svi_steps: Optional[int] = None):
    """Run one method; return ``(Solution, seconds)``."""
    import cai

    t0 = time.perf_counter()
    if method == "exact":
        sol = cai.backward_messages(mdp, alpha=alpha)
    elif method == "soft-vi":
        sol = cai.soft_value_iteration(mdp, alpha=alpha)
    elif method == "vi":
        sol = cai.value_iteration(mdp)
    elif method == "svi":
        try:
            from cai.ppl.svi import fit_policy_svi
        except ImportError:
            raise UsageError("method 'svi' needs cai.ppl.svi.fit_policy_svi (Pyro SVI), which this "
                             "installation of cai does not have; use --method soft-vi for the same optimum") from None
        kw = {} if svi_steps is None else {"steps": svi_steps}
        fit = fit_policy_svi(mdp, alpha=alpha, progress=not quiet, **kw)
        sol = cai.soft_policy_evaluation(mdp, fit.policy, alpha=alpha)
    else:  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"unknown method {method!r}")
    _ = sol.policy                                            # include materialisation in the time
    return sol, time.perf_counter() - t0


def _timed_solve(mdp, method: str, alpha: float, repeats: int = 3):
    """``_solve`` repeated; the time reported is the best of ``repeats`` (the first run pays
    one-off costs such as torch's lazy initialisation)."""
    best, sol = math.inf, None
    for _ in range(repeats):
        sol, secs = _solve(mdp, method, alpha)
        best = min(best, secs)
        if secs > 2.0:                                        # slow enough: one run says it
            break
    return sol, best


def _tv(p, q, weights=None) -> float:
    """Mean (or ``weights``-weighted) total-variation distance between policies ``(..., S, A)``."""
    tv = 0.5 * (p - q).abs().sum(-1)
    if weights is None:
        return float(tv.mean())
    return float((weights * tv).sum() / weights.sum())


def _write_solution(path: Path, mdp, sol, method: str, alpha: float, world: str) -> None:
    import numpy as np

    d = {
        "world": world,
        "method": method,
        "alpha": float(alpha) if method != "vi" else 0.0,
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


def _table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _fmt(x, digits=4) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}g}"


def _comparison(mdp, alpha: float):
    """Solve with exact inference, soft VI and hard VI; return (solutions, times, rows, notes)."""
    import cai

    sols, times = {}, {}
    errors = {}
    for m in ("exact", "soft-vi", "vi"):
        try:
            sols[m], times[m] = _timed_solve(mdp, m, alpha)
        except cai.DivergenceError as exc:
            errors[m] = str(exc).split(":")[0] + ": diverges"
    rows = []
    labels = {"exact": "exact inference", "soft-vi": "soft VI (variational)", "vi": "hard VI"}
    for m in ("exact", "soft-vi", "vi"):
        if m not in sols:
            rows.append([labels[m], "diverges", "-", "-", "-"])
            continue
        s = sols[m]
        evidence = float(s.log_evidence) if m == "exact" else (float(s.max_elbo) if m == "soft-vi" else None)
        rows.append([labels[m], _fmt(float(s.value)), _fmt(evidence),
                     _fmt(float(s.alpha) if m != "vi" else 0.0), f"{times[m] * 1000:.1f}"])
    notes = []
    if "exact" in sols and "soft-vi" in sols:
        e, v = sols["exact"], sols["soft-vi"]
        notes.append(("log evidence - max ELBO (>= 0)", float(e.log_evidence - v.max_elbo)))
        notes.append(("value gap max_s |V_exact - V_soft| at t=0", float((e.V0 - v.V0).abs().max())))
        w = None
        if mdp.horizon is not None:
            w = cai.forward_messages(mdp, e).state[:-1].unsqueeze(-1)    # posterior-weighted
            w = w.expand(*e.policy.shape[:-1], 1).squeeze(-1)
        notes.append(("policy distance exact vs soft (mean TV, posterior-weighted)", _tv(e.policy, v.policy, w)))
    if "soft-vi" in sols and "vi" in sols:
        notes.append(("policy distance soft vs hard (mean TV)", _tv(sols["soft-vi"].policy, sols["vi"].policy)))
        notes.append(("soft - hard value at t=0 (max over s)", float((sols["soft-vi"].V0 - sols["vi"].V0).abs().max())))
    return sols, times, rows, notes


def _print_comparison(mdp, world, alpha, rows, notes, out=None):
    out = out or sys.stdout
    desc = f"{world}: {mdp!r}, alpha={alpha:g}"
    print(desc, file=out)
    print(_table(rows, ["method", "value sum p0 V0", "log p(O) / max ELBO", "alpha", "time (ms)"]), file=out)
    print("", file=out)
    print(_table([[k, _fmt(v)] for k, v in notes], ["measure", "value"]), file=out)


# ---------------------------------------------------------------------------------------------
# subcommands

def _cmd_worlds(args) -> int:
    width = max(len(k) for k in WORLDS)
    for name, w in WORLDS.items():
        print(f"{name.ljust(width)}  {w.description}")
    print(f"{'<file>'.ljust(width)}  a text layout: # wall, S start, G goal, L lava, . free")
    return 0


def _cmd_solve(args) -> int:
    world, mdp = load_world(args.world, horizon=_world_horizon(args.horizon), discount=args.discount, slip=args.slip)
    import cai

    try:
        sol, secs = _solve(mdp, args.method, args.alpha, quiet=args.quiet, svi_steps=args.svi_steps)
    except cai.DivergenceError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out) if args.out else Path(f"{world}-{args.method}.npz")
    if out.suffix.lower() not in (".npz", ".json"):
        raise UsageError(f"--out: expected a file ending in .npz or .json, got {str(out)!r}")
    _out_dir(out.parent)
    try:
        _write_solution(out, mdp, sol, args.method, args.alpha, world)
    except OSError as exc:
        raise UsageError(f"--out: cannot write {str(out)!r}: {exc.strerror or exc}") from None
    if not args.quiet:
        extra = f", log p(O) = {float(sol.log_evidence):.6g}" if sol.log_evidence is not None else ""
        print(f"{world} ({mdp!r}) by {args.method}: value = {float(sol.value):.6g}{extra}, "
              f"{secs * 1000:.1f} ms -> {out}")
    return 0


def _cmd_compare(args) -> int:
    world, mdp = load_world(args.world, horizon=_world_horizon(args.horizon), discount=args.discount, slip=args.slip)
    _, _, rows, notes = _comparison(mdp, args.alpha)
    _print_comparison(mdp, world, args.alpha, rows, notes)
    if args.variational:
        from cai.report.compare import compare_inference

        if mdp.horizon is None:
            raise UsageError("--variational: the variational fits need a finite horizon, got --horizon none")
        kw = {} if args.svi_steps is None else {"steps": args.svi_steps}
        print()
        print(compare_inference(mdp, args.alpha, methods=tuple(args.variational), **kw))
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
    from cai.viz.graph import draw_unrolled, message_annotations, message_caption

    t_start = time.perf_counter()
    out = _out_dir(Path(args.out))
    mdp = load_world("demo", horizon=args.horizon, slip=args.slip)[1]
    alpha = args.alpha
    sols, times, rows, notes = _comparison(mdp, alpha)
    exact, soft, hard = sols["exact"], sols["soft-vi"], sols["vi"]
    t0 = time.perf_counter()
    post = cai.forward_messages(mdp, exact)
    times["forward"] = time.perf_counter() - t0
    written = []

    def save(fig, name):
        path = out / name
        try:
            fig.savefig(path, dpi=args.dpi, bbox_inches="tight")
        except OSError as exc:
            raise UsageError(f"--out: cannot write {str(path)!r}: {exc.strerror or exc}") from None
        finally:
            plt.close(fig)
        written.append(path)

    T = mdp.horizon
    ax = draw_unrolled(T, annotations=message_annotations(exact, marginals=post),
                       caption=message_caption(exact, marginals=True),
                       title=f"the graphical model (T = {T}), exact messages at the start state")
    save(ax.figure, "graphical_model.png")

    axes = viz.compare_solutions(mdp, exact, soft, title=f"V_0: exact inference vs soft VI (slip {args.slip:g}, alpha {alpha:g})")
    save(axes[0].figure, "values_exact_vs_soft.png")

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    viz.policy_arrows(mdp, exact, ax=axes[0], title="exact inference: p(a_0 | s_0, O)")
    viz.policy_arrows(mdp, soft, ax=axes[1], title="soft VI policy")
    viz.policy_arrows(mdp, hard, ax=axes[2], title="hard VI (greedy)")
    save(fig, "policies.png")

    ax = viz.soft_q_heatmap(mdp, soft, title="soft Q_0 (soft VI)")
    save(ax.figure, "soft_q.png")

    axes = viz.state_marginals(mdp, post, title="posterior state marginals p(s_t | O)")
    save(axes[0].figure, "posterior_marginals.png")
    if not args.no_gif:
        try:
            viz.marginals_animation(mdp, post, out / "posterior_marginals.gif")
            written.append(out / "posterior_marginals.gif")
        except ImportError:
            pass

    g = torch.Generator().manual_seed(args.seed)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    viz.trajectories_on_grid(mdp, cai.sample_posterior(mdp, exact, 60, generator=g), ax=axes[0],
                                  title="exact posterior samples (it controls its luck)")
    viz.trajectories_on_grid(mdp, cai.sample_trajectories(mdp, soft.policy, 60, generator=g), ax=axes[1],
                                  color="#1b9e77", title="soft VI policy in the real dynamics")
    save(fig, "trajectories.png")

    ax = viz.temperature_sweep(mdp, np.logspace(-2, 1, 16), title="temperature sweep")
    save(ax.figure, "temperature_sweep.png")

    lava = mdp.metadata["lava"]
    for name, sol in (("exact inference's policy", exact), ("soft VI policy", soft), ("hard VI policy", hard)):
        occ = cai.policy_marginals(mdp, sol.policy).state[:-1].sum(0)
        notes.append((f"P(falls off the cliff) running the {name} in the real dynamics", float(occ[lava].sum())))
    notes.append(("P(falls off the cliff) under the exact posterior (it controls its luck)",
                  float(post.state[:-1].sum(0)[lava].sum())))
    print(f"cai demo: the cliff walk with slip {args.slip:g}, {mdp!r}, alpha={alpha:g}")
    print(_table(rows, ["method", "value sum p0 V0", "log p(O) / max ELBO", "alpha", "time (ms)"]))
    print()
    summary = [[k_, _fmt(v)] for k_, v in notes]
    summary.append(["forward messages (ms)", f"{times['forward'] * 1000:.1f}"])
    summary.append(["total demo time (s)", f"{time.perf_counter() - t_start:.2f}"])
    print(_table(summary, ["measure", "value"]))
    print()
    print(f"figures in {out}/: " + ", ".join(p.name for p in written))
    return 0


# ---------------------------------------------------------------------------------------------

def _parser() -> _Parser:
    p = _Parser(prog="cai", description="Control as inference: lecture demos and checks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def world_args(q, slip=True):
        q.add_argument("world", help="a world name (see `cai worlds`) or a layout file")
        q.add_argument("--alpha", type=_positive_float, default=1.0, help="temperature > 0 (default 1)")
        q.add_argument("--horizon", type=_horizon, default=None,
                       help="number of decisions, or 'none' for the stationary problem (default: the world's)")
        q.add_argument("--discount", type=_discount, default=None, help="discount in (0, 1]")
        q.add_argument("--slip", type=_probability, default=None, help="slip probability of grid worlds")

    d = sub.add_parser("demo", help="the lecture demo: a slippery grid world by exact inference and soft VI",
                       description="Solve a slippery cliff walk by exact inference, soft VI and hard VI, "
                                   "write the figures to --out and print a summary table.")
    d.add_argument("--out", default="cai-demo", help="output folder (default ./cai-demo/)")
    d.add_argument("--alpha", type=_positive_float, default=1.0, help="temperature > 0 (default 1)")
    d.add_argument("--slip", type=_probability, default=0.1, help="slip probability (default 0.1)")
    d.add_argument("--horizon", type=_steps, default=30, help="number of decisions (default 30)")
    d.add_argument("--seed", type=int, default=0, help="seed of the trajectory samples")
    d.add_argument("--dpi", type=_steps, default=110, help="figure resolution")
    d.add_argument("--no-gif", action="store_true", help="skip the animated GIF of the marginals")
    d.set_defaults(fn=_cmd_demo)

    s = sub.add_parser("solve", help="solve a world and write values/policy (.npz or .json)",
                       description="Solve a world and write V, Q, policy (and log p(O) for exact) "
                                   "to an .npz or .json file.")
    world_args(s)
    s.add_argument("--method", choices=METHODS, default="exact",
                   help="exact inference, soft VI, hard VI, or Pyro SVI (default exact)")
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
