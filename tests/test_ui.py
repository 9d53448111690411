"""The web page at /ui: its files and plots over HTTP, then a real headless Chromium drawing a digit.

The browser test skips when no Chromium or chromedriver is installed, and fails instead when
MNISTSERVE_REQUIRE_BROWSER=1 (CI sets it); `make browser` installs Debian's. Selenium is pointed at both binaries, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import time

import httpx
import pytest
from PIL import Image

from serving_fixtures import PLOTS, REPO, UNLISTED_PLOT
from serving_fixtures import digits, exported_dir, exported_with_plots, mlp, ui_server  # noqa: F401  (fixtures)

STATIC = REPO / "serving" / "static"
SERVED = ["mlp", "mlp_b1"]  # the fixture's servable models, in manifest order
CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-quic", "--window-size=1280,1000", "--force-device-scale-factor=1")
WAIT_S = 15.0


@pytest.fixture(scope="module")
def http(ui_server):
    with ui_server.client() as client:
        yield client


# -- over HTTP: the page's files and the plots ---------------------------------------------------------


def test_the_page_and_its_files_are_served_without_anything_from_outside(http):
    page = http.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="pad"' in page.text and 'id="comparison"' in page.text
    for name, media in (("app.js", "javascript"), ("style.css", "text/css")):
        r = http.get(f"/ui/{name}")
        assert r.status_code == 200 and media in r.headers["content-type"], name
    for path in STATIC.iterdir():  # no CDN, no font service: the page works offline
        text = path.read_text()
        assert not re.search(r"https?://|(?:src|href)=[\"']//|@import", text), path.name
    assert http.get("/ui/", follow_redirects=True).url.path == "/ui"
    for bad in ("/ui/nope.js", "/ui/..%2Fservice.py", "/ui/%2e%2e"):
        assert http.get(bad).status_code == 404, bad


def test_only_the_manifests_plots_are_served(http, exported_with_plots):
    assert http.get("/plots").json() == {"plots": [f"plots/{name}" for name in PLOTS]}
    for name in PLOTS:
        r = http.get(f"/plots/{name}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == (exported_with_plots / "plots" / name).read_bytes()
    for bad in (UNLISTED_PLOT, "missing.png", "..%2Fmanifest.json", "..%2F..%2Foutside.png", "%2e%2e"):
        r = http.get(f"/plots/{bad}")
        assert r.status_code == 404, bad
    assert "GET /plots lists them" in http.get("/plots/unlisted.png").json()["error"]


# -- in a real browser ------------------------------------------------------------------------------


def _executable(candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="session")  # session, like ui_server, so that a missing browser skips before the server starts
def browser(tmp_path_factory):
    chromium, chromedriver = _executable(CHROMIUM), _executable(CHROMEDRIVER)
    if chromium is None or chromedriver is None:
        if os.environ.get("MNISTSERVE_REQUIRE_BROWSER") == "1":  # CI: a browser test that skips unseen proves nothing
            pytest.fail(f"MNISTSERVE_REQUIRE_BROWSER=1 but no headless browser: chromium={chromium}, "
                        f"chromedriver={chromedriver}")
        pytest.skip(f"no headless browser: chromium={chromium}, chromedriver={chromedriver}; "
                    "`make browser` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})  # JavaScript errors, for the test
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def _draw_seven(driver) -> None:
    """A '7' on the 280x280 canvas with pointer events: top bar, then the diagonal (offsets from its centre)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    strokes = [[(-70, -85), (70, -85), (-5, 95)], [(-30, 5), (40, 5)]]  # the bar and a crossbar
    for points in strokes:
        actions = ActionChains(driver, duration=15)
        actions.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for i in range(1, 9):  # several moves per segment, so the page sees a stroke, not a jump
                actions.move_to_element_with_offset(pad, round(x0 + (x1 - x0) * i / 8), round(y0 + (y1 - y0) * i / 8))
        actions.release().perform()


def _answers(driver) -> dict[str, str]:
    script = ("return Array.from(document.querySelectorAll('#answers .answer')).map(a => "
              "[a.dataset.model, a.querySelector('.digit').textContent, a.querySelectorAll('.bars li').length])")
    return {model: digit for model, digit, bars in driver.execute_script(script) if bars == 10}


def _error(driver) -> str:
    return driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")


def _save_screenshot(driver, path) -> None:
    """The page after drawing, as a small PNG (a 256-colour palette is plenty for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                             "clip": clip})  # the whole page, not the window
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    assert path.stat().st_size < 300_000, "the screenshot should stay small enough to commit"


@pytest.mark.browser
def test_drawing_a_digit_shows_every_models_answer_and_errors_are_readable(browser, ui_server, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(ui_server.url + "/ui")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#comparison tbody tr"), "the comparison table")
    _draw_seven(driver)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.state") == "answered", "an answer")
    assert sorted(_answers(driver)) == SERVED

    answers = _answers(driver)
    assert set(answers.values()) <= set("0123456789") and len(set(answers.values())) == 1  # one net, twice
    canvas_png = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    direct = httpx.post(ui_server.url + "/predict_all", json={"image_base64": canvas_png}, timeout=30).json()
    assert {p["model"]: str(p["digit"]) for p in direct["predictions"]} == answers  # the page shows the service's
    seen = driver.execute_script(
        "return Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)")
    assert seen[0::4] == [v for row in direct["input_28x28"] for v in row]  # the 28x28 the models received
    assert "2 models answered" in driver.find_element(By.ID, "status").text

    rows = {r.get_attribute("data-model"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#comparison tr")}
    rows.pop(None)  # the header row
    assert set(rows) == {"mlp", "faster_rcnn"} and "97.00%" in rows["mlp"] and "101,770" in rows["mlp"]
    assert "failed" in rows["faster_rcnn"] and "out of memory" in driver.find_element(By.ID, "comparison-note").text
    _wait(driver, lambda d: d.execute_script("const i = document.querySelectorAll('#plots img'); return i.length == "
                                             f"{len(PLOTS)} && Array.from(i).every(x => x.complete && x.naturalWidth)"),
          "the exported plots")
    latency_rows = "return Array.from(document.querySelectorAll('#latency tbody tr')).map(r => r.dataset.model)"
    _wait(driver, lambda d: sorted(d.execute_script(latency_rows)) == SERVED, "the live latency table")
    _save_screenshot(driver, tmp_path / "ui-after-drawing.png")  # outside the repository: the committed one is made by benchmarks/ui_screenshot.py

    driver.find_element(By.ID, "clear").click()
    assert not _answers(driver) and not _error(driver)
    driver.find_element(By.ID, "predict").click()  # an empty canvas
    _wait(driver, _error, "an error for the empty canvas")
    assert "(422)" in _error(driver) and "no ink" in _error(driver)

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("this is not an image")
    started = time.monotonic()
    driver.find_element(By.ID, "upload").send_keys(str(not_an_image))
    _wait(driver, lambda d: "(400)" in _error(d), "an error for the non-image upload")
    assert "not an image" in _error(driver) and not _answers(driver) and time.monotonic() - started < WAIT_S
    too_large = tmp_path / "huge.png"
    too_large.write_bytes(b"\x89PNG" + bytes(2 * 1024 * 1024))  # over the service's 2 MiB body limit
    driver.find_element(By.ID, "upload").send_keys(str(too_large))
    _wait(driver, lambda d: "(413)" in _error(d), "an error for an upload over the body limit")
    assert "Too large" in _error(driver) and "limit" in _error(driver)
    logged = [e["message"] for e in driver.get_log("browser")]
    script_errors = [m for m in logged if "the server responded with a status of 4" not in m]  # 422, 400: expected
    assert not script_errors, script_errors

