"""The built documentation site: strict build, every local link and anchor resolves, nothing loads
from the internet, every public name is in the API reference, tutorials and gallery are there."""
from __future__ import annotations

import html.parser
import importlib
import pathlib
import posixpath
import re
import urllib.parse
import warnings

import pytest

from tests.docs.conftest import EXECUTED_TUTORIAL, ROOT
from tests.test_layout import SHIMS

COMPAT = ("cai.plotting", "cai.inference", "cai.envs")   # deprecation packages, not documented


class _Refs(html.parser.HTMLParser):
    """Collects ``(tag, attribute, url)`` references and the ``id``s of one page."""

    def __init__(self):
        super().__init__()
        self.refs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for attr in ("href", "src"):
            if a.get(attr) is not None and tag in ("a", "img", "script", "link", "iframe", "source"):
                self.refs.append((tag, attr, a[attr]))


def _pages(site: pathlib.Path):
    out = {}
    for path in sorted(site.rglob("*.html")):
        p = _Refs()
        p.feed(path.read_text(encoding="utf-8"))
        out[path] = p
    return out


@pytest.fixture(scope="module")
def pages(site):
    return _pages(site)


def _target(site: pathlib.Path, page: pathlib.Path, url: str):
    """The file a local URL points to (``None`` for external URLs) and its fragment."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
        return None, None
    if not parts.path:
        return page, parts.fragment
    rel = posixpath.normpath(posixpath.join(page.parent.relative_to(site).as_posix(), urllib.parse.unquote(parts.path)))
    path = site / rel.lstrip("/")
    if parts.path.endswith("/") or path.is_dir():
        path = path / "index.html"
    return path, parts.fragment


def test_every_local_link_resolves_to_a_file_and_anchor(site, pages):
    assert (site / "index.html").is_file()
    broken, checked = [], 0
    for page, refs in pages.items():
        for tag, attr, url in refs.refs:
            path, frag = _target(site, page, url)
            if path is None:
                continue
            checked += 1
            where = f"{page.relative_to(site)}: <{tag} {attr}={url!r}>"
            if not path.is_file():
                broken.append(where + " -> no such file")
            elif frag and tag == "a" and path.suffix == ".html" and frag not in pages[path].ids:
                broken.append(where + f" -> no id {frag!r}")
    assert checked > 500, checked
    assert not broken, "\n".join(broken[:40])


def test_nothing_loads_from_the_internet(site, pages):
    external = [(p.relative_to(site), tag, url) for p, refs in pages.items() for tag, attr, url in refs.refs
                if tag != "a" and urllib.parse.urlsplit(url).scheme in ("http", "https", "")
                and urllib.parse.urlsplit(url).netloc]
    assert not external, external[:20]
    css = [(p.relative_to(site), m) for p in site.rglob("*.css") for m in re.findall(r"@import\s+url\(['\"]?https?://[^)]*", p.read_text(errors="replace"))]
    assert not css, css
    assert (site / "assets" / "mathjax" / "tex-mml-chtml.js").is_file()


def _public_modules():
    import cai

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for path in sorted(pathlib.Path(cai.__file__).parent.rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if name in SHIMS or name in COMPAT or any(p.startswith("_") for p in parts):
                continue
            yield name, importlib.import_module(name)


def test_every_public_name_is_in_the_api_reference(site, pages):
    """Each name of each public ``__all__`` has an anchor at its home (or where it is listed)."""
    ids = set()
    for page, refs in pages.items():
        if page.relative_to(site).parts[0] == "api":
            ids |= refs.ids
    homes = {}       # id(object) -> anchors of every module that lists it
    modules = list(_public_modules())
    assert len(modules) > 40, [m for m, _ in modules]
    for name, mod in modules:
        for n in mod.__all__:
            homes.setdefault(id(getattr(mod, n)), set()).add(f"{name}.{n}")
    missing, total = [], 0
    for name, mod in modules:
        assert f"{name}" in ids, f"module {name} has no page section"
        for n in mod.__all__:
            total += 1
            obj = getattr(mod, n)
            home = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', n)}"
            if home in ids or homes[id(obj)] & ids or (name == "cai" and n == "__version__"):
                continue
            missing.append(f"{name}.{n}")
    assert total > 300, total
    assert not missing, missing


def test_top_level_names_are_listed_and_linked(site):
    import cai

    text = (site / "api" / "cai" / "index.html").read_text(encoding="utf-8")
    for n in cai.__all__:
        assert f"<code>{n}</code>" in text, n


def test_tutorials_are_rendered(site):
    notebooks = sorted(p.stem for p in (ROOT / "tutorials").glob("*.ipynb"))
    assert notebooks
    for nb in notebooks:
        text = (site / "tutorials" / nb / "index.html").read_text(encoding="utf-8")
        assert "jp-Cell" in text and "jp-MarkdownCell" in text, nb
        assert "cdnjs" not in text and "<!-- Load mathjax -->" not in text, nb
    executed = (site / "tutorials" / EXECUTED_TUTORIAL / "index.html").read_text(encoding="utf-8")
    assert executed.count('src="data:image/png;base64,') >= 1, "the executed tutorial shows no figure"
    assert "jp-OutputArea-output" in executed


def test_gallery_shows_the_demo_figures(site):
    text = (site / "gallery" / "index.html").read_text(encoding="utf-8")
    figures = sorted(p.name for p in (site / "gallery").glob("*.png"))
    assert "graphical_model.png" in figures and len(figures) >= 5, figures
    for name in figures:
        assert f'src="../gallery/{name}"' in text or f'src="{name}"' in text, name


def test_changelog_is_included(site):
    text = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in text
    assert "include-markdown" not in text
