"""A real headless browser for the report tests: Debian's Chromium driven through Selenium.

As root, ``tests/browser/install-chromium.sh`` installs ``chromium`` and ``chromium-driver`` with apt-get when they
are missing. Without root and without them the tests skip, saying how to install them, except in CI (``CI`` set),
where they fail. Selenium is given the driver's and the browser's paths, so nothing is downloaded at run time, and
Chromium starts with a fresh profile and every background network feature off (the machine may have no network).

Screenshots go under ``$RB201_SCREENSHOTS`` (default: ``rb201-report-screenshots`` in the temporary folder), one
folder per test, for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "browser" / "install-chromium.sh"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")  # fmt: skip


def screenshot_dir(name: str) -> Path:
    root = Path(os.environ.get("RB201_SCREENSHOTS") or Path(tempfile.gettempdir()) / "rb201-report-screenshots")
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (browser, driver) if browser and driver else None


def chromium() -> tuple[str, str]:
    """(browser, driver) paths, installing them as root when missing; skips or fails (CI) when that cannot be."""
    found = _paths()
    if found:
        return found
    if os.geteuid() != 0:
        msg = (f"the report's browser tests need chromium and chromium-driver; install them as root with "
               f"`sudo bash {SCRIPT}` (apt-get)")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the tests do not run as root: {msg}")
        pytest.skip(msg)
    res = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=1200)
    if res.returncode != 0:
        pytest.fail(f"chromium could not be installed (tests/browser/install-chromium.sh):\n{res.stderr[-3000:]}")
    found = _paths()
    if not found:
        pytest.fail(f"install-chromium.sh ended without chromium and chromedriver on PATH:\n{res.stdout}{res.stderr}")
    return found


class Browser:
    """One headless Chromium session (a fresh profile), with its console log."""

    def __init__(self) -> None:
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, were it ever called, must not download anything
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        browser, driver = chromium()
        self.profile = tempfile.mkdtemp(prefix="rb201-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={self.profile}"):
            opts.add_argument(flag)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(driver), options=opts)

    def open(self, page: Path, fragment: str = "") -> None:
        """Load ``page`` from disk and wait until its script says it is ready (or failed)."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(page.resolve().as_uri() + (f"#{fragment}" if fragment else ""))
        if fragment:
            self.driver.refresh()  # a new fragment on the same file does not reload it
        WebDriverWait(self.driver, 120).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        assert self.js("return document.body.dataset.ready") == "true", self.console()

    def js(self, script: str, *args: object) -> object:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: str, *args: object, timeout: float = 60) -> object:
        """Wait until the JavaScript expression ``condition`` (a function body's return value) is truthy."""
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(lambda d: d.execute_script(condition, *args))

    def console(self) -> list[dict]:
        """Console entries since the last call."""
        return list(self.driver.get_log("browser"))

    def errors(self) -> list[dict]:
        return [e for e in self.console() if e.get("level") in ("SEVERE", "ERROR")]

    def screenshot(self, folder: Path, name: str, full: bool = True) -> Path:
        """Save the page (as tall as its content when ``full``, at most 8000 pixels) as ``folder/name.png``."""
        size = self.driver.get_window_size()
        if full:
            height = int(self.js("return document.documentElement.scrollHeight") or 1000)
            self.driver.set_window_size(1400, min(max(height + 40, 600), 8000))
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(size["width"], size["height"])
        return path

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)
