"""A real browser looks at the documentation site: the built site is served on localhost
and headless Chromium (Debian's `chromium` and `chromium-driver` packages, driven by
Selenium) loads the home page and an API page and checks that their headings render,
then types into the search box and checks that results appear.

Run it with `make test-browser` (it installs Selenium; Chromium and its driver come from
the system: `apt-get install chromium chromium-driver`). Under `make test-slow` it is
skipped when Selenium or Chromium is missing; with DIFFSIM_BROWSER_TEST=required (what
`make test-browser` sets) a missing tool fails it instead.
"""

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.slow


def _require(ok: bool, what: str) -> None:
    if ok:
        return
    message = f"{what} is missing: apt-get install chromium chromium-driver; pip install selenium"
    if os.environ.get("DIFFSIM_BROWSER_TEST") == "required":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    # Not --quiet: it hides the warnings that --strict counts.
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)]
    subprocess.run(build, cwd=ROOT, env=env, check=True, timeout=600)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
    except ImportError:
        _require(False, "selenium")
    _require(CHROMIUM is not None, "chromium")
    _require(CHROMEDRIVER is not None, "chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # The flags keep Chromium off the network beyond localhost (the machine has none).
    for flag in (
        "--headless=new",
        "--window-size=1280,900",  # wide enough that the search box is in the header
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _headings(driver, tag):
    from selenium.webdriver.common.by import By

    return [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, f"article {tag}")]


def test_home_page_renders(browser, site_url):
    browser.get(site_url + "/")
    assert browser.title.startswith("diffsim")
    assert _headings(browser, "h1")[0] == "diffsim"
    assert "Where to go" in _headings(browser, "h2")
    # The navigation lists the guides and the API reference.
    body = browser.find_element("css selector", "nav.md-nav").get_attribute("textContent")
    assert "Getting started" in body and "API reference" in body


def test_api_page_renders_the_docstrings(browser, site_url):
    browser.get(site_url + "/api/engine/")
    assert _headings(browser, "h1")[0] == "Simulation"
    names = [h.split("\n")[0].strip(" ¶") for h in _headings(browser, "h3")]
    assert {"simulate", "SaveAt", "Trajectory", "Reversible"} <= set(names), names
    # simulate's docstring is rendered, with its example as highlighted code.
    text = browser.find_element("css selector", "article").text
    assert "Roll system forward" in text
    assert browser.find_elements("css selector", "article div.highlight pre code")


def test_search_finds_a_public_name(browser, site_url):
    from selenium.webdriver.common.by import By

    browser.get(site_url + "/")
    box = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "input.md-search__input"))
    box.click()
    box.send_keys("ensemble")
    results = _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item") or False,
    )
    titles = " ".join(r.text for r in results)
    assert "ensemble" in titles.lower()
