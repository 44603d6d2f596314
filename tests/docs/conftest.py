"""The documentation site, built once per test session (shared by pytest-xdist workers).

The build is ``mkdocs build --strict`` (warnings are errors: broken links, missing API names,
bad docstrings) with the tutorials in smoke mode (``CI=1``). To keep the run short only
:data:`EXECUTED_TUTORIAL` is executed here; the others render without outputs
(``tests/test_tutorials.py`` executes every notebook, and ``make docs`` renders them all with
their outputs).
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXECUTED_TUTORIAL = "01_messages_and_dynamic_programming"
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python", "mkdocs_jupyter",
          "mkdocs_include_markdown_plugin", "mathjax")


def docs_tools_missing() -> list:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def build_site(dest: pathlib.Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI="1", NO_MKDOCS_2_WARNING="1",
               CAI_DOCS_EXECUTE_ONLY=EXECUTED_TUTORIAL,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)          # the notebooks' kernels draw inline figures
    env.pop("CAI_DOCS_EXECUTE", None)
    env.pop("CAI_DOCS_NOTEBOOK_CACHE", None)
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(dest)],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> pathlib.Path:
    """The built site's folder; the build's failure (its log) fails every test that uses it."""
    missing = docs_tools_missing()
    if missing:
        pytest.skip(f"the docs tools are not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    base = tmp_path_factory.getbasetemp()
    if worker:                     # one build for every worker of this run
        from filelock import FileLock

        base = base.parent
        lock = FileLock(str(base / "cai-docs-site.lock"))
    else:
        lock = None
    dest, record = base / "cai-docs-site", base / "cai-docs-site.json"
    if lock:
        lock.acquire()
    try:
        if not record.exists():
            proc = build_site(dest)
            record.write_text(json.dumps({"rc": proc.returncode, "log": (proc.stdout + proc.stderr)[-6000:]}))
        result = json.loads(record.read_text())
    finally:
        if lock:
            lock.release()
    assert result["rc"] == 0, "mkdocs build --strict failed:\n" + result["log"]
    return dest
