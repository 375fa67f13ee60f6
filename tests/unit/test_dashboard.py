"""The dashboard's HTTP surface on fakeredis, through Starlette's TestClient: pages and JSON
render, read-only mode has no action routes, auth is required when set, actions refuse
cross-site requests, user data comes out escaped and cut, and the URL prefix works with
and without the proxy stripping it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from blueque import Client
from blueque.aio import AsyncClient
from blueque.cli.output import task_dict
from blueque.cli.queues import snapshot_dict
from blueque.dashboard import DashboardSettings, create_app
from blueque.dashboard.security import COOKIE, CSRF_HEADER
from blueque.errors import ConfigError
from blueque.maintenance import snapshot
from blueque.states import Outcome

TOKEN = "t0ken-of-the-dashboard-tests"
STATIC = Path(__file__).resolve().parents[2] / "blueque" / "dashboard"


class Setup:
    def __init__(self) -> None:
        self.server = fakeredis.FakeServer()
        self.sync = Client(redis=fakeredis.FakeRedis(server=self.server, decode_responses=True))

    def connect(self) -> AsyncClient:
        return AsyncClient(
            redis=fakeredis.FakeAsyncRedis(server=self.server, decode_responses=True)
        )

    def client(self, **settings: Any) -> TestClient:
        app = create_app(DashboardSettings(refresh_s=0.2, kube=False, **settings), self.connect)
        return TestClient(app, base_url="http://dash.local")

    def run_one(self, queue: str, outcome: Outcome, payload: str) -> str:
        """Enqueues, claims, begins and finishes a task as a worker would."""
        q = self.sync.get_queue(queue)
        task_id = q.enqueue({"n": 1})
        t = q.transitions
        t.heartbeat("w1", 60_000, {"host": "h", "pid": 1})
        assert t.claim("w1", 1) == task_id
        attempt = t.begin("w1", task_id, 1).attempt
        assert t.finish("w1", task_id, attempt, outcome, payload) == outcome
        return task_id


@pytest.fixture
def setup() -> Iterator[Setup]:
    s = Setup()
    try:
        yield s
    finally:
        s.sync.close()


def test_every_page_and_the_json_api_render(setup: Setup) -> None:
    done = setup.run_one("mail", "complete", '{"sent": true}')
    failed = setup.run_one(
        "mail", "failed", '{"type": "SMTPError", "message": "refused", "traceback": "Traceback"}'
    )
    waiting = setup.sync.get_queue("mail").enqueue({"to": "a@b"})
    with setup.client() as http:
        for path, text in [
            ("/", "Queues"),
            ("/queues/mail", "mail: running"),
            ("/queues/mail/workers", "mail: workers"),
            ("/queues/mail/finished", done),
            ("/queues/mail/finished?state=failed", "SMTPError: refused"),
            ("/queues/mail/config", "max_attempts"),
            (f"/tasks/{failed}", "Traceback"),
            (f"/tasks/{waiting}", "a@b"),
            ("/feed", "Live events"),
            ("/scaling", "Scaling"),
        ]:
            page = http.get(path)
            assert page.status_code == 200, path
            assert text in page.text, path
            assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert http.get("/tasks/mail:" + "0" * 32).status_code == 404
        assert http.get("/queues/bad{name}").status_code == 404
        # The JSON API is the CLI's --json, built from the same records.
        assert _jsonable(http.get("/api/info").json()) == _jsonable(
            snapshot_dict(snapshot(setup.sync))
        )
        assert _jsonable(http.get(f"/api/tasks/{done}").json()) == _jsonable(
            task_dict(setup.sync.get_task(done))
        )
        listed = http.get("/api/queues/mail/tasks", params={"state": "failed"}).json()
        assert [t["id"] for t in listed] == [failed]
        assert http.get("/api/queues/mail/config").json()["max_attempts"] == 3
        assert http.get("/api/queues/mail/recent").json()["w1"][0]["id"] == failed
        assert http.get("/api/queues/mail/tasks", params={"limit": "0"}).status_code == 400


def _jsonable(document: Any) -> Any:
    """As JSON would carry it, without the ages that move between two reads."""
    moving = ("oldest_pending_age_s", "busy_for_s", "heartbeat_age_s", "runtime_s")

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in moving}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(json.dumps(document, default=str)))


def test_read_only_mode_has_no_action_routes_and_no_buttons(setup: Setup) -> None:
    failed = setup.run_one("q", "failed", '{"type": "E", "message": "m"}')
    app = create_app(DashboardSettings(kube=False), setup.connect)
    inner: Any = app
    while not hasattr(inner, "routes"):
        inner = inner.app
    posts = {r.path for r in inner.routes if isinstance(r, Route) and "POST" in (r.methods or ())}
    assert posts == {"/login", "/logout"}
    with TestClient(app) as http:
        assert http.post(f"/api/tasks/{failed}/retry").status_code in (404, 405)
        assert http.post("/api/queues/q/retry").status_code in (404, 405)
        page = http.get(f"/tasks/{failed}").text
        assert 'data-action="retry"' not in page and 'data-actions="off"' in page
        assert 'data-action="' not in http.get("/queues/q/finished?state=failed").text
    assert setup.sync.get_task(failed).status == "failed"


def test_auth_is_required_for_reading_when_a_token_or_user_is_set(setup: Setup) -> None:
    setup.sync.get_queue("q").enqueue(1)
    with setup.client(token=TOKEN, basic_user="ops", basic_password="secret-pw") as http:
        for path in ("/", "/api/info", "/events", "/feed", "/queues/q"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert "www-authenticate" in refused.headers
        assert http.get("/healthz").status_code == 200
        assert http.get("/static/dashboard.js").status_code == 200
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert http.get("/api/info", headers=bearer).status_code == 200
        assert http.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
        basic = base64.b64encode(b"ops:secret-pw").decode()
        assert http.get("/api/info", headers={"Authorization": f"Basic {basic}"}).is_success
        wrong = base64.b64encode(b"ops:nope").decode()
        assert http.get("/api/info", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        # The login page sets a cookie derived from the token (never the token itself).
        origin = {"Origin": "http://dash.local"}
        assert http.post("/login", data={"token": "wrong"}, headers=origin).status_code == 401
        logged = http.post("/login", data={"token": TOKEN}, headers=origin, follow_redirects=False)
        assert logged.status_code == 303
        cookie = logged.cookies[COOKIE]
        assert TOKEN not in cookie
        assert "httponly" in logged.headers["set-cookie"].lower()
        assert "samesite=strict" in logged.headers["set-cookie"].lower()
        assert http.get("/api/info").status_code == 200  # the client kept the cookie
        cross = http.post(
            "/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403


def test_actions_are_post_only_and_refuse_cross_site_requests(setup: Setup) -> None:
    queue = setup.sync.get_queue("q")
    first, second = queue.enqueue(1), queue.enqueue(2)
    with setup.client(token=TOKEN, allow_actions=True) as http:
        origin = {"Origin": "http://dash.local"}
        http.post("/login", data={"token": TOKEN}, headers=origin)
        csrf = re.search(r'name="blueque-csrf" content="([0-9a-f]+)"', http.get("/").text)
        assert csrf is not None
        good = {**origin, CSRF_HEADER: csrf.group(1)}
        assert http.get(f"/api/tasks/{first}/cancel").status_code == 405
        evil = http.post(
            f"/api/tasks/{first}/cancel", headers={**good, "Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        site = http.post(
            f"/api/tasks/{first}/cancel",
            headers={**good, "Sec-Fetch-Site": "cross-site", "Origin": "https://x.example"},
        )
        assert site.status_code == 403
        assert http.post(f"/api/tasks/{first}/cancel", headers=origin).status_code == 403  # no CSRF
        assert http.post(f"/api/tasks/{first}/cancel").status_code == 403  # no origin at all
        assert setup.sync.get_task(first).status == "pending"
        done = http.post(f"/api/tasks/{first}/cancel", headers=good)
        assert done.json() == {"id": first, "outcome": "cancelled", "state": "cancelled"}
        # A script with the token itself needs no CSRF header.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert http.post(f"/api/tasks/{second}/cancel", headers=bearer).is_success
        retried = http.post("/api/queues/q/retry", json={"state": "cancelled"}, headers=good)
        assert retried.json()["retried"] == 2
        assert setup.sync.get_task(second).status == "pending"
        again = http.post(f"/api/tasks/{second}/retry", headers=good)
        assert again.status_code == 409  # pending: nothing to retry


def test_an_allowed_origin_may_act(setup: Setup) -> None:
    task_id = setup.sync.get_queue("q").enqueue(1)
    with setup.client(allow_actions=True, allowed_origins=("http://127.0.0.1:8001",)) as http:
        csrf = re.search(r'name="blueque-csrf" content="([0-9a-f]+)"', http.get("/").text)
        assert csrf is not None
        headers = {"Origin": "http://127.0.0.1:8001", CSRF_HEADER: csrf.group(1)}
        assert http.post(f"/api/tasks/{task_id}/cancel", headers=headers).is_success


def test_user_data_is_escaped_and_cut(setup: Setup) -> None:
    queue = setup.sync.get_queue("q")
    evil = queue.enqueue({"html": "<script>alert(1)</script>", "big": "x" * 50_000})
    with setup.client(max_value_chars=1000) as http:
        page = http.get(f"/tasks/{evil}").text
        assert "<script>alert(1)" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "cut: " in page and "x" * 1001 not in page
        doc = http.get(f"/api/tasks/{evil}").json()
        assert isinstance(doc["parameters"], str) and len(doc["parameters"]) < 1100
        assert "cut: " in doc["parameters"]


def test_the_pages_hold_no_inline_script_or_style() -> None:
    for template in (STATIC / "templates").glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert not re.search(r"\sstyle=|\son[a-z]+=", text), template.name
    script = (STATIC / "static" / "dashboard.js").read_text()
    assert (
        "innerHTML" not in script and "eval(" not in script and "insertAdjacentHTML" not in script
    )


@pytest.mark.parametrize("path_prefix", ["/ops/blueque", ""])
def test_a_url_prefix_is_served_with_or_without_the_proxy_stripping_it(
    setup: Setup, path_prefix: str
) -> None:
    setup.sync.get_queue("q").enqueue(1)
    with setup.client(url_prefix="/ops/blueque/") as http:
        page = http.get(f"{path_prefix}/queues/q")
        assert page.status_code == 200
        assert 'href="/ops/blueque/queues/q/workers"' in page.text
        assert 'src="/ops/blueque/static/dashboard.js"' in page.text
        assert http.get(f"{path_prefix}/static/dashboard.css").status_code == 200
        assert http.get(f"{path_prefix}/api/queues").json() == {"queues": ["q"]}


def test_settings_refuse_what_would_expose_user_data() -> None:
    with pytest.raises(ConfigError, match="without auth"):
        DashboardSettings(host="0.0.0.0").validated()
    DashboardSettings(host="0.0.0.0", token=TOKEN).validated()
    DashboardSettings(host="0.0.0.0", insecure_no_auth=True).validated()
    DashboardSettings(host="::1").validated()
    with pytest.raises(ConfigError, match="16 characters"):
        DashboardSettings(token="short").validated()
    with pytest.raises(ConfigError, match="url-prefix"):
        DashboardSettings(url_prefix="ops").validated()
    with pytest.raises(ConfigError, match="allowed-origin"):
        DashboardSettings(allowed_origins=("evil.example",)).validated()
    with pytest.raises(ConfigError, match="basic auth"):
        DashboardSettings(basic_user="ops").validated()


def test_the_command_refuses_an_open_address_without_auth_in_one_line() -> None:
    from click.testing import CliRunner

    from blueque.cli import cli

    done = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0"], env={})
    assert done.exit_code == 1
    assert done.output.startswith("error: refusing to serve 0.0.0.0 without auth")
    assert "dashboard" in CliRunner().invoke(cli, ["--help"]).output
