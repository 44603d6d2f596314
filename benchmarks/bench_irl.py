"""MaxEnt IRL against MCE IRL as the ``imitation`` library runs it (issue 14, item 3).

``imitation`` (1.0.1) could not be installed in the project's environment: it pins
``gymnasium~=0.29`` and ``stable-baselines3~=2.2``, which would downgrade the environment's
gymnasium 1.x. The baseline is therefore a plain NumPy transcription of its algorithm (Ziebart
2010's maximum causal entropy IRL as ``imitation.algorithms.mce_irl`` implements it): a dense
``(S, A, S)`` transition array; per iteration a soft backward pass storing ``Q`` and ``V`` for every
step (``mce_partition_fh``), ``pi = exp(Q - V)``, a forward occupancy pass with a loop over actions
(``mce_occupancy_measures``), then a gradient step of ``torch.optim.Adam`` on the reward
parameters, stopping when ``max |occupancy_demo - occupancy_model| <= eps``. With ``--imitation`` the script also runs the real
library (``imitation.algorithms.mce_irl.MCEIRL`` on a ``seals`` ``TabularModelPOMDP`` built from the
same dense transitions, one-hot observations, a linear state reward net, the same Adam and
``linf_eps``), which needs an environment of its own: ``bash benchmarks/make_imitation_env.sh``
makes one (``.venv-imitation``, with gymnasium 0.29 and stable-baselines3 2.2 as imitation pins
them) and the script is then run with that environment's Python. imitation counts ``H + 1``
states per trajectory (the state after the last action included, though its backup gives that
state no reward), cai ``H``; each library is given the same trajectories and stops by its own
occupancy gap.

Both learners fit the same tabular state reward (one indicator per state, imitation's default
one-hot observations) from the same demonstrations with the same Adam (lr 0.1, start 0), and
both stop on the same quantity (``cai``'s ``gap`` with identity features and ``alpha = 1`` is the
largest state-occupancy difference), so they take the same iterations and their weights agree
to rounding (amplified by Adam's normalised steps over hundreds of iterations); the script
reports both and the wall-clock ratio. A third column runs ``cai`` with ``optimizer="lbfgs"``
(L-BFGS-B on the same concave objective, same stopping rule): the same tolerance in far fewer
solves. The last column is the occupancy gap of both answers, recomputed through ``cai``'s
general route.

Usage::

    python benchmarks/bench_irl.py                # 12x12 .. 32x32, one run each
    python benchmarks/bench_irl.py --smoke        # a 4x4 grid, a few iterations (the test suite)

Single-threaded (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1`` set before NumPy loads):
on a loaded 2-core machine torch's and BLAS's thread pools spin against other processes and a
sparse mat-vec of a 16x16 grid takes milliseconds instead of microseconds.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import cai  # noqa: E402
from cai.algorithms.tabular.irl import MaxEntIRL, empirical_visitation, validate_demonstrations  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402


def problem(n: int, n_demos: int = 50, seed: int = 0):
    """An ``n x n`` open grid started in a corner, horizon ``2n``, a random state reward, demonstrations
    of its soft-optimal policy.

    (One start cell: with a spread-out start distribution the demonstrations' own starts differ from
    it and the state-occupancy gap at ``t = 0`` cannot close, for either learner.)"""
    layout = "\n".join(["S" + "." * (n - 1)] + ["." * n] * (n - 1))
    mdp = gridworld(layout, horizon=2 * n, step_cost=0.0, sparse=n >= 8)
    g = torch.Generator().manual_seed(seed)
    r_true = torch.randn(mdp.n_states, generator=g, dtype=torch.float64)
    true = mdp.replace(rewards=r_true.unsqueeze(1).expand(-1, mdp.n_actions).clone())
    demos = cai.sample_trajectories(true, cai.soft_value_iteration(true, 1.0).policy, n_demos,
                                    generator=torch.Generator().manual_seed(seed + 1))
    return mdp, demos


def mce_irl_numpy(mdp, demos, *, lr: float = 0.1, eps: float = 1e-3, max_iter: int = 2000):
    """MCE IRL as imitation runs it, on NumPy arrays (see the module docstring). Returns ``(theta, iterations)``."""
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    P = mdp.transitions.to_dense().numpy() if mdp.is_sparse else mdp.transitions.numpy()
    if mdp.is_sparse:
        P = P.reshape(S, A, S)
    allowed = mdp.allowed.numpy()
    p0 = mdp.initial.numpy()
    d = validate_demonstrations(demos, mdp)
    demo_om = empirical_visitation(d, mdp).sum(1).numpy()        # (S,) state visitation counts over T steps
    theta = torch.zeros(S, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    it = 0
    for it in range(max_iter + 1):   # noqa: B007 - (as cai: max_iter steps, max_iter + 1 solves)
        opt.zero_grad()
        R = theta.detach().numpy()
        # mce_partition_fh: every step's Q and V
        Q = np.zeros((T, S, A))
        V = np.zeros((T + 1, S))
        for t in reversed(range(T)):
            Q[t] = np.where(allowed, R[:, None] + P @ V[t + 1], -np.inf)
            m = Q[t].max(1)
            V[t] = m + np.log(np.exp(Q[t] - m[:, None]).sum(1))
        pi = np.exp(Q - V[:T, :, None])
        # mce_occupancy_measures: a loop over actions
        D = np.zeros((T + 1, S))
        D[0] = p0
        for t in range(T):
            for a in range(A):
                E = D[t] * pi[t, :, a]
                D[t + 1] += E @ P[:, a, :]
        om = D[:T].sum(0)
        delta = demo_om - om
        if np.abs(delta).max() <= eps or it == max_iter:
            break
        theta.grad = torch.from_numpy(-delta)                     # ascent on the log-likelihood
        opt.step()
    return theta.detach().numpy(), it


def cai_irl(mdp, demos, *, lr: float = 0.1, eps: float = 1e-3, max_iter: int = 2000, optimizer: str = "adam"):
    irl = MaxEntIRL(mdp, None, alpha=1.0, lr=lr, n_iter=max_iter, tol=eps, optimizer=optimizer)
    irl.fit(demos)
    return irl.weights_.numpy(), irl.n_iter_, len(irl.history_), irl.history_[-1].gap, irl.policy_


def imitation_irl(mdp, demos, *, lr: float = 0.1, eps: float = 1e-3, max_iter: int = 2000):
    """The real ``imitation`` MCE IRL on the same problem. Returns ``(iterations, final gap, reached)``."""
    import logging

    from imitation.algorithms.mce_irl import MCEIRL
    from imitation.rewards.reward_nets import BasicRewardNet
    from seals.base_envs import TabularModelPOMDP

    logging.disable(logging.WARNING)
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    P = mdp.transitions.to_dense().numpy() if mdp.is_sparse else mdp.transitions.numpy()
    env = TabularModelPOMDP(transition_matrix=P.reshape(S, A, S), observation_matrix=np.eye(S, dtype=np.float32),
                            reward_matrix=np.zeros(S), horizon=H, initial_state_dist=mdp.initial.numpy())
    states = demos.states.numpy()[:, :H + 1]
    om = np.bincount(states.ravel(), minlength=S) / len(states)        # imitation's own occupancy of trajectories
    net = BasicRewardNet(env.observation_space, env.action_space, use_action=False, hid_sizes=[])
    irl = MCEIRL(om, env, net, rng=np.random.default_rng(0), optimizer_kwargs={"lr": lr}, linf_eps=eps,
                 log_interval=None)
    calls = [0]
    step = irl._train_step

    def counted(obs):
        calls[0] += 1
        return step(obs)

    irl._train_step = counted
    vis = irl.train(max_iter=max_iter)
    gap = float(np.abs(vis - om).max())
    return calls[0], gap, gap <= eps


def occupancy_gap(mdp, demos, theta) -> float:
    """``max_s |occupancy_demo - occupancy_model|`` of a state reward ``theta``, through cai's general route."""
    r = torch.as_tensor(theta).unsqueeze(1).expand(-1, mdp.n_actions)
    r = torch.where(mdp.allowed, r, torch.full_like(r, -np.inf))
    m = mdp.replace(rewards=r)
    d = cai.policy_marginals(m, cai.soft_value_iteration(m, 1.0).policy).visitation.sum(1)
    return float((empirical_visitation(validate_demonstrations(demos, mdp), mdp).sum(1) - d).abs().max())


def run(sizes, n_demos: int, max_iter: int, eps: float, imitation: bool = False):
    rows = []
    for n in sizes:
        mdp, demos = problem(n, n_demos)
        if imitation:
            t0 = time.perf_counter()
            it_im, gap_im, reached = imitation_irl(mdp, demos, eps=eps, max_iter=max_iter)
            t_im = time.perf_counter() - t0
        t0 = time.perf_counter()
        th_np, it_np = mce_irl_numpy(mdp, demos, eps=eps, max_iter=max_iter)
        t_np = time.perf_counter() - t0
        t0 = time.perf_counter()
        th_cai, it_cai, _, _, _ = cai_irl(mdp, demos, eps=eps, max_iter=max_iter)
        t_cai = time.perf_counter() - t0
        t0 = time.perf_counter()
        th_lb, it_lb, ev_lb, gap_lb, _ = cai_irl(mdp, demos, eps=eps, max_iter=max_iter, optimizer="lbfgs")
        t_lb = time.perf_counter() - t0
        diff = float(np.abs(th_np - th_cai).max())
        gaps = (occupancy_gap(mdp, demos, th_np), occupancy_gap(mdp, demos, th_lb))
        rows.append(dict(n=n, S=mdp.n_states, T=mdp.horizon, it_np=it_np, it_cai=it_cai, t_np=t_np, t_cai=t_cai,
                         diff=diff, it_lbfgs=it_lb, evals_lbfgs=ev_lb, t_lbfgs=t_lb, gaps=gaps))
        if imitation:
            rows[-1].update(it_im=it_im, t_im=t_im, gap_im=gap_im, reached_im=reached)
            print(f"{n:>3}x{n:<3} imitation {it_im:>4} it {t_im:8.3f} s ({1000 * t_im / it_im:.2f} ms/it against cai "
                  f"Adam's {1000 * t_cai / max(it_cai, 1):.2f} ms/it: {t_im / it_im / (t_cai / max(it_cai, 1)):.2f}x) | "
                  f"final gap {gap_im:.1e}, {'reached' if reached else 'did NOT reach'} {eps:g} | to cai's tolerance: "
                  f"cai Adam {t_im / t_cai:.2f}x, cai L-BFGS {t_im / t_lb:.2f}x faster"
                  f"{'' if reached else ' (lower bounds: imitation stopped at max_iter)'}", flush=True)
        print(f"{n:>3}x{n:<3} S={mdp.n_states:>5} T={mdp.horizon:>3} | transcription (Adam) {it_np:>4} it "
              f"{t_np:8.3f} s | cai Adam {it_cai:>4} it {t_cai:8.3f} s ({t_np / t_cai:5.2f}x, max |theta diff| "
              f"{diff:.1e}) | cai L-BFGS {it_lb:>4} it / {ev_lb:>4} solves {t_lb:8.3f} s ({t_np / t_lb:6.2f}x) | "
              f"final occupancy gap {gaps[0]:.1e} / {gaps[1]:.1e}", flush=True)
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a 4x4 grid and a few iterations")
    ap.add_argument("--sizes", type=int, nargs="*", default=[12, 16, 24, 32])
    ap.add_argument("--demos", type=int, default=50)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--imitation", action="store_true",
                    help="also run the real imitation library (needs the environment of make_imitation_env.sh)")
    args = ap.parse_args(argv)
    if args.imitation and importlib.util.find_spec("imitation") is None:
        ap.error("--imitation: imitation is not importable here; run `bash benchmarks/make_imitation_env.sh` and "
                 "this script with .venv-imitation/bin/python")
    torch.set_num_threads(1)
    cai_irl(*problem(3, 3), max_iter=2)          # warm-up: the optimisers' first imports cost a second
    cai_irl(*problem(3, 3), max_iter=2, optimizer="lbfgs")
    mce_irl_numpy(*problem(3, 3), max_iter=2)
    if args.imitation:
        imitation_irl(*problem(3, 3), max_iter=2)
    if args.smoke:
        return run([4], 5, 5, args.eps, args.imitation)
    return run(args.sizes, args.demos, args.max_iter, args.eps, args.imitation)


if __name__ == "__main__":
    main()
