"""`PodWatch`: list, then watch, the pods the runner plays, in threads of their own.

One thread per namespace (or one for all). Each hands what it sees to a sink, in order: a `Listed`
after every (re)list, so the receiver learns of pods deleted while no watch was open, then each
watch event. A watch the server ends is resumed from the last version (bookmarks keep it fresh);
a 410 Gone, or any failure, lists again. `close()` shuts the open watches down at once instead of
waiting for the server's timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from devtools.localkube.api import ApiClient, Json, WatchStream

__all__ = ["Listed", "PodWatch"]

log = logging.getLogger("devtools.podrunner")

_WATCH_TIMEOUT_S = 300.0
_RETRY_S = 0.5


@dataclass(frozen=True)
class Listed:
    """Every matching pod of `namespace` (None: of all namespaces) at one resource version."""

    namespace: str | None
    items: list[Json]


class PodWatch:
    def __init__(
        self,
        api: ApiClient,
        namespaces: tuple[str, ...],
        label_selector: str,
        sink: Callable[[Json | Listed], None],
    ) -> None:
        self.api = api
        self.namespaces = namespaces
        self.query = {"labelSelector": label_selector} if label_selector else {}
        self.sink = sink
        self._stopping = threading.Event()
        self._streams: set[WatchStream] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for namespace in self.namespaces or (None,):
            thread = threading.Thread(
                target=self._watch_forever,
                args=(namespace,),
                name=f"pod-runner-watch-{namespace or 'all'}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def close(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            for stream in self._streams:
                stream.close()
        for thread in self._threads:
            thread.join(timeout_s)

    def _watch_forever(self, namespace: str | None) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        version = ""
        while not self._stopping.is_set():
            try:
                if not version:
                    listed = self.api.get(path, self.query)
                    version = listed["metadata"]["resourceVersion"]
                    self.sink(Listed(namespace, listed["items"]))
                version = self._watch_once(path, version)
            except Exception as exc:  # the API restarting, a dropped connection: list again
                if self._stopping.is_set():
                    return
                log.warning("pod runner: watch of %s failed, listing again: %s", path, exc)
                version = ""
                self._stopping.wait(_RETRY_S)

    def _watch_once(self, path: str, version: str) -> str:
        """Watches from `version` until the server ends it; the version to resume from ("":
        list again)."""
        stream = self.api.open_watch(
            path,
            resource_version=version,
            timeout_s=_WATCH_TIMEOUT_S,
            query={**self.query, "allowWatchBookmarks": "true"},
        )
        with self._lock:
            if self._stopping.is_set():
                stream.close()
            self._streams.add(stream)
        try:
            with stream:
                for event in stream:
                    if event["type"] == "ERROR":  # 410 Gone: that version is compacted away
                        return ""
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        self.sink(event)
        finally:
            with self._lock:
                self._streams.discard(stream)
        return version
