"""
A screenshot of a run's report.html as headless Chromium renders it (Debian's ``chromium`` and ``chromium-driver``,
driven by selenium, which never downloads a browser or driver here: both paths are given).

Usage::

    python benchmarks/report_screenshot.py --report results/quick/report.html --out docs/report.png
    python benchmarks/report_screenshot.py --report results/quick/report.html --out docs/report.png --full-page

Prints the image's size in pixels and bytes.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional

#: Where Debian's packages put the browser and its driver.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def find_chromium() -> Optional[tuple]:
    """
    :return: `(browser, driver)` paths of Chromium and its WebDriver, or None when either is missing.
    """
    browser = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    driver = CHROMEDRIVER if os.path.exists(CHROMEDRIVER) else shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chromium(width: int = 1400, height: int = 1000, logs: bool = False):
    """
    :param width: Window width in CSS pixels (device scale 1: a screenshot is at 100 % zoom).
    :param height: Window height.
    :param logs: Keep the console (`browser`) and network (`performance`) logs, for `driver.get_log`.
    :return: A selenium WebDriver of headless Chromium; quit it when done.
    :raises RuntimeError: If Chromium or its driver is not installed.
    """
    found = find_chromium()
    if found is None:
        raise RuntimeError(
            f"Chromium and its driver are needed ({CHROMIUM}, {CHROMEDRIVER}): apt-get install chromium "
            "chromium-driver"
        )
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager sends no usage statistics
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    if logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(found[1]), options=options)


def screenshot(report: Path, out: Path, width: int = 1400, height: int = 1000, full_page: bool = False) -> tuple:
    """
    :param report: A report.html.
    :param out: The PNG to write.
    :param width: Window width in pixels.
    :param height: Window height (the first screen), or the least height of a full-page shot.
    :param full_page: The whole page, not only its first screen.
    :return: `(width, height)` of the image.
    """
    driver = headless_chromium(width, height)
    try:
        driver.get(Path(report).resolve().as_uri())
        if full_page:
            height = max(height, int(driver.execute_script("return document.documentElement.scrollHeight")))
        # The viewport itself, not the window around it: the image is exactly width x height at 100 % zoom.
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        size = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(out)):
            raise RuntimeError(f"Chromium could not write {out}")
        return tuple(size)
    finally:
        driver.quit()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", required=True, help="a run's report.html")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--width", type=int, default=1400, help="window width in pixels (default 1400)")
    parser.add_argument("--height", type=int, default=1000, help="window height in pixels (default 1000)")
    parser.add_argument("--full-page", action="store_true", help="the whole page, not only the first screen")
    args = parser.parse_args(argv)
    if not Path(args.report).is_file():
        print(f"error: no report at {args.report}", file=sys.stderr)
        return 2
    try:
        width, height = screenshot(Path(args.report), Path(args.out), args.width, args.height, args.full_page)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {width} x {height} px, {Path(args.out).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
