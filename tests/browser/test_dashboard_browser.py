"""The dashboard in a real browser (Chromium), against real Redis and the real `blueque
dashboard` command: what a person sees change without reloading. A worker is played through
the protocol's own transitions (`Queue.transitions`), so each step happens exactly when the
test says."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from blueque import Client
from devtools.browser import Screenshots
from devtools.dashboards import dashboard
from devtools.redis_servers import RedisCluster
from tests.support.dashboard_pages import begin, log_in

pytestmark = pytest.mark.browser


def test_a_task_goes_from_enqueued_to_running_to_complete_live_and_cancel_works(
    redis_url: str, tmp_path: Path, page: Page, shots: Screenshots
) -> None:
    with (
        dashboard(redis_url, tmp_path, args=["--allow-actions"]) as dash,
        Client(redis_url) as client,
    ):
        queue = client.get_queue("web.q")
        first = queue.enqueue({"video": 1})
        log_in(page, dash)
        pending = page.locator('#queues tr[data-queue="web.q"] td').nth(1)
        expect(pending).to_have_text("1")
        shots.take(page, "overview")

        second = queue.enqueue({"video": "<script>alert(2)</script>"})
        expect(pending).to_have_text("2")  # no reload: the enqueued event, then the stats

        page.goto(f"{dash.url}/queues/web.q")
        expect(page.locator("#live")).to_have_text("live")
        claimed, attempt = begin(queue, "worker-1")
        assert claimed == first
        row = page.locator(f'#running tr[data-task="{first}"]')
        expect(row.locator("td").nth(1)).to_have_text("worker-1")
        runtime = row.locator(".runtime")
        shown = runtime.inner_text()
        expect(runtime).not_to_have_text(shown, timeout=3000)  # it ticks
        client.get_task(first).set_progress({"percent": 40})
        expect(row.locator("progress")).to_have_attribute("value", "0.4")
        expect(row.locator(".ptext")).to_have_text('{"percent":40}')
        expect(row.locator(".attempt")).to_contain_text("1")
        shots.take(page, "running")

        page.goto(f"{dash.url}/queues/web.q/finished?state=complete")
        expect(page.locator("#live")).to_have_text("live")
        assert (
            queue.transitions.finish("worker-1", first, attempt, "complete", '"ok"') == "complete"
        )
        done = page.locator(f'#finished tr[data-task="{first}"]')
        expect(done).to_be_visible()
        expect(done.locator("td").nth(4)).to_have_text("ok")
        shots.take(page, "finished")

        page.goto(f"{dash.url}/tasks/{second}")
        expect(page.locator("#t-parameters")).to_contain_text("<script>alert(2)</script>")
        expect(page.locator("#live")).to_have_text("live")
        page.click('button[data-action="cancel"]')  # the confirm() is accepted
        expect(page.locator("#t-state")).to_have_text("cancelled")
        expect(page.locator("#task-events")).to_contain_text("cancelled")
        shots.take(page, "cancelled")
    assert client.get_task(second).status == "cancelled"


def test_read_only_mode_shows_no_buttons(
    redis_url: str, tmp_path: Path, page: Page, shots: Screenshots
) -> None:
    with dashboard(redis_url, tmp_path) as dash, Client(redis_url) as client:
        queue = client.get_queue("ro.q")
        running = queue.enqueue("runs")
        failed = queue.enqueue("fails")
        begin(queue, "w-ro")
        claimed, attempt = begin(queue, "w-ro-2")
        error = '{"type": "ValueError", "message": "bad", "traceback": "Traceback ..."}'
        queue.transitions.finish("w-ro-2", claimed, attempt, "failed", error)
        log_in(page, dash)
        expect(page.locator("#mode")).to_have_text("read-only")
        for path, ready in [
            ("/queues/ro.q", f'#running tr[data-task="{running}"]'),
            ("/queues/ro.q/finished?state=failed", f'#finished tr[data-task="{failed}"]'),
            (f"/tasks/{running}", "#t-state"),
            (f"/tasks/{failed}", "#t-traceback"),
        ]:
            page.goto(dash.url + path)
            expect(page.locator(ready)).to_be_visible()
            expect(page.locator("button[data-action]")).to_have_count(0)
        shots.take(page, "failed-task")


def test_on_the_cluster_counts_and_progress_follow_live(
    redis_cluster: RedisCluster, tmp_path: Path, page: Page, shots: Screenshots
) -> None:
    redis_cluster.flush()
    with dashboard(redis_cluster.url, tmp_path) as dash, Client(redis_cluster.url) as client:
        names = ["c.alpha", "c.beta", "c.gamma"]  # on different masters
        for name in names:
            client.get_queue(name).enqueue(0)
        log_in(page, dash)
        for name in names:
            expect(page.locator(f'#queues tr[data-queue="{name}"] td').nth(1)).to_have_text("1")
        for name in names:
            client.get_queue(name).enqueue(1)
            cell = page.locator(f'#queues tr[data-queue="{name}"] td').nth(1)
            expect(cell).to_have_text("2")
        shots.take(page, "overview")
        page.goto(f"{dash.url}/queues/c.beta")
        queue = client.get_queue("c.beta")
        task_id, _ = begin(queue, "cw")
        row = page.locator(f'#running tr[data-task="{task_id}"]')
        expect(row).to_be_visible()
        client.get_task(task_id).set_progress(0.75)
        expect(row.locator("progress")).to_have_attribute("value", "0.75")
        shots.take(page, "running")
