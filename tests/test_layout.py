"""The package layout: no import cycles, no private names across packages, shims for moved modules."""
import ast
import importlib
import pathlib
import warnings

import networkx as nx
import pytest

import cai

ROOT = pathlib.Path(cai.__file__).resolve().parent
SHIMS = {  # old module -> new module (moved in 0.2)
    "cai._checks": "cai.mdp.checks",
    "cai.mdp.builders": "cai.worlds.builders",
    "cai.mdp.gym": "cai.worlds.gym",
    "cai.envs.multigoal": "cai.worlds.multigoal",
    "cai.inference.messages": "cai.exact.messages",
    "cai.inference.sampling": "cai.exact.sampling",
    "cai.inference.pyro_model": "cai.ppl.model",
    "cai.inference.svi": "cai.ppl.svi",
    "cai.inference.compare": "cai.report.compare",
    "cai.inference.linear_gaussian": "cai.gaussian.messages",
    "cai.algorithms.irl": "cai.algorithms.tabular.irl",
    "cai.algorithms.lmdp": "cai.algorithms.tabular.lmdp",
    "cai.algorithms.composition": "cai.algorithms.tabular.composition",
    "cai.algorithms.policy_gradient": "cai.algorithms.tabular.policy_gradient",
    "cai.algorithms.tabular_soft_q": "cai.algorithms.tabular.soft_q",
    "cai.algorithms.networks": "cai.algorithms.deep.networks",
    "cai.algorithms.replay": "cai.algorithms.deep.replay",
    "cai.algorithms.sac": "cai.algorithms.deep.sac",
    "cai.algorithms.sql": "cai.algorithms.deep.sql",
    "cai.algorithms.soft_dqn": "cai.algorithms.deep.soft_dqn",
    "cai.algorithms.rl_common": "cai.algorithms.deep.loop",
    "cai.graph": "cai.viz.graph",
}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path, module_level_only):
    """``(module imported, names imported)`` for every ``from cai... import`` / ``import cai...``."""
    tree = ast.parse(path.read_text())
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]:
        tree.body.remove(fn)                  # lazy deprecation aliases of moved names are not imports
    for block in [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")]:
        tree.body.remove(block)               # names for annotations only: never imported at run time
    nodes = tree.body if module_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cai") and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("cai"):
                    yield a.name, []


def test_no_relative_imports_and_no_import_cycles():
    g = nx.DiGraph()
    for mod, path in _modules():
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), f"{mod}: relative import"
        if mod in SHIMS or mod in ("cai.plotting", "cai.inference", "cai.envs"):
            continue
        for target, _ in _imports(path, module_level_only=False):
            if target != mod and not mod.startswith(target + ".") and target != "cai":
                g.add_edge(mod, target)
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"import cycles: {cycles[:3]}"


def test_no_private_names_across_packages():
    for mod, path in _modules():
        pkg = mod.rsplit(".", 1)[0] if path.name != "__init__.py" else mod
        for target, names in _imports(path, module_level_only=False):
            target_pkg = target.rsplit(".", 1)[0]
            private = [n for n in names if n.startswith("_") and n != "__version__"]
            if private and target_pkg != pkg and target != "cai._compat":
                pytest.fail(f"{mod} imports private {private} from {target} (another package)")


@pytest.mark.parametrize("old,new", sorted(SHIMS.items()))
def test_moved_module_warns_and_aliases(old, new):
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)


def test_moved_package_names_warn_and_resolve():
    with pytest.warns(DeprecationWarning, match="cai.worlds"):
        from cai.mdp import gridworld
    assert gridworld is cai.worlds.gridworld
    with pytest.warns(DeprecationWarning, match="cai.exact"):
        assert cai.inference.backward_messages is cai.backward_messages
    with pytest.raises(AttributeError):
        cai.inference.nothing_here  # noqa: B018


def test_public_names_resolve_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in cai.__all__:
            assert getattr(cai, name) is not None
        for pkg in ("exact", "dp", "ppl", "report", "gaussian", "worlds", "viz", "ops", "mdp", "algorithms",
                    "algorithms.tabular", "algorithms.deep", "why"):
            m = importlib.import_module(f"cai.{pkg}")
            for name in m.__all__:
                assert hasattr(m, name), f"cai.{pkg}.{name}"


def test_version_in_one_place():
    import re

    setup = (ROOT.parent / "setup.cfg").read_text()
    assert "version = attr: cai._version.__version__" in setup
    assert re.fullmatch(r"\d+\.\d+\.\d+", cai.__version__)
