"""What the dashboard's browser tests share: logging in, playing a worker."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from blueque import Queue
from devtools.dashboards import RunningDashboard


def log_in(page: Page, dash: RunningDashboard) -> None:
    assert dash.token is not None
    page.goto(f"{dash.url}/login")
    page.fill("#token", dash.token)
    page.click("form.login button[type=submit]")
    expect(page.locator("#live")).to_have_text("live")


def begin(queue: Queue, worker: str) -> tuple[str, int]:
    """Registers `worker`, claims the head of the queue and begins it, as a worker would."""
    t = queue.transitions
    t.heartbeat(worker, 60_000, {"host": "browser-test", "pid": 4242})
    claimed = t.claim(worker, 1)
    assert claimed is not None
    return claimed, t.begin(worker, claimed, 4242).attempt
