"""The scaling view: the BlueQueues that drive these queues, what they decided over time, and
why (their Events and conditions).

**Reading, never writing.** BlueQueues and their Events are listed with the Kubernetes client
configured as kubectl would be (`$KUBECONFIG` or `~/.kube/config`, else the pod's service
account): cluster-wide, or in the namespaces given (`--kube-namespace`, for a Role in each).
The chart grants exactly that (`get`, `list` on bluequeues and events).

**Matching.** A BlueQueue drives one of our queues when the queue's claim (`P owner`, which
the operator renews every tick with the BlueQueue's UID; PROTOCOL.md "Ownership") holds that
UID and the BlueQueue's key prefix is the dashboard's namespace. Never by comparing Redis
URLs: the same Redis has many names (a Service, a pod IP, a port-forward). A BlueQueue whose
queue is not claimed by it (another BlueQueue holds it, its operator is down) is shown
unmatched, with the reason.

**History lives in memory, since the dashboard started.** Every `interval_s` the dashboard
samples each BlueQueue's status (replicas, desired, pending, running) into a ring of
`history_s`, and keeps every scale, reap and warning Event it has seen (Kubernetes deletes
Events after an hour; these are kept while the dashboard runs, up to 200 per BlueQueue). A
restarted dashboard starts a new history: the operator's state is in the BlueQueue's status
and Events, and Redis holds only the queue's own keys (no history written by a read-only
view).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from blueque.connection import redact
from blueque.dashboard.hub import FAILURES, Hub, cancel_all
from blueque.keys import DEFAULT_NAMESPACE
from blueque.steps import command

log = logging.getLogger("blueque.dashboard")

Json = dict[str, Any]
GROUP_VERSION = "blueque.io/v1alpha1"
EVENTS_KEPT = 200
SCALE_REASONS = ("ScaledUp", "ScaledDown")


@dataclass(frozen=True)
class BlueQueueRef:
    """What the view needs of one BlueQueue object."""

    namespace: str
    name: str
    uid: str
    queue: str
    key_prefix: str
    status: Mapping[str, Any]

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> BlueQueueRef:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        redis_spec = spec.get("redis") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            queue=str(spec.get("queue") or meta.get("name", "")),
            key_prefix=str(redis_spec.get("keyPrefix") or DEFAULT_NAMESPACE),
            status=obj.get("status") or {},
        )


def why_unmatched(
    ref: BlueQueueRef, owners: Mapping[str, str | None], key_prefix: str
) -> str | None:
    """None when `ref` drives our queue of its name; else why not, in a few words."""
    if ref.key_prefix != key_prefix:
        return f"key prefix {ref.key_prefix!r}, not this dashboard's {key_prefix!r}"
    if ref.queue not in owners:
        return f"no queue {ref.queue} in this Redis"
    holder = owners[ref.queue]
    if holder is None:
        return f"queue {ref.queue} is not claimed by any operator"
    if holder != ref.uid:
        return f"queue {ref.queue} is claimed by another BlueQueue (UID {holder})"
    return None


def event_doc(event: Mapping[str, Any]) -> Json:
    meta = event.get("metadata") or {}
    when = event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    return {
        "id": meta.get("uid") or meta.get("name"),
        "time": when,
        "time_ms": _ms(when),
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": str(event.get("message") or "")[:1024],
        "count": event.get("count") or 1,
    }


def _ms(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


@dataclass
class History:
    """Samples and Events per BlueQueue UID, since the dashboard started."""

    history_s: float
    interval_s: float
    samples: dict[str, deque[list[int | None]]] = field(default_factory=dict)
    events: dict[str, dict[str, Json]] = field(default_factory=dict)

    def sample(self, ref: BlueQueueRef, now_ms: int) -> None:
        size = max(2, int(self.history_s / self.interval_s))
        ring = self.samples.setdefault(ref.uid, deque(maxlen=size))
        s = ref.status

        def number(name: str) -> int | None:
            value = s.get(name)
            return int(value) if isinstance(value, int | float) else None

        ring.append(
            [
                now_ms,
                number("replicas"),
                number("desiredReplicas"),
                number("pending"),
                number("running"),
            ]
        )

    def remember(self, uid: str, events: Iterable[Mapping[str, Any]]) -> None:
        kept = self.events.setdefault(uid, {})
        for event in events:
            doc = event_doc(event)
            kept[str(doc["id"])] = doc
        if len(kept) > EVENTS_KEPT:
            newest = sorted(kept.values(), key=lambda d: d["time_ms"] or 0)[-EVENTS_KEPT:]
            self.events[uid] = {str(d["id"]): d for d in newest}

    def forget_except(self, uids: set[str]) -> None:
        for store in (self.samples, self.events):
            for uid in [u for u in store if u not in uids]:
                del store[uid]


class KubeReader:
    """Lists BlueQueues and their Events, read-only, with the official client (in a thread:
    it is synchronous)."""

    def __init__(self, namespaces: Sequence[str] = ()) -> None:
        import kubernetes  # the dashboard extra's; imported only when the view is on

        config = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(client_configuration=config)  # type: ignore[no-untyped-call]
            self.source = "kubeconfig"
        except kubernetes.config.ConfigException:
            kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            self.source = "in-cluster service account"
        self.api = kubernetes.client.ApiClient(config)
        self.namespaces = tuple(namespaces)

    def _get(self, path: str, query: Mapping[str, str] | None = None) -> Json:
        import kubernetes

        serialized = self.api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*serialized, _request_timeout=10)
            data = response.read()  # type: ignore[no-untyped-call]
        except kubernetes.client.ApiException as exc:
            raise KubeReadError(f"GET {path}: {exc.status} {exc.reason}") from None
        except OSError as exc:
            raise KubeReadError(f"GET {path}: {exc}") from None
        if not 200 <= response.status <= 299:
            raise KubeReadError(f"GET {path}: {response.status} {_message(data)}")
        found: Json = json.loads(data)
        return found

    def bluequeues(self) -> list[Json]:
        if not self.namespaces:
            return list(self._get(f"/apis/{GROUP_VERSION}/bluequeues")["items"])
        items: list[Json] = []
        for ns in self.namespaces:
            items += self._get(f"/apis/{GROUP_VERSION}/namespaces/{ns}/bluequeues")["items"]
        return items

    def events(self, namespace: str) -> list[Json]:
        path = f"/api/v1/namespaces/{namespace}/events"
        return list(self._get(path, {"fieldSelector": "involvedObject.kind=BlueQueue"})["items"])

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


class KubeReadError(Exception):
    """A read the API server refused or could not answer (shown in the view)."""


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return data[:300].decode(errors="replace")


class ScalingWatcher:
    """Reads the BlueQueues every `interval_s`, keeps their history, and sends the scaling
    document to the pages that show it."""

    def __init__(
        self, hub: Hub, reader: KubeReader, interval_s: float = 5.0, history_s: float = 7200
    ) -> None:
        self.hub = hub
        self.reader = reader
        self.interval_s = interval_s
        self.history = History(history_s, interval_s)
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    def start(self) -> None:
        self.hub.extras["scaling"] = self._document([], None, "reading the BlueQueues…")
        self._task = asyncio.create_task(self._loop(), name="dashboard scaling")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_all([self._task])
        self.reader.close()

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> None:
        try:
            objects = await asyncio.to_thread(self.reader.bluequeues)
        except KubeReadError as exc:
            if str(exc) != self._last_error:  # once per distinct failure, not every tick
                log.warning("scaling view: %s", exc)
            self._last_error = str(exc)
            self.hub.publish_extra("scaling", self._document([], None, str(exc)))
            return
        self._last_error = None
        refs = [BlueQueueRef.parse(o) for o in objects]
        owners = await self._owners({r.queue for r in refs if r.key_prefix == self._prefix})
        now_ms = int(time.time() * 1000)
        for ref in refs:
            self.history.sample(ref, now_ms)
        for namespace in sorted({r.namespace for r in refs}):
            try:
                events = await asyncio.to_thread(self.reader.events, namespace)
            except KubeReadError as exc:
                log.info("scaling view: events of %s: %s", namespace, exc)
                continue
            by_uid: dict[str, list[Json]] = {}
            for event in events:
                uid = (event.get("involvedObject") or {}).get("uid")
                if uid:
                    by_uid.setdefault(str(uid), []).append(event)
            for uid, found in by_uid.items():
                self.history.remember(uid, found)
        self.history.forget_except({r.uid for r in refs})
        self.hub.publish_extra("scaling", self._document(refs, owners, None))

    @property
    def _prefix(self) -> str:
        return self.hub.client.namespace

    async def _owners(self, queues: set[str]) -> dict[str, str | None]:
        """Each queue's claim holder (None: unclaimed); queues not in this Redis left out."""
        known = set(self.hub.feeds) | set(await self._registered())
        owners: dict[str, str | None] = {}
        for name in sorted(queues & known):
            queue = self.hub.client.get_queue(name)
            try:
                holder = await queue.run(command("GET", queue.keys.owner))
            except FAILURES as exc:
                log.info("scaling view: claim of %s: %s", name, redact(str(exc)))
                continue
            owners[name] = str(holder) if holder else None
        return owners

    async def _registered(self) -> list[str]:
        try:
            return await self.hub.client.queues()
        except FAILURES:
            return []

    def _document(
        self,
        refs: Sequence[BlueQueueRef],
        owners: Mapping[str, str | None] | None,
        error: str | None,
    ) -> Json:
        views = []
        for ref in sorted(refs, key=lambda r: (r.namespace, r.name)):
            unmatched = why_unmatched(ref, owners or {}, self._prefix)
            s = ref.status
            views.append(
                {
                    "namespace": ref.namespace,
                    "name": ref.name,
                    "uid": ref.uid,
                    "queue": ref.queue,
                    "key_prefix": ref.key_prefix,
                    "matched": unmatched is None,
                    "unmatched": unmatched,
                    "replicas": s.get("replicas"),
                    "desired": s.get("desiredReplicas"),
                    "pending": s.get("pending"),
                    "running": s.get("running"),
                    "workers": s.get("workers"),
                    "last_scale_time": s.get("lastScaleTime"),
                    "last_scale_reason": s.get("lastScaleReason"),
                    "conditions": [
                        {k: c.get(k) for k in ("type", "status", "reason", "message")}
                        for c in s.get("conditions") or []
                    ],
                    "history": list(self.history.samples.get(ref.uid, ())),
                    "events": sorted(
                        self.history.events.get(ref.uid, {}).values(),
                        key=lambda d: d["time_ms"] or 0,
                    ),
                }
            )
        return {
            "enabled": True,
            "source": self.reader.source,
            "key_prefix": self._prefix,
            "interval_s": self.interval_s,
            "history_s": self.history.history_s,
            "error": error,
            "bluequeues": views,
        }
