"""Real-browser fixtures: Debian's Chromium driven by a pinned Playwright through
`executable_path` (Playwright's own browser downloads are never used: `./dev test` installs
the `chromium` package, as it installs redis-server). A missing browser fails the test with
the command that installs it. Screenshots go to test-output/browser/<test>/ at the repository
root; the versions of both are in the run's header."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "browser"
INSTALL = "sudo apt-get install -y chromium   (./dev test installs it)"
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def chromium_path() -> str | None:
    for candidate in CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def chromium_version(path: str) -> str:
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or done.stderr.strip()


def pytest_report_header(config: pytest.Config) -> list[str]:
    path = chromium_path()
    browser = chromium_version(path) if path else f"missing ({INSTALL})"
    return [f"browser tests: playwright {version('playwright')}, {browser}; screenshots in {SHOTS}"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.fail(f"Chromium is not installed: {INSTALL}", pytrace=False)
    with sync_playwright() as playwright:
        # As root (CI, containers) Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Screenshots:
    """Numbered screenshots of one test, kept after the run."""

    def __init__(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.directory = directory
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.directory / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(SHOTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that accepts confirm() dialogs and fails the test on any console error
    (a CSP violation, a script error)."""
    context = browser.new_context(viewport={"width": 1300, "height": 800})
    new = context.new_page()
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The event stream is cut when the test stops the dashboard: not the page's fault.
        if message.type == "error" and "ERR_INCOMPLETE_CHUNKED_ENCODING" not in message.text:
            errors.append(message.text)

    new.on("console", console)
    new.on("pageerror", lambda exc: errors.append(str(exc)))
    new.on("dialog", lambda dialog: dialog.accept())
    try:
        yield new
    finally:
        context.close()
    assert errors == [], errors
