"""The running operator: Kopf's watches feed a `Fleet` of per-BlueQueue controllers.

Kopf is used for watching only (event handlers, no changing handlers, no daemons): so it puts
no finalizer and no annotation on BlueQueues (deleting one never hangs after the operator is
uninstalled), and it writes nothing at all. Every write is ours and passes the leader gate.
Kopf's own peering is off; `leader.LeaderElector` decides which replica acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from blueque_operator import world as w
from blueque_operator.builders import NAME_LABEL, WORKER_APP
from blueque_operator.controller import QueueController, Services
from blueque_operator.crd import GROUP, PLURAL, VERSION

log = logging.getLogger("blueque_operator")

Json = dict[str, Any]
WATCHED = (("", "v1", "pods"), ("apps", "v1", "deployments"), ("apps", "v1", "replicasets"))


class Fleet:
    """One controller per live BlueQueue, started and stopped by the BlueQueue watch."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.controllers: dict[str, QueueController] = {}
        self._by_key: dict[w.Key, QueueController] = {}

    def bluequeue_seen(self, event_type: str | None, body: Json) -> None:
        uid = body["metadata"]["uid"]
        if event_type == "DELETED" or "deletionTimestamp" in body["metadata"]:
            controller = self.controllers.pop(uid, None)
            if controller is not None:
                self._by_key.pop(controller.key, None)
                _spawn(controller.stop(deleted=True))
                self.services.world.forget(controller.key)
            return
        controller = self.controllers.get(uid)
        if controller is None:
            controller = self.controllers[uid] = QueueController(self.services, body)
            self._by_key[controller.key] = controller
            controller.start()
        else:
            controller.update(body)

    def object_seen(self, kind: str, event_type: str | None, body: Json) -> None:
        key = self.services.world.seen(kind, event_type, body)
        if key is None:
            return
        controller = self._by_key.get(key)
        if controller is None:
            return
        if kind == "pods" and event_type == "DELETED":
            _spawn(controller.pod_deleted(body["metadata"]["name"]))
        elif kind == "deployments":
            controller.wake()  # a hand edit is reconciled at once

    async def close(self) -> None:
        controllers = list(self.controllers.values())
        self.controllers.clear()
        self._by_key.clear()
        await asyncio.gather(*(c.stop(deleted=False) for c in controllers))


_TASKS: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(coro)
    _TASKS.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[Any]) -> None:
    _TASKS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background step failed", exc_info=task.exception())


def registry_for(
    fleet: Fleet,
    configure: Callable[[kopf.OperatorSettings], None],
    on_cleanup: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """A Kopf registry with the operator's handlers, bound to `fleet` (no module globals).
    `on_cleanup` runs once the fleet stopped, as soon as the operator is told to stop (Kopf
    itself may take seconds more to return)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # As kubectl: $KUBECONFIG (or ~/.kube/config) first, then the pod's service account.
        # Kopf's own handlers go through the client libraries, whose internals move.
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)  # type: ignore[arg-type]
    async def bluequeue(event: Json, **_: Any) -> None:
        fleet.bluequeue_seen(event.get("type"), event["object"])

    for group, version, plural in WATCHED:

        def seen(kind: str) -> Callable[..., Any]:
            async def handler(event: Json, **_: Any) -> None:
                fleet.object_seen(kind, event.get("type"), event["object"])

            return handler

        kopf.on.event(
            group,
            version,
            plural,
            labels={NAME_LABEL: WORKER_APP},
            registry=registry,
            id=f"watch-{plural}",
        )(seen(plural))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await fleet.close()
        if on_cleanup is not None:
            await on_cleanup()

    return registry


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Watching only: no peering, no posting of log lines as Events (an Event is a write, and
    only the leader writes), no CRD scanning (discovery once at start: less RBAC)."""
    settings.peering.standalone = True
    settings.posting.enabled = False
    settings.scanning.disabled = True
    settings.batching.batch_window = 0.05
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
