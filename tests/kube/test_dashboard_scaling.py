"""The dashboard's scaling view against the local control plane: the real operator scales a
BlueQueue up and down while `blueque dashboard --kube` reads it (kubeconfig, read-only), and
a real browser shows the BlueQueue matched to its queue by the queue's claim, its conditions,
replicas against desired over time, and the ScaledUp and ScaledDown Events that say why."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from blueque import Client
from devtools.browser import Screenshots
from devtools.dashboards import RunningDashboard, dashboard
from devtools.localkube import ApiClient
from devtools.operator_runs import Operators
from devtools.podrunner import PodRunner
from devtools.processes import wait_until
from tests.kube.operator_support import bluequeue, bq_path, replicas, wait_condition
from tests.support.dashboard_pages import log_in

pytestmark = [pytest.mark.kube, pytest.mark.browser]


def scaling_api(dash: RunningDashboard) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{dash.url}/api/scaling", headers={"Authorization": f"Bearer {dash.token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        found: dict[str, Any] = json.load(response)
        return found


def test_the_scaling_view_shows_why_a_bluequeue_scaled(
    kube_admin: ApiClient,
    kube_namespace: str,
    kubeconfig: Path,
    operator_runs: Operators,
    pod_runner: PodRunner,
    redis_url: str,
    tmp_path: Path,
    page: Page,
    shots: Screenshots,
) -> None:
    ns = kube_namespace
    operator_runs.start([ns], lease_namespace=ns)
    body = bluequeue("dash", redis_url, queue="dash.q", scaling={"maxReplicas": 2})
    kube_admin.create(bq_path(ns), body)
    wait_condition(kube_admin, ns, "dash", "Ready", "True")
    args = ["--kube", "--kube-namespace", ns, "--scaling-interval", "0.5"]
    env = {"KUBECONFIG": str(kubeconfig)}
    with (
        dashboard(redis_url, tmp_path, args=args, env=env) as dash,
        Client(redis_url) as client,
    ):
        log_in(page, dash)
        page.goto(f"{dash.url}/scaling")
        section = page.locator(f'section[data-bluequeue="{ns}/dash"]')
        # Matched by the queue's claim: the operator renews it with the BlueQueue's UID.
        expect(section).to_have_attribute("data-matched", "yes", timeout=15_000)
        expect(section.locator('.condition[data-type="Ready"]')).to_have_attribute(
            "data-status", "True"
        )

        queue = client.get_queue("dash.q")
        release = tmp_path / "release"
        ids = queue.enqueue_many([{"hold": str(release)}] * 2)
        wait_until(lambda: queue.stats().running == 2, 30, what="two tasks running")
        expect(section.locator(".summary")).to_contain_text("replicas 2, desired 2", timeout=15_000)
        expect(section.locator('tr[data-reason="ScaledUp"]').first).to_be_visible(timeout=15_000)
        expect(section.locator('polyline[data-series="replicas"]')).to_have_count(1)
        shots.take(page, "scaled-up")

        release.touch()
        wait_until(
            lambda: all(client.get_task(i).status == "complete" for i in ids), 30, what="done"
        )
        wait_until(lambda: replicas(kube_admin, ns, "dash") == 0, 30, what="scale to zero")
        expect(section.locator('tr[data-reason="ScaledDown"]').first).to_be_visible(timeout=15_000)
        expect(section.locator(".last-scale")).to_contain_text("scale down")
        shots.take(page, "scaled-down")

        (view,) = [b for b in scaling_api(dash)["bluequeues"] if b["name"] == "dash"]
    assert view["matched"] and view["queue"] == "dash.q"
    seen = {row[1] for row in view["history"]}  # replicas over time, in memory
    assert {0, 2} <= seen, view["history"]
    reasons = [e["reason"] for e in view["events"]]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons
