"""The running operator: Kopf's watches feed a `Fleet` of per-BlueQueue controllers.

Kopf is used for watching only (event handlers, no changing handlers, no daemons): so it puts
no finalizer and no annotation on BlueQueues (deleting one never hangs after the operator is
uninstalled), and it writes nothing at all. Every write is ours and passes the leader gate.
Kopf's own peering is off; `leader.LeaderElector` decides which replica acts.

Stopping is ours too (`run_kopf`): SIGTERM and SIGINT set the operator's stop event in place of
Kopf's handlers, the operator stops acting (`on_stop`), and only then is Kopf told to stop, with
`KOPF_EXIT_S` to end its watches. Kopf's own handlers stop the watches first and run the
`on.cleanup` handlers after them; and when a signal stops a Kopf that was also given a stop flag,
Kopf waits 5 s for its own waiter of that flag (a "hung" task to it) before it returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import kopf

from blueque_operator import world as w
from blueque_operator.builders import NAME_LABEL, WORKER_APP
from blueque_operator.controller import QueueController, Services
from blueque_operator.crd import GROUP, PLURAL, VERSION

log = logging.getLogger("blueque_operator")

Json = dict[str, Any]
WATCHED = (("", "v1", "pods"), ("apps", "v1", "deployments"), ("apps", "v1", "replicasets"))
KOPF_EXIT_S = 2.0
"""How long Kopf gets to end its watches once told to (it takes milliseconds); then it is
cancelled: by then the operator no longer acts, so nothing Kopf still does matters."""


class Fleet:
    """One controller per live BlueQueue, started and stopped by the BlueQueue watch."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.controllers: dict[str, QueueController] = {}
        self._by_key: dict[w.Key, QueueController] = {}
        self._closed = False  # Kopf may deliver events for a while after the fleet stopped

    def bluequeue_seen(self, event_type: str | None, body: Json) -> None:
        if self._closed:
            return
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
        if self._closed:
            return
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
        """Stops every controller; events seen afterwards are ignored."""
        self._closed = True
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


def registry_for(fleet: Fleet, configure: Callable[[kopf.OperatorSettings], None]) -> Any:
    """A Kopf registry with the operator's handlers, bound to `fleet` (no module globals)."""
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

    return registry


async def run_kopf(
    registry: Any,
    *,
    clusterwide: bool,
    namespaces: Sequence[str],
    stop: asyncio.Event,
    on_stop: Callable[[], Awaitable[None]],
) -> None:
    """Runs Kopf with `registry` until `stop` is set (SIGTERM and SIGINT set it) or Kopf ends
    by itself, then awaits `on_stop()`, then stops Kopf (at most 2 x `KOPF_EXIT_S`). An error
    Kopf ended with by itself is raised; one met while it was being stopped is only logged."""
    before = asyncio.all_tasks()  # Kopf cancels every other task left once it has stopped
    kopf_stop = asyncio.Event()
    tasks = await kopf.spawn_tasks(
        registry=registry,
        clusterwide=clusterwide,
        namespaces=list(namespaces),
        standalone=True,
        stop_flag=kopf_stop,
    )

    def on_signal(signum: signal.Signals) -> None:
        log.info("%s received: stopping", signum.name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # after spawn_tasks, which set Kopf's own
        loop.add_signal_handler(signum, on_signal, signum)
    kopf_task = asyncio.create_task(kopf.run_tasks(tasks, ignored=before), name="kopf")
    stopped = asyncio.create_task(stop.wait(), name="stop")
    ended_by_itself = False
    try:
        await asyncio.wait({kopf_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        ended_by_itself = kopf_task.done()
    finally:
        stopped.cancel()
        try:
            await on_stop()
        finally:
            kopf_stop.set()
            await _stop_kopf(kopf_task)
    if kopf_task.done() and not kopf_task.cancelled() and kopf_task.exception() is not None:
        if ended_by_itself:
            kopf_task.result()  # raises it
        log.error("Kopf failed while stopping", exc_info=kopf_task.exception())


async def _stop_kopf(task: asyncio.Task[None]) -> None:
    if (await asyncio.wait({task}, timeout=KOPF_EXIT_S))[0]:
        return
    log.warning("Kopf did not stop within %g s: cancelling it", KOPF_EXIT_S)
    task.cancel()
    if not (await asyncio.wait({task}, timeout=KOPF_EXIT_S))[0]:
        log.warning("Kopf did not end when cancelled: leaving it")


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Watching only: no peering, no posting of log lines as Events (an Event is a write, and
    only the leader writes), no CRD scanning (discovery once at start: less RBAC)."""
    settings.peering.standalone = True
    settings.posting.enabled = False
    settings.scanning.disabled = True
    # No batch window: Kopf 1.45 handles each object's events as they arrive (what the 0.05 s
    # window we set came close to); its `batching.batch_window` only warns and changes nothing.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # How long Kopf's watches, told to stop, wait for its per-object workers to handle what
    # they queued (2 s by default): by then the fleet is closed, and those events change nothing.
    settings.queueing.exit_timeout = 0.2
