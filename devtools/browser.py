"""A real browser for the dashboard's tests: Debian's Chromium, driven by the pinned Playwright
through `executable_path`. Playwright's own browser downloads are never used (`playwright
install` is not run anywhere): `./dev test` installs the `chromium` package, as it installs
redis-server. Screenshots go to test-output/browser/<test>/ at the repository root."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "browser"
INSTALL = "sudo apt-get install -y chromium   (./dev test installs it)"
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def chromium_path() -> str | None:
    """Debian's Chromium binary (the wrapper script's target when present)."""
    for candidate in CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def versions() -> str:
    """Both versions, for the run's header."""
    path = chromium_path()
    if path is None:
        browser = f"Chromium missing ({INSTALL})"
    else:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        browser = done.stdout.strip() or done.stderr.strip()
    try:
        driver = f"playwright {version('playwright')}"
    except PackageNotFoundError:
        driver = "playwright missing (./dev setup installs it)"
    return f"{driver}, {browser}"


class Screenshots:
    """Numbered screenshots of one test, kept after the run."""

    def __init__(self, test_name: str) -> None:
        self.directory = SHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path
