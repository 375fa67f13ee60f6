"""The dashboard's settings: one typed, validated object built by `blueque dashboard` (or by a
test), read by every other module of the package."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from blueque.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
_PREFIX = re.compile(r"(/[A-Za-z0-9._~:@!$&'()*+,;=%-]+)*")


@dataclass(frozen=True)
class DashboardSettings:
    host: str = DEFAULT_HOST
    """Where the server listens: loopback unless told otherwise."""
    port: int = DEFAULT_PORT
    url_prefix: str = ""
    """The path under which browsers reach the dashboard (`/blueque`; '' for the root).
    Requests may arrive with it (an ingress that passes the path on) or without it (`kubectl
    proxy`, an ingress that strips it): both are served, and every link carries it."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (`https://host[:port]`) besides the request's own from which an action (a
    POST) is accepted: what a browser shows when a proxy rewrites the Host header."""
    token: str | None = field(default=None, repr=False)
    """Reading and acting need this token: `Authorization: Bearer <token>`, or the cookie
    the login page sets."""
    basic_user: str | None = None
    basic_password: str | None = field(default=None, repr=False)
    """HTTP basic auth: this user and password (either auth is accepted when both are set)."""
    allow_actions: bool = False
    """Mount the action routes (cancel, retry, bulk retry); without it they do not exist."""
    insecure_no_auth: bool = False
    """Serve without auth on a non-loopback address (behind an authenticating proxy)."""
    refresh_s: float = 1.5
    """The shared refresh: what no event announces (heartbeat ages, a worker registering, a
    config change, a new queue) is re-read this often."""
    debounce_s: float = 1.0
    """Stats of a queue are re-read at most this often, however many events arrive."""
    spark_refresh_s: float = 10.0
    """Throughput and failure sparklines (from the finished indexes) are re-read this often."""
    keepalive_s: float = 15.0
    """A comment line on an idle event stream this often, so proxies keep it open."""
    page_buffer: int = 1000
    """Messages buffered for one page; a page further behind gets a fresh snapshot instead."""
    max_value_chars: int = 20_000
    """A parameter, result, progress or traceback longer than this (as JSON text) is cut, in
    pages and in the JSON API."""
    finished_scan: int = 500
    """The finished view looks at this many newest tasks per state (filters apply to them)."""
    kube: bool | None = None
    """The scaling view: on, off, or (None) on when a kubeconfig or a service account is
    found."""
    kube_namespaces: tuple[str, ...] = ()
    """List BlueQueues in these namespaces only (none: cluster-wide)."""
    scaling_interval_s: float = 5.0
    """How often the BlueQueues and their Events are read (and history sampled)."""
    history_s: float = 7200.0
    """How much scaling history is kept in memory, per BlueQueue."""
    secure_cookie: bool = False
    """Mark the login cookie `Secure` (set when the browser reaches the dashboard by https)."""

    def validated(self) -> DashboardSettings:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {self.port}")
        prefix = self.url_prefix.rstrip("/")
        if prefix and (not prefix.startswith("/") or not _PREFIX.fullmatch(prefix)):
            raise ConfigError(f"--url-prefix must be a path like /blueque, got {self.url_prefix!r}")
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ConfigError(f"--allowed-origin must be scheme://host[:port], got {origin!r}")
        if self.token is not None and len(self.token) < 16:
            raise ConfigError("the dashboard token must be at least 16 characters")
        if (self.basic_user is None) != (self.basic_password is None):
            raise ConfigError(
                "basic auth needs both --basic-user and BLUEQUE_DASHBOARD_PASSWORD"
                " (or --password-file)"
            )
        if not self.auth_enabled and not self.insecure_no_auth and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve {self.host} without auth: task parameters and results are"
                " user data. Set BLUEQUE_DASHBOARD_TOKEN (or --token-file), or --basic-user,"
                " or --insecure-no-auth behind a proxy that authenticates"
            )
        for name in (
            "refresh_s",
            "debounce_s",
            "spark_refresh_s",
            "keepalive_s",
            "scaling_interval_s",
            "history_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive")
        if self.page_buffer < 10 or self.max_value_chars < 100 or self.finished_scan < 1:
            raise ConfigError("page_buffer >= 10, max_value_chars >= 100, finished_scan >= 1")
        return self

    @property
    def prefix(self) -> str:
        """The URL prefix without its trailing slash ('' for the root)."""
        return self.url_prefix.rstrip("/")

    @property
    def auth_enabled(self) -> bool:
        return self.token is not None or self.basic_user is not None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
