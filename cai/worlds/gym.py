"""Import the transition tables of gymnasium's toy-text environments as a :class:`~cai.TabularMDP`.

Gymnasium's discrete toy-text environments (``FrozenLake-v1``, ``FrozenLake8x8-v1``,
``CliffWalking-v1``, ``Taxi-v3``/``Taxi-v4``) publish their dynamics as ``env.unwrapped.P``:
``P[s][a]`` is a list of outcomes ``(probability, next_state, reward, terminated)``, sampled by
``env.step``. :func:`from_gymnasium` turns that table into a ``TabularMDP`` (it needs the
optional extra ``gym``: ``pip install "control-as-inference[gym]"``).

**Rewards.** A gymnasium reward belongs to an outcome, so it depends on ``(s, a, s')`` (reaching
the goal of FrozenLake pays 1 *on arrival*). By default (``reward="auto"``) the MDP carries
``r(s, a, s')`` (``reward_layout="sas"``) whenever the reward depends on the outcome; this is
what exact inference needs: it puts the reward inside the log-expectation over ``s'``. If two outcomes of one ``(s, a)`` share ``s'`` but pay different
rewards (``CliffWalkingSlippery``), ``r(s, a, s')`` is their probability-weighted mean, which
keeps every expectation (soft and hard value iteration, returns) exact but not the exact
messages; a warning says so. When the reward is the same for every outcome of ``(s, a)``
(CliffWalking, Taxi) it is stored as ``r(s, a)``, which is exact for every backup and far cheaper.
``reward="sa"`` forces the expected reward ``r(s, a)``.

**Terminal states (gymnasium's ``terminated``/``done``).** An episode ends on an outcome flagged
``terminated``; a finite-horizon MDP has no "end", so the flag must be turned into dynamics:

* ``terminal="absorb"`` (default): every state entered by a terminating outcome (FrozenLake's
  holes and goal, CliffWalking's goal, Taxi's "delivered" states) becomes absorbing and
  reward-free: it keeps a single action (the first; the others are forbidden with a ``-inf``
  reward, the state and action counts are unchanged) that loops back with reward 0, so it is worth
  ``V = 0`` under every temperature and prior. The reward of the terminating step itself is kept.
  This is exactly an ended episode padded to the horizon, and keeps the terminal cell visible
  (trajectories stop *on* the goal). It requires consistency: every outcome entering such a state
  from a reachable non-terminal state must be flagged terminating (and the initial distribution
  may not put mass on one); otherwise a ``ValueError`` names the offending transition. All four
  environments above are consistent.
* ``terminal="ignore"``: the table is used as it stands, as a continuing task (e.g. Taxi goes on
  after a delivery; the episode boundary is dropped).

The list of terminal states is kept in ``mdp.metadata["terminal_states"]``.

**Horizon.** Default: the environment's time limit (``env.spec.max_episode_steps``); pass
``horizon=`` (and/or ``discount=``) to override.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Mapping, Optional, Union

import numpy as np

from cai.mdp.tabular import TabularMDP

if TYPE_CHECKING:
    import gymnasium

__all__ = ["from_gymnasium", "GYM_WORLDS", "GRID_MOVES", "resolve_env_id"]

#: The toy-text worlds this module knows (gymnasium ids and ``make`` keyword arguments).
GYM_WORLDS = {
    "frozenlake": ("FrozenLake-v1", {}),
    "frozenlake8x8": ("FrozenLake8x8-v1", {}),
    "cliffwalking": ("CliffWalking-v1", {}),
    "taxi": ("Taxi-v3", {}),
}

#: (row, col) move of each named grid action, used for geometry and policy arrows.
GRID_MOVES = {"up": (-1, 0), "north": (-1, 0), "down": (1, 0), "south": (1, 0),
              "left": (0, -1), "west": (0, -1), "right": (0, 1), "east": (0, 1)}

_DEFAULT_HORIZON = 100


def _import_gymnasium():
    try:
        import gymnasium
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "from_gymnasium needs gymnasium, the optional extra gym: pip install 'control-as-inference[gym]'"
        ) from exc
    return gymnasium


def _version(env_id: str):
    """``("CliffWalking", 1)`` for ``"CliffWalking-v1"``; version ``-1`` when there is none."""
    base, sep, v = env_id.rpartition("-v")
    return (base, int(v)) if sep and v.isdigit() else (env_id, -1)


def resolve_env_id(env_id: str, registry: Mapping[str, object]) -> str:
    """``env_id`` if ``registry`` has it, else the newest registered version of the same environment
    (gymnasium 0.29 has ``CliffWalking-v0`` only, 1.x ``CliffWalking-v1``; ``Taxi-v3`` became ``v4``).

    Raises:
        ValueError: naming ``env`` when no version of the environment is registered.
    """
    if env_id in registry:
        return env_id
    base = _version(env_id)[0]
    versions = sorted((_version(k)[1], k) for k in registry if _version(k)[0] == base)
    if not versions:
        raise ValueError(
            f"env: expected a registered gymnasium environment id or one of {sorted(GYM_WORLDS)}, got {env_id!r}"
        )
    return versions[-1][1]


def _make(env_id: str, make_kwargs):
    gym = _import_gymnasium()
    env_id = resolve_env_id(env_id, gym.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Taxi-v3 is deprecated in favour of v4
        return gym.make(env_id, **(make_kwargs or {}))


def from_gymnasium(
    env: Union[str, gymnasium.Env],
    *,
    horizon: Optional[int] = None,
    discount: Optional[float] = None,
    terminal: str = "absorb",
    reward: str = "auto",
    sparse: bool = False,
    **make_kwargs,
) -> TabularMDP:
    """The MDP behind a gymnasium toy-text environment, read from ``env.unwrapped.P``.

    Args:
        env: a gymnasium environment whose unwrapped form has the table ``P`` (and
            ``initial_state_distrib``), or an environment id (``"FrozenLake-v1"``), or one of the
            short names in :data:`GYM_WORLDS` (``"frozenlake"``, ``"frozenlake8x8"``,
            ``"cliffwalking"``, ``"taxi"``).
        horizon: number of decisions; default the environment's time limit
            (``env.spec.max_episode_steps``), or 100 when it has none.
        discount: optional discount in (0, 1].
        terminal: ``"absorb"`` (terminating outcomes lead into absorbing, reward-free states) or
            ``"ignore"`` (the raw table as a continuing task). See the module docstring.
        reward: ``"auto"`` (default: ``r(s, a)`` when the reward does not depend on the outcome,
            which is exact and much cheaper, else ``r(s, a, s')``), ``"sas"`` or ``"sa"``
            (expected reward ``r(s, a)``).
        sparse: store the transitions as a sparse ``(S*A, S)`` matrix (Taxi: 3000 x 500 with
            one entry per row); needs rewards stored as ``r(s, a)``.
        **make_kwargs: passed to ``gymnasium.make`` when ``env`` is a name (e.g.
            ``is_slippery=False``, ``map_name="8x8"``).

    Returns:
        :class:`~cai.TabularMDP` (dense, float64) with action names, state names (grid cells
        ``"(row,col)"`` for the grid worlds) and metadata: ``{"kind": "grid", "shape", "coords",
        "start", "goals", "lava", "moves", ...}`` for FrozenLake/CliffWalking, ``{"kind":
        "gymnasium"}`` otherwise; always ``"env_id"`` and ``"terminal_states"``.

    Raises:
        ImportError: without gymnasium.
        TypeError: if ``env`` has no transition table ``P``.
        ValueError: for a bad ``terminal``/``reward``/``horizon``, or inconsistent terminal flags
            with ``terminal="absorb"``.
    """
    if terminal not in ("absorb", "ignore"):
        raise ValueError(f"terminal: expected 'absorb' or 'ignore', got {terminal!r}")
    if reward not in ("auto", "sas", "sa"):
        raise ValueError(f"reward: expected 'auto', 'sas' or 'sa', got {reward!r}")
    if isinstance(env, str):
        env_id, kw = GYM_WORLDS.get(env.lower(), (env, {}))
        env = _make(env_id, {**kw, **make_kwargs})
    elif make_kwargs:
        raise TypeError(f"from_gymnasium: unexpected keyword arguments {sorted(make_kwargs)} for an environment object")
    u = getattr(env, "unwrapped", env)
    table = getattr(u, "P", None)
    if not isinstance(table, dict):
        raise TypeError(
            f"env: expected a gymnasium toy-text environment with a transition table env.unwrapped.P, "
            f"got {type(u).__name__}"
        )
    S = len(table)
    if sorted(table) != list(range(S)):
        raise ValueError(f"env: expected P to be keyed by the states 0..{S - 1}")
    A = len(table[0])
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", type(u).__name__)
    if horizon is None and discount is None:
        horizon = getattr(spec, "max_episode_steps", None) or _DEFAULT_HORIZON

    P = np.zeros((S, A, S))
    R_mass = np.zeros((S, A, S))                  # sum_i p_i r_i per (s, a, s')
    R2 = np.zeros((S, A, S))                      # to detect outcomes that share s' but not r
    done_into = np.zeros(S, dtype=bool)
    plain_into = []                               # (s, a, s') outcomes not flagged terminating
    for s in range(S):
        if len(table[s]) != A:
            raise ValueError(f"env: expected {A} actions in every state, state {s} has {len(table[s])}")
        for a in range(A):
            for prob, s2, rew, done in table[s][a]:
                s2 = int(s2)
                P[s, a, s2] += prob
                R_mass[s, a, s2] += prob * rew
                R2[s, a, s2] += prob * rew * rew
                if done:
                    done_into[s2] = True
                elif prob > 0:
                    plain_into.append((s, a, s2))
    with np.errstate(invalid="ignore", divide="ignore"):
        r_sas = np.where(P > 0, R_mass / P, 0.0)
        var = np.where(P > 0, R2 / P - r_sas ** 2, 0.0)

    p0 = np.asarray(getattr(u, "initial_state_distrib", np.full(S, 1.0 / S)), dtype=np.float64)
    terminal_states = np.flatnonzero(done_into)
    if terminal == "absorb":
        reach = _reachable(P, p0 > 0, done_into)
        for s, a, s2 in plain_into:
            if done_into[s2] and reach[s] and not done_into[s]:
                raise ValueError(
                    f"terminal: 'absorb' needs every move into a terminal state to end the episode, "
                    f"but the outcome s={s}, a={a} -> s'={s2} enters terminal state {s2} without "
                    f"terminated=True; use terminal='ignore'"
                )
        if p0[terminal_states].sum() > 0:
            raise ValueError("terminal: 'absorb' needs an initial distribution without terminal states; "
                             "use terminal='ignore'")
        for s in terminal_states:
            P[s] = 0.0
            P[s, :, s] = 1.0
            r_sas[s] = 0.0
            var[s] = 0.0
    r_sa = (P * r_sas).sum(-1)
    if terminal == "absorb" and len(terminal_states):
        # one action in an absorbing state (the first; the others forbidden): nothing to choose,
        # so no entropy bonus alpha * log|A| per step under the counting prior, and V = 0 there
        r_sa[terminal_states, 1:] = -np.inf
        r_sas[terminal_states, 1:] = -np.inf
    if reward == "auto":
        # r(s, a, s') that is constant over the successors of (s, a) is exactly r(s, a), for the
        # exact backup too: sum_s' P exp((r + V) / alpha) = exp(r / alpha) sum_s' P exp(V / alpha)
        with np.errstate(invalid="ignore"):                       # -inf - -inf at forbidden actions
            spread = np.where((P > 0) & np.isfinite(r_sa[..., None]), np.abs(r_sas - r_sa[..., None]), 0.0)
        reward = "sa" if (spread <= 1e-12 * (1 + np.abs(r_sa[..., None]))).all() and (var <= 1e-12).all() else "sas"
    if reward == "sas":
        if (var > 1e-9 * (1 + r_sas ** 2)).any():
            s, a, s2 = np.argwhere(var > 1e-9 * (1 + r_sas ** 2))[0]
            warnings.warn(
                f"from_gymnasium: outcomes of s={s}, a={a} share s'={s2} but pay different rewards; "
                f"r(s, a, s') is their mean, exact for expectations (soft/hard value iteration) but "
                f"not for exact inference", UserWarning, stacklevel=2)
        rewards = r_sas
    else:
        rewards = r_sa

    if sparse:
        if reward == "sas":
            raise ValueError("sparse: r(s, a, s') rewards need dense transitions; this environment's "
                             "reward depends on the outcome, pass sparse=False or reward='sa'")
        import scipy.sparse as sp
        P = sp.csr_matrix(P.reshape(S * A, S))
    meta = {"kind": "gymnasium", "env_id": env_id,
            "terminal_states": [int(x) for x in terminal_states], "terminal": terminal}
    action_names = _action_names(u, A)
    state_names = None
    desc = getattr(u, "desc", None)
    shape = getattr(u, "shape", None)
    if desc is not None and np.asarray(desc).size == S:        # FrozenLake (Taxi has a desc too)
        grid = np.asarray(desc).astype(str)
        meta.update(_grid_meta(grid, S, action_names))
        state_names = [f"({i},{j})" for i, j in meta["coords"]]
    elif shape is not None and int(np.prod(shape)) == S and hasattr(u, "_cliff"):   # CliffWalking
        H, W = int(shape[0]), int(shape[1])
        grid = np.full((H, W), ".")
        grid[np.asarray(u._cliff, dtype=bool)] = "L"
        grid[np.unravel_index(int(np.argmax(p0)), (H, W))] = "S"
        for s in terminal_states:
            grid[np.unravel_index(int(s), (H, W))] = "G"
        meta.update(_grid_meta(grid, S, action_names))
        state_names = [f"({i},{j})" for i, j in meta["coords"]]
    return TabularMDP(P, rewards, p0, horizon=horizon, discount=discount, state_names=state_names,
                      action_names=action_names, metadata=meta,
                      reward_layout="sas" if reward == "sas" else "sa")


def _reachable(P: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """States reachable from ``start`` through ``P > 0`` without leaving a ``stop`` state."""
    succ = P.sum(1) > 0                                        # (S, S)
    seen = start.copy()
    frontier = start.copy()
    while frontier.any():
        nxt = succ[frontier & ~stop].any(0) & ~seen
        seen |= nxt
        frontier = nxt
    return seen


def _action_names(u, A):
    name = type(u).__name__
    known = {
        "FrozenLakeEnv": ["left", "down", "right", "up"],
        "CliffWalkingEnv": ["up", "right", "down", "left"],
        "TaxiEnv": ["south", "north", "east", "west", "pickup", "dropoff"],
    }.get(name)
    if known is not None and len(known) == A:
        return known
    return [str(a) for a in range(A)]


def _grid_meta(grid: np.ndarray, S: int, action_names) -> dict:
    """Grid geometry in the format of :mod:`cai.worlds.builders` (state ``s`` is cell ``s`` row-major)."""
    H, W = grid.shape
    if H * W != S:
        raise ValueError(f"env: expected one state per grid cell ({H}x{W}), got {S} states")
    kinds = grid.ravel()
    return {
        "kind": "grid",
        "shape": [int(H), int(W)],
        "coords": [[int(s // W), int(s % W)] for s in range(S)],
        "start": [int(x) for x in np.flatnonzero(kinds == "S")],
        "goals": [int(x) for x in np.flatnonzero(kinds == "G")],
        "lava": [int(x) for x in np.flatnonzero(np.isin(kinds, ["H", "L"]))],
        "layout": "\n".join("".join("L" if c == "H" else ("." if c == "F" else c) for c in row) for row in grid),
        "moves": [list(GRID_MOVES.get(n, (0, 0))) for n in action_names],
    }
