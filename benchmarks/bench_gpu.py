"""Solvers on a CUDA device through torch (issue 14, item 6): a 250k-state grid, B in {1, 16, 256}.

For each dtype (float32, float64) and batch size ``B`` (a batch of ``B`` temperatures, one reward
table), it times on the device, after a warm-up and with ``torch.cuda.synchronize``:

* finite-horizon soft value iteration, ``keep="values"`` (the general torch route: the fused
  NumPy step declines off the CPU),
* finite-horizon exact inference (backward messages), ``keep="values"``,
* finite-horizon hard value iteration (``B = 1``; one reward table),
* stationary soft value iteration to ``tol`` (gamma 0.95),

and checks the ``B = 1`` float64 answers against the CPU's (to 1e-9 relative; float32 to 1e-3).
Without a CUDA device it prints a clear skip and exits 0. ``--smoke`` runs the same code on the
CPU with a 10 x 10 grid (the test suite), comparing the general route against the fused CPU route.

Usage::

    python benchmarks/bench_gpu.py                   # 500 x 500 grid, horizon 100, B in {1, 16, 256}
    python benchmarks/bench_gpu.py --smoke           # CPU, tiny grid
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import torch  # noqa: E402

import cai  # noqa: E402
from cai.mdp.tabular import uniform_action_prior  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402


def grid(n: int, horizon, device, dtype):
    layout = "\n".join(["S" + "." * (n - 1)] + ["." * n] * (n - 2) + ["." * (n - 1) + "G"])
    kw = dict(horizon=horizon) if horizon is not None else dict(horizon=None, discount=0.95)
    return gridworld(layout, slip=0.1, sparse=True, **kw).to(device=device, dtype=dtype)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats):
    fn()                                                   # warm-up (kernels, allocator)
    _sync(device)
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out


def solvers(mdp, alphas, B):
    out = {
        "soft_vi": lambda: cai.soft_value_iteration(mdp, alphas, keep="values").V[..., 0, :],
        "exact": lambda: cai.backward_messages(mdp, alphas, uniform_action_prior(mdp), keep="values").V[..., 0, :],
    }
    if B == 1:
        out["vi"] = lambda: cai.value_iteration(mdp, keep="values").V[0]
    return out


def run(n, horizon, batches, dtypes, device, repeats, reference_device):
    rows = []
    for dtype in dtypes:
        for B in batches:
            mdp = grid(n, horizon, device, dtype)
            alphas = torch.linspace(0.5, 2.0, B, dtype=dtype, device=device) if B > 1 else torch.tensor(1.0, dtype=dtype,
                                                                                                      device=device)
            for name, fn in solvers(mdp, alphas, B).items():
                t, v = timed(fn, device, repeats)
                rows.append((name, str(dtype).replace("torch.", ""), B, mdp.n_states, t))
                print(f"| {name:8} | {str(dtype).replace('torch.', ''):7} | B={B:>3} | S={mdp.n_states:>7} | T={horizon} | "
                      f"{1e3 * t:10.2f} ms | {1e6 * t / horizon / B:9.2f} us per step and batch member |", flush=True)
                if B == 1 and reference_device is not None:
                    ref_mdp = grid(n, horizon, reference_device, torch.float64)
                    ref = solvers(ref_mdp, torch.tensor(1.0, dtype=torch.float64), 1)[name]()
                    err = float((v.double().to(reference_device) - ref).abs().max()) / max(1.0, float(ref.abs().max()))
                    tol = 1e-9 if dtype == torch.float64 else 1e-3
                    status = "agrees" if err <= tol else "DISAGREES"
                    print(f"|   {name} on {device} vs {reference_device} float64: relative error {err:.2e} ({status}, tol {tol:g})")
                    assert err <= tol, (name, dtype, err)
        stat = grid(n, None, device, dtype)
        t, sol = timed(lambda stat=stat: cai.soft_value_iteration(stat, 1.0, keep="values", tol=1e-6), device, repeats)
        print(f"| stationary soft VI | {str(dtype).replace('torch.', ''):7} | B=  1 | S={stat.n_states:>7} | gamma 0.95 | "
              f"{1e3 * t:10.2f} ms | {sol.iterations} iterations, error bound {sol.error_bound:.1e} |", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, a 10 x 10 grid: the general route against the fused one")
    ap.add_argument("--n", type=int, default=500, help="grid side (500: 250k states)")
    ap.add_argument("--horizon", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.smoke:
        torch.set_num_threads(1)          # (tiny tensors: thread pools only spin)
        # the device-generic route on the CPU: the fused NumPy step is switched off, as off the CPU
        from cai.ops.values_step import SoftValueStep
        ref = {k: f() for k, f in solvers(grid(10, 8, torch.device("cpu"), torch.float64), torch.tensor(1.0, dtype=torch.float64), 1).items()}
        SoftValueStep.for_solver = classmethod(lambda cls, *a, **k: None)
        got = {k: f() for k, f in solvers(grid(10, 8, torch.device("cpu"), torch.float64), torch.tensor(1.0, dtype=torch.float64), 1).items()}
        for k in ref:
            err = float((got[k] - ref[k]).abs().max())
            assert err < 1e-10, (k, err)
        print("smoke: general route agrees with the fused CPU route within 1e-10")
        run(10, 8, [1, 4], [torch.float32, torch.float64], torch.device("cpu"), 1, None)
        return 0
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device (torch.cuda.is_available() is False); run this on a GPU machine. "
              "`--smoke` runs the same code on the CPU with a tiny grid.")
        return 0
    dev = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    run(args.n, args.horizon, [1, 16, 256], [torch.float32, torch.float64], dev, args.repeats, torch.device("cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
