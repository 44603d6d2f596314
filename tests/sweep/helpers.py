"""Module-level sweep functions (worker processes import them by name)."""
import math


def square_or_fail(config):
    """``x**2``; raises for negative x (a failing configuration)."""
    if config["x"] < 0:
        raise ValueError(f"negative x {config['x']}")
    return {"y": config["x"] ** 2, "root": math.sqrt(config["x"])}


def batched_affine(configs):
    """One call for a group differing in ``x``: ``a * x``."""
    return [{"y": c["a"] * c["x"], "group_size": len(configs)} for c in configs]


batched_affine.batch_axis = "x"


class Interrupt(Exception):
    pass


def make_interrupting(limit):
    """A function that raises KeyboardInterrupt once ``limit`` configurations have run (serial engine)."""
    seen = []

    def fn(config):
        if len(seen) >= limit:
            raise KeyboardInterrupt
        seen.append(config["x"])
        return {"y": config["x"] ** 2}
    return fn, seen
