"""MkDocs hooks of the documentation site (see ``mkdocs.yml``).

* the gallery's figures are drawn at build time by ``cai demo`` (nothing binary is committed);
* MathJax 2 is copied from the ``jupyter-server-mathjax`` package into ``assets/mathjax``, and
  the notebooks' own MathJax block is dropped so every page uses that one local copy;
* Sphinx roles left in docstrings (``:class:`X` ``) are shown as plain code;
* the table of ``cai.__all__`` on ``api/cai.md`` links each name to its home.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parent.parent
GALLERY_MARK = "{{ CAI_GALLERY }}"
TOPLEVEL_MARK = "{{ CAI_TOPLEVEL_TABLE }}"
#: captions of the figures ``cai demo`` writes (a figure not listed here is shown under its file name)
CAPTIONS = {
    "graphical_model.png": "The unrolled graphical model, annotated with the exact messages at the start state.",
    "values_exact_vs_soft.png": "V_0 by exact inference and by soft value iteration (the optimism of exact inference).",
    "policies.png": "Exact inference's posterior policy, the soft VI policy and the greedy policy of hard VI.",
    "soft_q.png": "Soft Q_0 of soft value iteration.",
    "posterior_marginals.png": "Posterior state marginals p(s_t | O) over time.",
    "posterior_marginals.gif": "The posterior state marginals, animated.",
    "trajectories.png": "Trajectories: exact posterior samples vs the soft VI policy run in the real dynamics.",
    "temperature_sweep.png": "What the soft policies do as the temperature alpha varies.",
}
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|py:\w+):(?=<code>)")
_NB_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_state: dict = {}


def _mathjax_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("jupyter_server_mathjax")   # locate only: importing needs jupyter_server
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the docs need MathJax from jupyter-server-mathjax: pip install -e '.[docs]'")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "static"


def on_files(files, config):
    """Draw the gallery with ``cai demo`` into a temporary folder and add its figures to the site."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="cai-docs-gallery-"))
    out = tmp / "gallery"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-m", "cai", "demo", "--out", str(out), "--dpi", "80"], check=True,
                   env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL)
    names = sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".gif"))
    for name in names:
        files.append(File(f"gallery/{name}", str(tmp), config["site_dir"], config["use_directory_urls"]))
    _state["gallery"] = names
    return files


def _gallery_markdown() -> str:
    names = _state.get("gallery", [])
    order = [n for n in CAPTIONS if n in names] + [n for n in names if n not in CAPTIONS]
    return "\n\n".join(f"### {n}\n\n{CAPTIONS.get(n, n)}\n\n![{CAPTIONS.get(n, n)}](gallery/{n})" for n in order)


def _toplevel_table() -> str:
    import cai

    rows = ["| name | home | what it is |", "| --- | --- | --- |"]
    for name in cai.__all__:
        obj = getattr(cai, name)
        if name == "__version__":
            rows.append(f"| `__version__` | `cai._version` | the package version, `{obj}` |")
            continue
        home = obj.__module__
        doc = (inspect.getdoc(obj) or "").strip().split("\n")[0].replace("|", "\\|")
        rows.append(f"| [`{name}`][{home}.{name}] | `{home}` | {doc} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if GALLERY_MARK in markdown:
        markdown = markdown.replace(GALLERY_MARK, _gallery_markdown())
    if TOPLEVEL_MARK in markdown:
        markdown = markdown.replace(TOPLEVEL_MARK, _toplevel_table())
    return markdown


def on_post_page(output, page, config):
    output = _ROLE.sub("", output)
    # the notebooks' own MathJax block: the theme's (local) MathJax typesets them instead
    return _NB_MATHJAX.sub("", output)


def on_post_build(config):
    """Copy MathJax 2 (scripts, the STIX-Web fonts, English only) into the built site."""
    src, dest = _mathjax_dir(), pathlib.Path(config["site_dir"]) / "assets" / "mathjax"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=lambda d, names: [n for n in names if pathlib.Path(d).name == "localization"
                                                        and n != "en"])
