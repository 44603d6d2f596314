"""MkDocs hooks of the documentation site (see ``mkdocs.yml``).

* the tutorials' own loaders of MathJax and mermaid.js (from a CDN) are dropped: every page
  uses the one local MathJax;
* the gallery's figures are drawn at build time by ``cai demo`` (nothing binary is committed);
* MathJax 3 is copied from the ``django-static-mathjax`` package into ``assets/mathjax``;
* Sphinx roles left in docstrings (``:class:`X` ``) are shown as plain code, and the ``::`` that
  opens a literal block reads ``:``;
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
    "policies.png": "Exact inference's posterior policy, the soft VI policy and the greedy policy of hard VI: arrows "
                    "as long as the probabilities, over the policy's entropy (0 for the greedy policy).",
    "soft_q.png": "Soft Q_0 of soft value iteration, one labelled triangle per action (the key names them).",
    "posterior_marginals.png": "Posterior state marginals p(s_t | O) over time, while at least 5% of the probability "
                               "is still on the grid (the rest has reached the exit state).",
    "posterior_marginals.gif": "The posterior state marginals, animated.",
    "trajectories.png": "Trajectories: exact posterior samples, the exact posterior's policy run in the real dynamics "
                        "(it falls off the cliff) and the soft VI policy; P(fall) in each title.",
    "temperature_sweep.png": "What the soft policies do as the temperature alpha varies.",
}
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|py:\w+):(?=<code>)")
_RST_LITERAL = re.compile(r"\s*::(?=</p>)")          # "text::" before a literal block reads "text:"
_NB_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
# nbconvert's loader of mermaid.js from a CDN (no tutorial draws a mermaid diagram)
_NB_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?jp-Mermaid.*?</script>', re.S)
_state: dict = {}


def _mathjax_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("mathjax")          # the django-static-mathjax package (no Django needed)
    es5 = pathlib.Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5" if spec else None
    if es5 is None or not (es5 / "tex-mml-chtml.js").is_file():
        raise RuntimeError("the docs need MathJax 3 from django-static-mathjax: pip install -e '.[docs]'")
    return es5


def on_config(config):
    """``CAI_DOCS_EXECUTE_ONLY=NAME[,NAME]``: execute only these tutorials (the others render without outputs).

    The test suite builds the whole site with one tutorial executed; every tutorial is executed
    by ``tests/test_tutorials.py`` anyway, and ``make docs`` executes them all.
    """
    only = [n.strip() for n in os.environ.get("CAI_DOCS_EXECUTE_ONLY", "").split(",") if n.strip()]
    if only:
        jupyter = config["plugins"]["mkdocs-jupyter"].config
        names = sorted(p.stem for p in (ROOT / "tutorials").glob("*.ipynb"))
        missing = [n for n in only if n not in names]
        if missing:
            raise ValueError(f"CAI_DOCS_EXECUTE_ONLY: expected names of tutorials/*.ipynb, got {missing}")
        jupyter["execute_ignore"] = [f"tutorials/{n}.ipynb" for n in names if n not in only]
    return config


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
    output = _RST_LITERAL.sub(":", _ROLE.sub("", output))
    # the notebooks' own MathJax block: the theme's (local) MathJax typesets them instead
    return _NB_MERMAID.sub("", _NB_MATHJAX.sub("", output))


def _skip_unused(folder, names):
    """The combined components other than ``tex-mml-chtml.js``, and the SVG output, are not used."""
    here = pathlib.Path(folder)
    if here == _mathjax_dir():
        return [n for n in names if n.endswith(".js") and n != "tex-mml-chtml.js"]
    return ["svg"] if here.name == "output" else []


def on_post_build(config):
    """Copy MathJax 3 (the tex-mml-chtml component, its fonts and lazily loaded extensions) into the site."""
    dest = pathlib.Path(config["site_dir"]) / "assets" / "mathjax"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(_mathjax_dir(), dest, ignore=_skip_unused)
