"""Every notebook in ``tutorials/`` runs top to bottom in smoke mode (``CI`` set), so none can rot.

The notebooks assert the identities they illustrate, so a wrong number fails here too.
"""
from __future__ import annotations

import glob
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "*.ipynb")))


def test_there_are_tutorials():
    assert NOTEBOOKS, "expected notebooks in tutorials/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, monkeypatch):
    # the kernel inherits this process's environment: smoke mode, this checkout's cai, no GUI
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    # kernel "python3" with argv "python ..." is started as sys.executable by jupyter_client,
    # i.e. the interpreter running the tests (ipykernel provides the spec if none is installed)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    # progress bars render as widgets (tqdm.auto with ipywidgets), not as "IProgress not found" warnings
    warned = [o.text for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "stream" and "TqdmWarning" in o.text]
    assert not warned, warned


def test_notebooks_are_committed_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, (
                    f"{os.path.basename(path)}: clear the outputs before committing")


def test_every_tutorial_ends_with_exercises():
    from cai.exercises import EXERCISES

    # a tutorial with exercises in cai.exercises ends with them (a new tutorial adds both)
    for path in NOTEBOOKS:
        num = int(os.path.basename(path)[:2])
        if num not in EXERCISES:
            continue
        src = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells[-2:])
        assert "## Exercises" in src and f"show({num})" in src, os.path.basename(path)


def test_notebooks_read_the_smoke_flag():
    for path in NOTEBOOKS:
        src = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert 'smoke_test = "CI" in os.environ' in src, os.path.basename(path)
