"""The dashboard as an ASGI application: `create_app(settings, connect)`.

Routes: the views (`pages.py`), the event stream, the JSON API (`api.py`) and, only with
`allow_actions`, the action routes (POST). Wrapped, outermost first: the URL prefix, the
security headers, auth. The hub (one subscription per queue) starts with the application's
lifespan and stops with it; `connect` makes the asyncio client inside the server's loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from blueque.aio import AsyncClient
from blueque.dashboard import api, pages
from blueque.dashboard.hub import Hub
from blueque.dashboard.scaling import KubeReader, ScalingWatcher
from blueque.dashboard.security import Guard, SecurityHeaders, StripPrefix, is_public
from blueque.dashboard.settings import DashboardSettings
from blueque.dashboard.state import Dashboard, dashboard
from blueque.errors import ConfigError

HERE = Path(__file__).resolve().parent
Connect = Callable[[], AsyncClient]


def checked(handler: api.Handler) -> api.Handler:
    """An action: refused (403) unless `Guard.cross_site` lets it through."""

    async def run(request: Request) -> Response:
        refused = dashboard(request).guard.cross_site(request)
        if refused is not None:
            return JSONResponse({"error": f"refused: {refused}"}, status_code=403)
        return await handler(request)

    return run


def routes(settings: DashboardSettings) -> list[BaseRoute]:
    found: list[BaseRoute] = [*pages.ROUTES, *api.READ_ROUTES]
    if settings.allow_actions:
        for route in api.ACTION_ROUTES:
            assert isinstance(route, Route)
            found.append(Route(route.path, checked(route.endpoint), methods=["POST"]))
    found.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    return found


class RequireAuth:
    """401 for every request that is not authenticated, but the public paths."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(str(scope["path"])):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.guard.authenticated(request):
            await self.app(scope, receive, send)
            return
        await self._refuse(request)(scope, receive, send)

    def _refuse(self, request: Request) -> Response:
        settings = self.guard.settings
        headers = {}
        if settings.basic_user is not None:
            headers["WWW-Authenticate"] = 'Basic realm="Blueque dashboard", charset="UTF-8"'
        if "text/html" in request.headers.get("accept", "") and settings.token is not None:
            login = f"{settings.prefix}/login"
            body = (
                "<!doctype html><title>Log in</title><p>This dashboard needs a token:"
                f' <a href="{login}">log in</a>.</p>'
            )
            return Response(body, 401, headers, media_type="text/html")
        return JSONResponse({"error": "authentication required"}, 401, headers)


def create_app(
    settings: DashboardSettings, connect: Connect, queues: Sequence[str] = ()
) -> ASGIApp:
    """The dashboard over the client `connect()` returns (closed when the app stops),
    following `queues` (none: every registered queue, new ones as they appear)."""
    settings = settings.validated()
    guard = Guard(settings)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.autoescape = True
    templates.env.globals["max_value_chars"] = settings.max_value_chars

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = connect()
        hub = Hub(client, settings, queues)
        app.state.dashboard = Dashboard(settings, guard, templates, client, hub)
        await hub.start()
        watcher = scaling_watcher(hub, settings)
        if watcher is not None:
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                await watcher.stop()
            await hub.stop()
            await client.close()

    app = Starlette(routes=routes(settings), lifespan=lifespan)
    return StripPrefix(SecurityHeaders(RequireAuth(app, guard)), settings.prefix)


def scaling_watcher(hub: Hub, settings: DashboardSettings) -> ScalingWatcher | None:
    """The scaling view's reader, when it is on (and, by default, when Kubernetes can be
    reached from here); when it is off, the view says why."""
    if settings.kube is False:
        hub.extras["scaling"] = {"enabled": False, "why": "turned off (--no-kube)"}
        return None
    try:
        reader = KubeReader(settings.kube_namespaces)
    except ImportError:
        why = "the kubernetes package is missing: pip install 'blueque[dashboard]'"
    except Exception as exc:  # no kubeconfig, no service account: the loaders' own errors
        why = f"no Kubernetes configuration ({type(exc).__name__}: {exc})"
    else:
        return ScalingWatcher(hub, reader, settings.scaling_interval_s, settings.history_s)
    if settings.kube:
        raise ConfigError(f"--kube: {why}")
    hub.extras["scaling"] = {"enabled": False, "why": why}
    return None


def lifespan_state(app: Any) -> Dashboard:
    """The running dashboard of an app from `create_app` (for tests and the benchmark)."""
    inner = app
    while not isinstance(inner, Starlette):
        inner = inner.app
    found: Dashboard = inner.state.dashboard
    return found
