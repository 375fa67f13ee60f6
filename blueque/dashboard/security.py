"""Who may read and act, and the headers every response carries.

- **Auth, for reading too** (task parameters and results are user data): a token, presented
  as `Authorization: Bearer <token>` or as the cookie the login page sets (an HMAC of the
  token, HttpOnly, SameSite=Strict, scoped to the URL prefix), or HTTP basic auth. Without
  either the server only binds loopback (see `DashboardSettings.validated`).
- **Actions refuse cross-site requests:** a POST must come from the dashboard's own origin
  (or an `--allowed-origin`) by its Origin or Referer header, must not be `Sec-Fetch-Site:
  cross-site`, and, unless it carries the bearer token itself (a script: browsers never send
  one on their own), must carry the page's CSRF token in `X-Blueque-CSRF`. A header a cross-site
  form cannot set, for a cookie or a basic-auth password the browser would send by itself.
- **Headers:** a CSP without inline scripts or styles (`script-src 'self'`), no framing, no
  referrer sent to other sites (`same-origin`: with `no-referrer` a browser sends `Origin:
  null` on a form POST, and the login form could not be checked), no sniffing, no caching
  of user data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blueque.dashboard.settings import DashboardSettings

COOKIE = "blueque_dashboard"
CSRF_HEADER = "x-blueque-csrf"
# Paths served without auth: the login form, the health probe and the static files (the
# dashboard's own code, no data).
PUBLIC = ("/login", "/healthz", "/static/")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class Guard:
    """The auth and CSRF checks of one dashboard, from its settings."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self._secret = (settings.token or secrets.token_hex(32)).encode()

    def _mac(self, purpose: str) -> str:
        return hmac.new(self._secret, purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The login cookie's value: derived from the token, never the token itself."""
        return self._mac("blueque-dashboard-session")

    @property
    def csrf(self) -> str:
        return self._mac("blueque-dashboard-csrf")

    def token_matches(self, presented: str) -> bool:
        token = self.settings.token
        return token is not None and hmac.compare_digest(presented.encode(), token.encode())

    def bearer(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(value.strip())

    def _basic(self, request: Request) -> bool:
        s = self.settings
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if s.basic_user is None or s.basic_password is None or scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared in full, always: no early exit that times which one was wrong.
        ok_user = hmac.compare_digest(user.encode(), s.basic_user.encode())
        ok_password = hmac.compare_digest(password.encode(), s.basic_password.encode())
        return ok_user and ok_password

    def _cookie(self, request: Request) -> bool:
        value = request.cookies.get(COOKIE)
        return (
            self.settings.token is not None
            and value is not None
            and hmac.compare_digest(value.encode(), self.session.encode())
        )

    def authenticated(self, request: Request) -> bool:
        if not self.settings.auth_enabled:
            return True
        return self.bearer(request) or self._basic(request) or self._cookie(request)

    def _origin(self, request: Request) -> tuple[str | None, str | None]:
        """(the request's origin from Origin or Referer, why it is refused or None)."""
        allowed = self.settings.allowed_origins
        origin = request.headers.get("origin")
        if origin is None and (referer := request.headers.get("referer")):
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        # The dashboard's own origin: the host the request was sent to (the scheme may differ
        # behind a proxy that ends TLS).
        own = request.headers.get("host", "")
        if origin is not None and origin not in allowed and urlsplit(origin).netloc != own:
            return origin, f"origin {origin} is not the dashboard's (see --allowed-origin)"
        if request.headers.get("sec-fetch-site") == "cross-site" and origin not in allowed:
            return origin, "a cross-site request"
        return origin, None

    def cross_site_login(self, request: Request) -> str | None:
        """Why a login form POST is refused, or None."""
        origin, refused = self._origin(request)
        if refused is None and origin is None:
            return "no Origin or Referer header"
        return refused

    def cross_site(self, request: Request) -> str | None:
        """Why an action (a POST) is refused as cross-site, or None when it may proceed."""
        origin, refused = self._origin(request)
        if refused is not None:
            return refused
        if self.bearer(request):
            return None  # a script with the token: no browser sends that by itself
        if origin is None:
            return "no Origin or Referer header"
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), self.csrf.encode()):
            return "missing or wrong CSRF token"
        return None


def is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response, and no-store to everything but the static
    files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class StripPrefix:
    """Serves the dashboard under its URL prefix, whether the request still carries it (an
    ingress that passes the path on) or not (`kubectl proxy`, a rewriting ingress)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            self.prefix
            and scope["type"] == "http"
            and (path == self.prefix or path.startswith(self.prefix + "/"))
        ):
            rest = path[len(self.prefix) :] or "/"
            scope = {**scope, "path": rest, "raw_path": rest.encode()}
        await self.app(scope, receive, send)
