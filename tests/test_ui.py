"""The web page at /ui: its files and plots (in-process), then a real headless Chromium drawing a digit on the
suite's live server.

The browser test skips when no Chromium or chromedriver is installed, and fails instead when
MNISTSERVE_REQUIRE_BROWSER=1 (CI sets it); `make browser` installs Debian's. Selenium is pointed at both binaries,
so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from mnistserve.settings import Suite
from testkit.browser import CHROMEDRIVER, CHROMIUM, answers, chrome, draw_seven, executable, save_page
from testkit.exported import PLOTS, UNLISTED_PLOT
from testkit.servers import REPO, in_process

STATIC = REPO / "serving" / "static"
SERVED = ["mlp", "mlp_b1"]  # the fixture's servable models, in manifest order
WAIT_S = 15.0


@pytest.fixture(scope="module")
def http(exported_with_plots):
    with in_process(exported_with_plots) as client:  # default settings
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


@pytest.fixture(scope="session")  # session, like live_server, so that a missing browser skips before the server starts
def browser(tmp_path_factory):
    chromium, chromedriver = executable(CHROMIUM), executable(CHROMEDRIVER)
    if chromium is None or chromedriver is None:
        if Suite.from_env().require_browser:  # CI: a browser test that skips unseen proves nothing
            pytest.fail(
                f"MNISTSERVE_REQUIRE_BROWSER=1 but no headless browser: chromium={chromium}, "
                f"chromedriver={chromedriver}"
            )
        pytest.skip(
            f"no headless browser: chromium={chromium}, chromedriver={chromedriver}; "
            "`make browser` installs Debian's chromium and chromium-driver"
        )
    driver = chrome(chromium, chromedriver, tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(lambda d: condition(d), message=what)


def _error(driver) -> str:
    return driver.execute_script("const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")


@pytest.mark.browser
def test_drawing_a_digit_shows_every_models_answer_and_errors_are_readable(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(live_server.url + "/ui")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#comparison tbody tr"), "the comparison table")
    draw_seven(driver)
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.state") == "answered", "an answer")
    assert sorted(answers(driver)) == SERVED

    shown = answers(driver)
    assert set(shown.values()) <= set("0123456789") and len(set(shown.values())) == 1  # one net, twice
    canvas_png = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    direct = httpx.post(live_server.url + "/predict_all", json={"image_base64": canvas_png}, timeout=30).json()
    assert {p["model"]: str(p["digit"]) for p in direct["predictions"]} == shown  # the page shows the service's
    seen = driver.execute_script(
        "return Array.from(document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data)"
    )
    assert seen[0::4] == [v for row in direct["input_28x28"] for v in row]  # the 28x28 the models received
    assert "2 models answered" in driver.find_element(By.ID, "status").text

    rows = {r.get_attribute("data-model"): r.text for r in driver.find_elements(By.CSS_SELECTOR, "#comparison tr")}
    rows.pop(None)  # the header row
    assert set(rows) == {"mlp", "faster_rcnn"} and "97.00%" in rows["mlp"] and "101,770" in rows["mlp"]
    assert "failed" in rows["faster_rcnn"] and "out of memory" in driver.find_element(By.ID, "comparison-note").text
    _wait(
        driver,
        lambda d: d.execute_script(
            "const i = document.querySelectorAll('#plots img'); return i.length == "
            f"{len(PLOTS)} && Array.from(i).every(x => x.complete && x.naturalWidth)"
        ),
        "the exported plots",
    )
    latency_rows = "return Array.from(document.querySelectorAll('#latency tbody tr')).map(r => r.dataset.model)"
    _wait(driver, lambda d: sorted(d.execute_script(latency_rows)) == SERVED, "the live latency table")
    shot = save_page(driver, tmp_path / "ui-after-drawing.png")  # outside the repository: benchmarks/ui_screenshot.py
    assert shot.stat().st_size < 300_000, "the screenshot should stay small enough to commit"  # makes the committed one

    driver.find_element(By.ID, "clear").click()
    assert not answers(driver) and not _error(driver)
    driver.find_element(By.ID, "predict").click()  # an empty canvas
    _wait(driver, _error, "an error for the empty canvas")
    assert "(422)" in _error(driver) and "no ink" in _error(driver)

    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("this is not an image")
    started = time.monotonic()
    driver.find_element(By.ID, "upload").send_keys(str(not_an_image))
    _wait(driver, lambda d: "(400)" in _error(d), "an error for the non-image upload")
    assert "not an image" in _error(driver) and not answers(driver) and time.monotonic() - started < WAIT_S
    too_large = tmp_path / "huge.png"
    too_large.write_bytes(b"\x89PNG" + bytes(2 * 1024 * 1024))  # over the service's 2 MiB body limit
    driver.find_element(By.ID, "upload").send_keys(str(too_large))
    _wait(driver, lambda d: "(413)" in _error(d), "an error for an upload over the body limit")
    assert "Too large" in _error(driver) and "limit" in _error(driver)
    logged = [e["message"] for e in driver.get_log("browser")]
    script_errors = [m for m in logged if "the server responded with a status of 4" not in m]  # 422, 400: expected
    assert not script_errors, script_errors
