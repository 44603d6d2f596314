"""The core's speed before and after a change, measured side by side in one run.

Checks out ``--base`` (a git revision) into a temporary worktree and runs
``benchmarks/bench_backup.py`` alternately from that tree and from this one (same arguments, same
machine, ``--rounds`` times each, interleaved so that load drifts hit both alike). Each run reports,
per world and mode, the median time of one backup of cai and of the plain NumPy/SciPy reference;
this script compares cai's time *normalised by the NumPy reference of the same run*
(``cai / NumPy``), so that a busier moment of the machine does not count as a slowdown.

    python benchmarks/bench_before_after.py --base 2a0b802                  # the recorded run
    python benchmarks/bench_before_after.py --base HEAD --rounds 1 --quick  # smoke

Prints one row per world and mode with the median over rounds of ``after / before`` of the
normalised time; the goal is every ratio within 5% (``<= 1.05``).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parents[1]


def _run(tree: pathlib.Path, bench_args, out: pathlib.Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, str(tree / "benchmarks" / "bench_backup.py"), *bench_args, "--markdown", str(out)],
                   cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = {}
    for line in out.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 7 and cells[0] in ("dense", "grid") and re.fullmatch(r"[\d.]+", cells[5] or "x"):
            mode = {"expected": "expectation", "exact": "log_expectation"}.get(cells[3], cells[3])
            rows[(cells[0], int(cells[1]), mode)] = float(cells[6])       # cai / NumPy of that run
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the git revision to compare against")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke-sized backups")
    p.add_argument("--sizes", nargs="*", type=int, default=[500, 1000, 2000])
    p.add_argument("--grid", type=int, default=300)
    args = p.parse_args(argv)
    bench_args = ["--threads", "1"] + (["--quick"] if args.quick else
                                       ["--sizes", *map(str, args.sizes), "--grid", str(args.grid),
                                        "--repeats", "21", "--solve-repeats", "1", "--bandwidth-mb", "64"])
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=HERE, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ratios = {}
            for r in range(args.rounds):
                before = _run(base, bench_args, pathlib.Path(tmp) / f"b{r}.md")
                after = _run(HERE, bench_args, pathlib.Path(tmp) / f"a{r}.md")
                for k in before.keys() & after.keys():
                    ratios.setdefault(k, []).append(after[k] / before[k])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=HERE, check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"# the core before ({args.base}) and after (this tree): {args.rounds} interleaved rounds, "
          f"load {os.getloadavg()[0]:.2f}\n")
    print("| world | S | mode | after / before of cai/NumPy (median) | per round |")
    print("|---|---:|---|---:|---|")
    worst = 0.0
    for k in sorted(ratios):
        m = statistics.median(ratios[k])
        worst = max(worst, m)
        print(f"| {k[0]} | {k[1]} | {k[2]} | {m:.3f} | {', '.join(f'{x:.2f}' for x in ratios[k])} |")
    print(f"\nworst median ratio {worst:.3f}: {'within' if worst <= 1.05 else 'NOT within'} 5%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
