"""Headless Chromium on the web page at /ui, through Selenium pointed at local binaries (never a download)."""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

from PIL import Image

from testkit.digits import SEVEN_STROKES

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1280,1000",
    "--force-device-scale-factor=1",
)


def executable(candidates: tuple[str, ...]) -> str | None:
    """The first candidate that is an executable file (bare names are looked up on PATH)."""
    for candidate in candidates:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def chrome(chromium: str, chromedriver: str, profile: Path, *flags: str):
    """A headless Chrome WebDriver with a fresh profile in `profile`; SEVERE console messages are kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}", *flags):  # a later --window-size wins
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})  # JavaScript errors, for the test
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def draw_seven(driver) -> None:
    """A '7' on the page's canvas with pointer events, stroke by stroke."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    for points in SEVEN_STROKES:
        actions = ActionChains(driver, duration=15)
        actions.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            for i in range(1, 9):  # several moves per segment, so the page sees a stroke, not a jump
                actions.move_to_element_with_offset(pad, round(x0 + (x1 - x0) * i / 8), round(y0 + (y1 - y0) * i / 8))
        actions.release().perform()


def answers(driver) -> dict[str, str]:
    """{model: digit} of every complete answer the page shows (ten probability bars)."""
    script = (
        "return Array.from(document.querySelectorAll('#answers .answer')).map(a => "
        "[a.dataset.model, a.querySelector('.digit').textContent, a.querySelectorAll('.bars li').length])"
    )
    return {model: digit for model, digit, bars in driver.execute_script(script) if bars == 10}


def save_page(driver, path: Path, max_height: int = 2400) -> Path:
    """The whole page (not the window) as a small PNG: a 256-colour palette is plenty for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path
