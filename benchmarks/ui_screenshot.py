"""Screenshot of /ui after drawing a 7, served from a real exported/ (all models whose files are present).

Usage: python -m benchmarks.ui_screenshot [--exported exported] [--out reports/ui/ui-real-models.png]
       python -m benchmarks.ui_screenshot --fixture --out reports/ui/ui-after-drawing.png
`--fixture` serves the browser test's exported/ instead (the tiny MLP twice, a failed model, two plots) and
saves the whole page as a small palette PNG, as the test does. Starts `bentoml serve` on a free loopback port,
drives Debian's headless Chromium (the test's drawing and flags, from `testkit.browser`), stops both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from testkit import exported as X
from testkit.browser import CHROMEDRIVER, CHROMIUM, answers, chrome, draw_seven, executable, save_page
from testkit.servers import start_bentoml


def fixture_export(directory: Path) -> Path:
    """The browser test's exported/: the tiny MLP trained on MNIST, written by the exporter, with plots."""
    X.write_exported(directory, X.train_mlp(X.load_digits()[0]))
    X.add_plots(directory)
    return directory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exported", type=Path, default=Path("exported"))
    ap.add_argument("--out", type=Path, default=Path("reports/ui/ui-real-models.png"))
    ap.add_argument("--fixture", action="store_true", help="serve the browser test's exported/ (ignores --exported)")
    args = ap.parse_args()
    chromium, chromedriver = executable(CHROMIUM), executable(CHROMEDRIVER)
    if chromium is None or chromedriver is None:
        raise SystemExit("no headless browser: `make browser` installs Debian's chromium and chromium-driver")
    work = Path(tempfile.mkdtemp(prefix="mnistserve-ui-"))
    exported = fixture_export(work / "exported") if args.fixture else args.exported.resolve()
    server = start_bentoml(exported, work)
    try:
        size = () if args.fixture else ("--window-size=1400,1600",)  # the fixture: the test's window
        driver = chrome(chromium, chromedriver, work / "chromium-profile", *size)
        try:
            driver.get(server.url + "/ui")
            time.sleep(2)
            draw_seven(driver)
            for _ in range(100):
                if answers(driver):
                    break
                time.sleep(0.2)
            time.sleep(3)  # latency table and plots refresh
            args.out.parent.mkdir(parents=True, exist_ok=True)
            if args.fixture:
                save_page(driver, args.out)
            else:
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(1400, max(height + 100, 900))
                driver.save_screenshot(str(args.out))
            print(args.out, answers(driver))
        finally:
            driver.quit()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
