"""The one registry of named worlds, used by the command line, the report, the tutorials and the benchmarks.

A :class:`World` records how to build a world and what it accepts; :func:`make_world` builds one by
name with the settings the world accepts and refuses the ones it does not (a slip for the lottery,
a horizon for a world whose horizon is the problem). :func:`load_layout` builds a grid world from
a text file. To add a world, add one :class:`World` to :data:`WORLDS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple, Union

from cai.mdp.tabular import TabularMDP
from cai.typing import PathLike
from cai.worlds import builders

if TYPE_CHECKING:
    import gymnasium

    from cai.pomdp.model import POMDP

__all__ = ["World", "WORLDS", "DEFAULT", "make_world", "world_names", "load_layout", "canonical_name"]

#: sentinel meaning "the world's own horizon" in :func:`make_world`
DEFAULT = "default"


@dataclass(frozen=True)
class World:
    """One named world.

    Attributes:
        name: the registry key (lower case, words joined by ``-``).
        build: ``build(slip=..., **kwargs) -> TabularMDP``; ``kwargs`` are ``horizon`` and
            ``discount`` where the world accepts them.
        description: one line for ``cai worlds``.
        default_slip: slip probability used when none is given (``None``: the world has no slip).
        fixed_horizon: the horizon is part of the problem (the lottery is one decision).
        extra: the optional dependency the world needs (``"gym"``), or ``None``.
        kind: ``"tabular"`` (a :class:`~cai.TabularMDP`), ``"env"`` (a gymnasium environment
            for the deep learners) or ``"pomdp"`` (a :class:`~cai.pomdp.POMDP`).
    """

    name: str
    build: Callable[..., object]
    description: str
    default_slip: Optional[float] = 0.0
    fixed_horizon: bool = False
    extra: Optional[str] = None
    kind: str = "tabular"


def _gym(name: str) -> Callable[..., TabularMDP]:
    def build(slip=None, **kw):
        from cai.worlds.gym import from_gymnasium
        return from_gymnasium(name, **kw)
    return build


def _random(slip=None, **kw):
    return builders.random_mdp(20, 3, 3, seed=0, **kw)


def _lottery(slip=None, **kw):
    return builders.lottery()


def _tiger(slip=None, **kw):
    from cai.worlds.pomdp import tiger
    return tiger(**kw)


def _noisy_grid(slip=0.0, **kw):
    from cai.worlds.pomdp import noisy_grid
    return noisy_grid(slip=slip, **kw)


def _multigoal(slip=None, **kw):
    from cai.worlds.multigoal import MultiGoalEnv
    return MultiGoalEnv(**kw)


_ALL: Tuple[World, ...] = (
    World("demo", builders.cliff, "the demo: the cliff walk with slip 0.1 (exact inference walks the edge)", 0.1),
    World("cliff", builders.cliff, "cliff walk (4x9): hard VI hugs the cliff, soft VI at high alpha keeps away"),
    World("two-route", builders.two_route, "two equally long corridors to the goal"),
    World("chain", builders.chain, "corridor: a small reward nearby, a large one far away"),
    World("lottery", _lottery, "one decision: a sure 0.5 or a 10% chance of 10 (optimism)", None, fixed_horizon=True),
    World("options-fork", builders.options_fork, "a fork: a one-option corridor or a 4-option hub (future entropy)",
          None),
    World("random", _random, "Garnet random MDP, 20 states, 3 actions, branching 3 (seed 0)", None),
    World("square", builders.square, "5x5 open grid with a lava strip across the middle row"),
    World("frozenlake", _gym("frozenlake"), "gymnasium FrozenLake-v1 (4x4, slippery) [gym extra]", None, extra="gym"),
    World("frozenlake8x8", _gym("frozenlake8x8"), "gymnasium FrozenLake8x8-v1 [gym extra]", None, extra="gym"),
    World("cliffwalking", _gym("cliffwalking"), "gymnasium CliffWalking (4x12) [gym extra]", None, extra="gym"),
    World("taxi", _gym("taxi"), "gymnasium Taxi (500 states) [gym extra]", None, extra="gym"),
    World("multigoal", _multigoal, "continuous point mass with four goals (Haarnoja et al. 2017), for SQL/SAC",
          None, kind="env"),
    World("tiger", _tiger, "the tiger problem (POMDP): listen -1 (85% accurate), wrong door -100, right +10",
          None, kind="pomdp"),
    World("noisy-grid", _noisy_grid, "2x3 grid, two start corners, a position sensor right 80% of the time (POMDP)",
          kind="pomdp"),
)

#: name -> :class:`World`
WORLDS: Dict[str, World] = {w.name: w for w in _ALL}


def canonical_name(name: str) -> str:
    """``"Two_Route"`` -> ``"two-route"``: registry keys are lower case joined by ``-``."""
    return name.strip().lower().replace("_", "-")


def world_names(kind: Optional[str] = None) -> Tuple[str, ...]:
    """The registered names, optionally only those of one ``kind`` (``"tabular"``, ``"env"`` or ``"pomdp"``)."""
    return tuple(n for n, w in WORLDS.items() if kind is None or w.kind == kind)


def make_world(name: str, *, slip: Optional[float] = None, horizon: Union[int, None, str] = DEFAULT,
               discount: Optional[float] = None) -> Union[TabularMDP, gymnasium.Env, POMDP]:
    """Build the world registered as ``name``.

    Args:
        name: a key of :data:`WORLDS` (case and ``_``/``-`` do not matter).
        slip: slip probability, for worlds that have one (default: the world's own).
        horizon: :data:`DEFAULT` (the world's own), a positive integer, or ``None`` for the
            stationary problem (then ``discount`` must be in (0, 1)).
        discount: optional discount in (0, 1].

    Returns:
        A :class:`~cai.TabularMDP` (for ``kind="env"`` worlds, the environment; for
        ``kind="pomdp"`` worlds, a :class:`~cai.pomdp.POMDP`).

    Raises:
        ValueError: unknown name, or a setting the world does not accept.
        ImportError: the world needs an optional dependency that is not installed.
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a world name (str), got {type(name).__name__}")
    key = canonical_name(name)
    if key not in WORLDS:
        raise ValueError(f"name: expected one of {', '.join(WORLDS)}, got {name!r}")
    w = WORLDS[key]
    if slip is not None and w.default_slip is None:
        raise ValueError(f"slip: world {key!r} has no slip probability, got slip={slip!r}")
    kw = {}
    if horizon != DEFAULT:
        if w.fixed_horizon:
            raise ValueError(f"horizon: world {key!r} has a fixed horizon, got horizon={horizon!r}")
        kw["horizon"] = horizon
    if discount is not None:
        kw["discount"] = discount
    if w.default_slip is not None:
        kw["slip"] = w.default_slip if slip is None else slip
    if w.fixed_horizon and discount is not None:
        return w.build().replace(discount=discount)
    return w.build(**kw)


def load_layout(path: PathLike, *, slip: float = 0.0, horizon: Union[int, None, str] = DEFAULT,
                discount: Optional[float] = None) -> TabularMDP:
    """A grid world from a text layout file (``#`` wall, ``S`` start, ``G`` goal, ``L`` lava, ``.`` free).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the layout is malformed, or the settings are invalid.
    """
    p = Path(path)
    text = p.read_text()
    kw = {} if horizon == DEFAULT else {"horizon": horizon}
    if discount is not None:
        kw["discount"] = discount
    return builders.gridworld(text, slip=slip, **kw)
