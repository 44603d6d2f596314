"""Every ```python block of the written pages runs (in page order, one namespace per page).

Blocks fenced as ```py or ```bash are shown, not run (long training runs, shell commands).
"""
from __future__ import annotations

import re

import pytest

from tests.docs.conftest import ROOT

PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "tutorials" not in p.relative_to(ROOT).parts)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_pages_have_examples():
    with_code = [p.relative_to(ROOT).as_posix() for p in PAGES if BLOCK.search(p.read_text())]
    for page in ("docs/getting-started.md", "docs/theory/graphical-model.md", "docs/theory/discount.md",
                 "docs/theory/lmdp.md", "docs/theory/lqr.md", "docs/theory/exact-vs-variational.md"):
        assert page in with_code, page


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())],
                         ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_python_blocks_run(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)                     # figures written by an example land here
    namespace = {"__name__": "__docs_example__"}
    for i, block in enumerate(BLOCK.findall(page.read_text())):
        exec(compile(block, f"{page.relative_to(ROOT)} (python block {i + 1})", "exec"), namespace)
