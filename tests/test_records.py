"""Every result record is frozen for real: assigning to a field raises.

The records are found by walking the package (not listed by hand), so a new mutable
``@dataclass`` result fails here unless it is one of the deliberately mutable objects below.
"""
import dataclasses
import importlib
import inspect
import pkgutil
import warnings

import pytest

import cai

#: Packages of the 0.2 layout (the old module paths are deprecation shims and are skipped).
PACKAGES = ["cai.mdp", "cai.worlds", "cai.ops", "cai.exact", "cai.dp", "cai.ppl", "cai.gaussian",
            "cai.algorithms.tabular", "cai.algorithms.deep", "cai.report", "cai.viz", "cai.sweep", "cai.why", "cai.app"]
#: Mutable on purpose: hyperparameter configs a user edits before training, the training curve a
#: learner appends to while it trains, and where the training loop stands between two ``fit``
#: calls (the unfinished episode). None of them is a result.
MUTABLE = {"LoopConfig", "SACConfig", "SQLConfig", "SoftDQNConfig", "DiscreteSACConfig", "PCLConfig", "TrainingHistory",
           "LoopState"}


def _modules():
    names = ["cai.solution", "cai.methods"]
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        names.append(pkg)
        names += [f"{pkg}.{m.name}" for m in pkgutil.iter_modules(mod.__path__) if not m.ispkg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [importlib.import_module(n) for n in names]


def _record_types():
    found = {}
    for mod in _modules():
        for name, obj in vars(mod).items():
            if not inspect.isclass(obj) or obj.__module__ != mod.__name__:
                continue
            is_namedtuple = issubclass(obj, tuple) and hasattr(obj, "_fields")
            if dataclasses.is_dataclass(obj) or is_namedtuple:
                found[name] = obj
    return found


RECORDS = _record_types()


def test_the_walk_finds_the_records_the_issue_names():
    for name in ("ForwardMessages", "PolicyMarginals", "Trajectories", "PolicyFit", "TDResult", "PGResult",
                 "LMDPSolution", "ComparisonReport", "MethodResult", "TemperatureSweep", "LinearGaussianMessages",
                 "LinearGaussianMarginals", "Recursion", "World", "LinearGaussianSystem"):
        assert name in RECORDS, name


@pytest.mark.parametrize("name", sorted(set(RECORDS) - MUTABLE))
def test_record_assignment_raises(name):
    cls = RECORDS[name]
    if dataclasses.is_dataclass(cls):
        assert cls.__dataclass_params__.frozen, f"{name} is a mutable dataclass"
        obj = object.__new__(cls)                 # frozen-ness is the class's, whatever the values
        field = dataclasses.fields(cls)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, None)
    else:                                         # a NamedTuple
        obj = cls._make([None] * len(cls._fields))
        with pytest.raises(AttributeError):
            setattr(obj, cls._fields[0], 1)
        with pytest.raises(AttributeError):
            obj.new_attribute = 1                 # no __dict__ either


def test_records_from_real_calls_are_frozen():
    # the objects the solvers return, not only their classes
    from cai.worlds.builders import chain

    mdp = chain(4)
    msg = cai.backward_messages(mdp, 1.0)
    fm = cai.forward_messages(mdp, msg)
    pm = cai.policy_marginals(mdp, msg.policy)
    for obj, field in ((fm, "log_state"), (pm, "state")):
        with pytest.raises(AttributeError):
            setattr(obj, field, None)
    with pytest.raises(AttributeError):
        msg.V = None
