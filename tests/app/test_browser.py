"""The explorer in a real browser (headless Chromium through selenium): the live server and the
exported page. Each test moves the alpha slider (and, live, paints a cell), then reads the numbers
from the page and checks them against cai's own solvers on the changed world, to the printed
precision (6 significant digits). Screenshots go to a temporary folder.

Skipped, with the reason, where Chromium, chromedriver or selenium is missing.
"""
import math
import shutil
import socket
import time

import pytest

pytest.importorskip("panel", reason="the explorer needs cai[app] (Panel)")

import cai  # noqa: E402
from cai.worlds.builders import gridworld  # noqa: E402

LAYOUT = "S....\n.....\n.LLL.\n.....\n....G"
HORIZON = 8
# every element, also inside the shadow roots Panel draws into
DEEP = """
const sel = arguments[0]; const out = [];
function walk(root) { root.querySelectorAll(sel).forEach(e => out.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) walk(e.shadowRoot); }); }
walk(document); return arguments[1] ? out.map(e => [e.getAttribute("data-key"),
                                      (e.shadowRoot || e).textContent]) : out;"""
KEYS = ("log_evidence", "max_elbo", "gap", "value_exact", "value_soft", "value_hard", "p_lava_exact",
        "p_lava_soft", "p_lava_hard", "p_lava_posterior")


@pytest.fixture(scope="module")
def driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip(f"chromium not installed: chromium={chromium}, chromedriver={chromedriver} "
                    "(apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.skip(f"selenium not installed ({exc}): pip install selenium")
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(chromedriver), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("explorer_screenshots")


def _wait(d, selector, cond=bool, timeout=20.0):
    """Wait until the texts of the elements matching ``selector`` satisfy ``cond``; return them."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        texts = [t for _, t in d.execute_script(DEEP, selector, True)]
        if texts and cond(texts):
            return texts
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {selector!r}, last seen {texts!r}")


def _click(d, selector, text=None):
    """Click the (first) element matching ``selector`` (and with ``text``), retrying while the page redraws."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(50):
        els = [e for e in d.execute_script(DEEP, selector, False) if text is None or e.text.strip() == text]
        try:
            if els:
                els[0].click()
                return
        except StaleElementReferenceException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"could not click {selector!r} {text or ''}")


def _numbers(d):
    _wait(d, "[data-key]")
    return dict(d.execute_script(DEEP, "[data-key]", True))


def _expected(layout, alpha, slip=0.0):
    """The numbers the page prints, from cai's solvers and nothing of cai.app, to 6 significant digits."""
    mdp = gridworld(layout, slip=slip, horizon=HORIZON)
    ex = cai.backward_messages(mdp, alpha=alpha)
    soft = cai.soft_value_iteration(mdp, alpha=alpha)
    hard = cai.value_iteration(mdp)
    lava = mdp.metadata["lava"]
    out = {"log_evidence": float(ex.log_evidence), "max_elbo": float(soft.max_elbo),
           "gap": float(ex.log_evidence - soft.max_elbo),
           "value_exact": float(ex.value), "value_soft": float(soft.value), "value_hard": float(hard.value),
           "p_lava_posterior": float(cai.forward_messages(mdp, ex).state[:-1, lava].sum())}
    for m, s in (("exact", ex), ("soft", soft), ("hard", hard)):
        out[f"p_lava_{m}"] = float(cai.policy_marginals(mdp, s.policy).state[:-1, lava].sum())
    return out


def _check(shown, expected):
    for k in KEYS:
        # the page prints 6 significant digits of the model's number (itself rounded to 6)
        want = float(f"{expected[k]:.6g}")
        got = float(shown[k])
        assert math.isclose(got, want, rel_tol=2e-6, abs_tol=1e-12), (k, shown[k], expected[k])


def _press_right(d, element, n):
    from selenium.webdriver.common.keys import Keys

    for _ in range(n):
        element.send_keys(Keys.ARROW_RIGHT)


@pytest.fixture
def server():
    from cai.app.view import serve

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    srv = serve(gridworld(LAYOUT, horizon=HORIZON), name="lecture", port=port, show=False, threaded=True)
    yield f"http://localhost:{port}/"
    srv.stop()


def test_live_explorer(driver, server, shots):
    d = driver
    for _ in range(100):                               # the server thread may need a moment
        try:
            d.get(server)
            break
        except Exception:
            time.sleep(0.1)
    _wait(d, "[data-key='log_evidence']")
    _check(_numbers(d), _expected(LAYOUT, 1.0))
    # the alpha slider: 10 steps of 0.05 in log10 alpha, by keyboard on its handle
    _wait(d, ".noUi-handle")
    _press_right(d, d.execute_script(DEEP, ".noUi-handle", False)[0], 10)
    _wait(d, ".cai-head", lambda texts: "alpha = 3.16228," in texts[0])
    alpha = 10 ** 0.5
    _check(_numbers(d), _expected(LAYOUT, alpha))
    # paint a wall (the default brush) on cell (1, 1) in the exact-inference panel
    before = _numbers(d)["log_evidence"]
    _click(d, "svg[data-panel='V-exact'] rect[data-row='1'][data-col='1']")
    _wait(d, "[data-key='log_evidence']", lambda texts: texts[0] != before)
    walled = "S....\n.#...\n.LLL.\n.....\n....G"
    _check(_numbers(d), _expected(walled, alpha))
    d.save_screenshot(str(shots / "live.png"))
    # bad input: the free brush over the only start names the problem and keeps the world
    _click(d, "button", "free")
    _wait(d, ".cai-status", lambda texts: "brush: free" in texts[0])
    _click(d, "svg[data-panel='V-exact'] rect[data-row='0'][data-col='0']")
    alert = _wait(d, ".cai-message", lambda texts: "start" in texts[0])
    assert "kept the previous world" in alert[0]
    _check(_numbers(d), _expected(walled, alpha))
    d.save_screenshot(str(shots / "live_message.png"))


def test_exported_page(driver, shots, tmp_path):
    from cai.app.export import export_html

    alphas, slips = (0.3, 1.0, 3.0), (0.0, 0.1)
    path = export_html(gridworld(LAYOUT, horizon=HORIZON), tmp_path / "page.html", name="lecture",
                       alphas=alphas, slips=slips)
    d = driver
    d.get(path.as_uri())
    _wait(d, "[data-key='log_evidence']")
    _check(_numbers(d), _expected(LAYOUT, 1.0))
    _press_right(d, d.find_element("id", "cai-alpha"), 1)
    _press_right(d, d.find_element("id", "cai-slip"), 1)
    _wait(d, ".cai-head", lambda texts: "alpha = 3," in texts[0] and "slip = 0.1," in texts[0])
    _check(_numbers(d), _expected(LAYOUT, 3.0, slip=0.1))
    _press_right(d, d.find_element("id", "cai-t"), 3)
    _wait(d, ".cai-head", lambda texts: texts[0].endswith("t = 3"))
    # nothing was loaded from the network: the only resources are the file itself
    loaded = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in loaded if u.startswith("http")] == []
    d.save_screenshot(str(shots / "exported.png"))
