"""The wheel installs: build it offline, install it into a fresh virtual environment, use it there.

The fresh environment sees the already-installed dependencies (torch, pyro, ...) through a ``.pth``
line pointing at the running interpreter's site-packages, so nothing is downloaded or reinstalled;
``cai`` itself must come from the wheel (asserted: ``cai.__file__`` lies inside the new
environment, and the process runs from an empty directory with no ``PYTHONPATH``). The solve it runs
is compared with the log evidence obtained by enumerating every trajectory (tests/common.py).
"""
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.common import brute_force, random_tiny_mdp

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["cai", "setup.cfg", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in", "docs"]

pytestmark = pytest.mark.packaging


def _run(cmd, cwd, env=None, timeout=240):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _copy_sources(dest: Path) -> Path:
    """Copy what a build reads into ``dest`` (so the checkout gets no build/ or egg-info); return it."""
    dest.mkdir(exist_ok=True)
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, dest / name)
    return dest


def _clean_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg", VIRTUAL_ENV=str(venv),
               PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the sources (the checkout gets no build/ or egg-info), offline."""
    pytest.importorskip("setuptools")
    src = _copy_sources(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", out], cwd=src)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    from cai._version import __version__

    assert wheel.name.startswith(f"control_as_inference-{__version__}-"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    # every module of the source tree is in the wheel (so every subpackage: cai.worlds, cai.exact, cai.viz, ...)
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "cai").rglob("*.py") if "__pycache__" not in p.parts}
    assert sources - names == set()
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "cai").rglob("__init__.py")}
    for sub in ("cai/worlds", "cai/exact", "cai/viz", "cai/ops", "cai/dp", "cai/ppl", "cai/gaussian", "cai/report",
                "cai/algorithms/tabular", "cai/algorithms/deep", "cai/mdp"):
        assert sub in packages and f"{sub}/__init__.py" in names
    # nothing but the package and its metadata; no tests, benchmarks or tutorials
    dist_info = f"control_as_inference-{__version__}.dist-info/"
    assert {n for n in names if not n.startswith(("cai/", dist_info))} == set()
    assert {f"{dist_info}METADATA", f"{dist_info}entry_points.txt"} <= names
    licence = [n for n in names if n.startswith(dist_info) and "LICENSE" in n]
    assert licence, sorted(names)
    meta = zipfile.ZipFile(wheel).read(f"{dist_info}METADATA").decode()
    assert "Name: control-as-inference" in meta and f"Version: {__version__}" in meta
    entry = zipfile.ZipFile(wheel).read(f"{dist_info}entry_points.txt").decode()
    assert "cai = cai.cli:main" in entry


def test_wheel_installs_and_solves(wheel, tmp_path):
    from cai._version import __version__

    venv = tmp_path / "venv"
    # no pip inside the new environment: the running pip installs into it (--python), offline
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=tmp_path, env=_clean_env(venv))
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path).strip())
    # the dependencies already installed for this interpreter, appended after the new site-packages
    (purelib / "zz_cai_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    work = tmp_path / "empty"
    work.mkdir()
    env = _clean_env(venv)
    assert _run([venv / "bin" / "cai", "--version"], cwd=work, env=env) == f"cai {__version__}\n"

    rng = np.random.default_rng(7)
    d, _ = random_tiny_mdp(rng, S=3, A=2, T=3)
    alpha = 0.7
    expected = brute_force(d, alpha)["log_evidence"]
    (work / "mdp.json").write_text(json.dumps({k: np.asarray(d[k]).tolist() for k in ("P", "r", "rT", "p0")}))
    script = (
        "import json, cai\n"
        "d = json.load(open('mdp.json'))\n"
        f"m = cai.TabularMDP(d['P'], d['r'], d['p0'], horizon={d['T']}, terminal_rewards=d['rT'])\n"
        f"print(json.dumps({{'file': cai.__file__, 'version': cai.__version__,"
        f" 'log_evidence': float(cai.backward_messages(m, alpha={alpha}).log_evidence)}}))\n"
    )
    got = json.loads(_run([py, "-c", script], cwd=work, env=env).strip().splitlines()[-1])
    assert Path(got["file"]).resolve().is_relative_to(venv.resolve()), got["file"]
    assert got["version"] == __version__
    assert abs(got["log_evidence"] - expected) < 1e-10 * max(1.0, abs(expected))


def test_sdist_carries_licence_and_changelog(tmp_path):
    """The source distribution (PEP 517 hook of the venv's setuptools, offline) ships LICENSE and CHANGELOG.md."""
    import tarfile

    pytest.importorskip("setuptools")
    src = _copy_sources(tmp_path / "src")
    out = tmp_path / "dist"
    out.mkdir()
    name = _run([sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"],
                cwd=src).strip().splitlines()[-1]
    with tarfile.open(out / name) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "setup.cfg", "pyproject.toml", "cai/__init__.py",
            "cai/worlds/registry.py"} <= members
