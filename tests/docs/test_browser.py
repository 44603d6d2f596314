"""The built site in a real browser (headless Chromium through selenium).

Served on a free localhost port, each checked page must typeset its math (MathJax produced its
elements (``mjx-container``), no MathJax error, no raw TeX delimiters left in the visible text), load every image,
log no console error and request nothing outside the local server. Screenshots are saved in the
test's temporary folder. Skipped, with the reason, where Chromium or its driver is not installed.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from tests.docs.conftest import EXECUTED_TUTORIAL

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and shutil.which(p)), None)
CHROMEDRIVER = shutil.which("chromedriver") or (shutil.which("/usr/bin/chromedriver"))

# page -> does it show math?
PAGES = {
    "index.html": True,
    "theory/graphical-model/index.html": True,
    "theory/lqr/index.html": True,
    f"tutorials/{EXECUTED_TUTORIAL}/index.html": True,
    "api/exact/index.html": False,
    "gallery/index.html": False,
}

# visible text without code, scripts and MathJax's own hidden nodes
VISIBLE_TEXT_JS = """
const body = document.body.cloneNode(true);
body.querySelectorAll('pre, code, script, style, mjx-assistive-mml, noscript')
    .forEach(e => e.remove());
return body.textContent;
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def driver():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(60)
    yield drv
    drv.quit()


def _wait_for_mathjax(driver) -> bool:
    """Wait until MathJax 3 has typeset the page; False if it never started."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
                MathJax.startup.promise.then(() => done(true), () => done(false));
            } else if (Date.now() - t0 > 30000) {
                done(false);
            } else {
                setTimeout(poll, 100);
            }
        })();
    """)


def _wait_for_images(driver):
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const t0 = Date.now();
        (function poll() {
            const imgs = Array.from(document.images);
            if (imgs.every(i => i.complete) || Date.now() - t0 > 20000) {
                done(imgs.map(i => [i.currentSrc.slice(0, 120), i.complete && i.naturalWidth > 0]));
            } else {
                setTimeout(poll, 100);
            }
        })();
    """)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


@pytest.mark.parametrize("page", list(PAGES))
def test_page_in_chromium(page, server, driver, shots):
    driver.get_log("browser")                                   # drop the previous page's entries
    driver.get(server + page)
    assert driver.execute_script("return document.readyState") == "complete"
    assert _wait_for_mathjax(driver), f"{page}: MathJax did not load"

    if PAGES[page]:
        n_math = driver.execute_script("return document.querySelectorAll('mjx-container').length")
        assert n_math > 0, f"{page}: no typeset math"
        errors = driver.execute_script("return document.querySelectorAll('mjx-merror, [data-mjx-error]').length")
        assert errors == 0, f"{page}: {errors} MathJax errors"
        text = driver.execute_script(VISIBLE_TEXT_JS)
        for raw in ("$$", "\\(", "\\[", "\\begin{", "\\frac", "\\alpha", "\\sum"):
            assert raw not in text, f"{page}: raw TeX {raw!r} in the visible text"
        if page.startswith("tutorials/"):
            assert "$" not in text, f"{page}: an untypeset $...$ in the visible text"

    images = _wait_for_images(driver)
    broken = [src for src, ok in images if not ok]
    assert not broken, f"{page}: images that did not load: {broken}"
    if page.startswith(("gallery/", "tutorials/", "theory/graphical")):
        assert images, f"{page}: expected figures"

    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith(server)]
    assert not outside, f"{page}: requests outside the local server: {outside}"

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"{page}: console errors: {severe}"

    name = page[: -len("index.html")].strip("/").replace("/", "_") or "index"
    assert driver.save_screenshot(str(shots / f"{name}.png"))
