"""Screenshot of /ui after drawing a 7, served from a real exported/ (all models whose files are present).

Usage: python benchmarks/ui_screenshot.py [--exported exported] [--out reports/ui/ui-real-models.png]
Starts `bentoml serve` on a free loopback port, drives Debian's headless Chromium, stops both.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]
from tests.test_ui import CHROME_FLAGS, _answers, _draw_seven  # noqa: E402  the test's own drawing and flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exported", type=Path, default=Path("exported"))
    ap.add_argument("--out", type=Path, default=Path("reports/ui/ui-real-models.png"))
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MNISTSERVE_EXPORTED": str(args.exported.resolve()), "BENTOML_DO_NOT_TRACK": "true"}
    server = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:MNISTService",
                               "--host", "127.0.0.1", "--port", str(port)], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in (*CHROME_FLAGS, f"--user-data-dir={tempfile.mkdtemp()}", "--window-size=1400,1600"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
        try:
            driver.get(url + "/ui")
            time.sleep(2)
            _draw_seven(driver)
            for _ in range(100):
                if _answers(driver):
                    break
                time.sleep(0.2)
            time.sleep(3)  # latency table and plots refresh
            args.out.parent.mkdir(parents=True, exist_ok=True)
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1400, max(height + 100, 900))
            driver.save_screenshot(str(args.out))
            print(args.out, _answers(driver))
        finally:
            driver.quit()
    finally:
        os.killpg(server.pid, 15)


if __name__ == "__main__":
    main()
