"""A deliberately small, typed Kubernetes REST client on the standard library.

The cluster manager needs a handful of calls (create nodes, wait for Ready, health checks) and the
tests need a few more (watch, status patches, requests as a service account). The official
clients are either untyped or asyncio-only; raw HTTPS with JSON keeps localkube dependency-free
and makes every request visible in the test. It is not meant as the operator's client.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from devtools.localkube.errors import ApiError
from devtools.processes import wait_until

__all__ = ["PATCH_JSON", "PATCH_MERGE", "PATCH_STRATEGIC", "ApiClient", "Json", "WatchStream"]

Json = dict[str, Any]

PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_JSON = "application/json-patch+json"


@dataclass(frozen=True)
class ApiClient:
    """HTTPS to one API server, as a client certificate or a bearer token."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None
    timeout_s: float = 30.0

    def with_token(self, token: str) -> ApiClient:
        """The same server, authenticated by `token` instead of the client certificate."""
        return ApiClient(self.host, self.port, self.ca_file, token=token, timeout_s=self.timeout_s)

    @functools.cached_property
    def _context(self) -> ssl.SSLContext:
        # Built once per client: loading the CA and the key on every poll would cost more
        # than the request itself.
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file))
        return context

    def _connect(self, timeout_s: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self._context, timeout=timeout_s
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "localkube"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def raw(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str | None = None,
    ) -> tuple[int, bytes]:
        """One request; the status and the undecoded answer (health endpoints answer text)."""
        conn = self._connect(self.timeout_s)
        try:
            conn.request(method, path, body=body, headers=self._headers(content_type))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        body: Json | list[Json] | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Json:
        """One request; the decoded JSON answer, or ApiError for any non-2xx status."""
        url = path + (f"?{urlencode(query)}" if query else "")
        payload = None if body is None else json.dumps(body).encode()
        status, raw = self.raw(
            method, url, payload, content_type=None if payload is None else content_type
        )
        if not 200 <= status < 300:
            raise ApiError(method, url, status, raw.decode(errors="replace"))
        if not raw:
            return {}
        decoded: Json = json.loads(raw)
        return decoded

    def get(self, path: str, query: dict[str, str] | None = None) -> Json:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Json) -> Json:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Json | list[Json], content_type: str = PATCH_MERGE) -> Json:
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, path: str) -> Json:
        return self.request("DELETE", path)

    def healthy(self, path: str = "/readyz") -> bool:
        """True when `path` answers 200; connection errors count as not (yet) healthy."""
        try:
            status, _ = self.raw("GET", path)
        except OSError:
            return False
        return status == 200

    def open_watch(
        self,
        path: str,
        *,
        resource_version: str = "",
        timeout_s: float = 60.0,
        query: dict[str, str] | None = None,
    ) -> WatchStream:
        """A watch of a collection path (`query`: e.g. a labelSelector), open until the server's
        timeout or `WatchStream.close()`, which any thread may call."""
        params = {**(query or {}), "watch": "true", "timeoutSeconds": str(max(1, int(timeout_s)))}
        if resource_version:
            params["resourceVersion"] = resource_version
        url = f"{path}?{urlencode(params)}"
        conn = self._connect(timeout_s + 5.0)
        try:
            conn.request("GET", url, headers=self._headers(None))
            response = conn.getresponse()
            if response.status != 200:
                raise ApiError("GET", url, response.status, response.read().decode())
        except BaseException:
            conn.close()
            raise
        return WatchStream(conn, response)

    def watch(
        self,
        path: str,
        *,
        resource_version: str = "",
        timeout_s: float = 60.0,
        query: dict[str, str] | None = None,
    ) -> Iterator[Json]:
        """Watch events ({"type": ..., "object": ...}) for a collection path, until timeout."""
        with self.open_watch(
            path, resource_version=resource_version, timeout_s=timeout_s, query=query
        ) as stream:
            yield from stream

    def wait_for(
        self,
        path: str,
        condition: Callable[[Json], bool],
        *,
        timeout_s: float = 30.0,
        what: str = "",
        poll_s: float = 0.1,
    ) -> Json:
        """Poll `path` until `condition(object)` is true; 404, 429 and 503 count as not yet.

        WaitTimeoutError (a TimeoutError) after `timeout_s`, with the object last seen."""
        last: list[Json | str] = ["never fetched"]

        def fetched() -> Json | None:
            try:
                obj = self.get(path)
            except ApiError as exc:
                # 429 "storage is (re)initializing" is what a freshly established CRD answers
                # for a moment; 404 is "not created yet".
                if exc.status not in (404, 429, 503):
                    raise
                last[0] = f"HTTP {exc.status}"
                return None
            last[0] = obj
            return obj if condition(obj) else None

        return wait_until(
            fetched,
            timeout_s,
            interval_s=poll_s,
            what=lambda: f"{what or path}; last seen: {json.dumps(last[0])[:2000]}",
        )


class WatchStream:
    """One open watch: iterating yields its events until the server ends it. `close()`, from
    any thread, shuts the socket down, so a reader blocked on the next event returns at once
    (a watch thread can be stopped without waiting for the server's timeout)."""

    def __init__(self, conn: http.client.HTTPSConnection, response: http.client.HTTPResponse):
        self._conn = conn
        self._response = response
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[Json]:
        try:
            while line := self._response.readline():
                if line.strip():
                    event: Json = json.loads(line)
                    yield event
        except (OSError, http.client.HTTPException, ValueError):
            if not self._closed.is_set():
                raise
        finally:
            self._conn.close()

    def close(self) -> None:
        self._closed.set()
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        self._conn.close()
