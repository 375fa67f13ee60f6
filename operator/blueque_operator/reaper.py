"""Requeueing the tasks of workers whose pods are gone.

A worker's id is its pod's name, and its registry entry names the BlueQueue that owns it
(`owner`, the BlueQueue's UID). The operator requeues a worker's in-progress list when:

- its pod was DELETED (a watch event): at once. Never on a deletionTimestamp alone: a
  terminating pod may still be finishing its task under its grace period;
- the sweep (every tick, from the last observation) finds an owned worker whose pod the watch
  does not know, and a direct GET answers 404: events missed while no operator ran;
- its pod is on a partitioned node, which never produces DELETED: the worker's heartbeat has
  expired and either the pod has been terminating for longer than its grace period plus
  `PARTITION_MARGIN_S`, or its node is NotReady (nodes are read only where the operator may
  read them; in single-namespace mode only the first rule applies). A worker cut off from
  Redis but still running then runs its task a second time elsewhere; its own late finish is
  fenced and dropped (PROTOCOL.md), which is the price of not waiting forever.

Workers of other owners (a `blueque worker` on a laptop) are never reaped here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from blueque.aio import AsyncQueue
from blueque.records import QueueObservation, WorkerObservation
from blueque_operator.errors import KubeError
from blueque_operator.kube import Kube
from blueque_operator.status import epoch
from blueque_operator.world import Key, World

log = logging.getLogger("blueque_operator")

POD_DELETED = "worker lost: pod deleted"
POD_MISSING = "worker lost: pod not found"
NODE_LOST = "worker lost: node unreachable"
PARTITION_MARGIN_S = 30.0
CONFIRM_EVERY_S = 5.0
"""A worker whose pod the watch does not show is checked with a GET at most this often."""


@dataclass(frozen=True)
class Reaped:
    worker: str
    reason: str
    requeued: int
    failed: int


class Reaper:
    """Finds the dead workers of one BlueQueue (`owner`, its UID) and requeues their tasks on
    the queue it is given; the caller reports what it returns (Events, metrics)."""

    def __init__(
        self,
        owner: str,
        key: Key,
        world: World,
        kube: Kube,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.owner, self.key, self.world, self.kube, self.clock = owner, key, world, kube, clock
        self._checked: dict[str, float] = {}

    async def pod_deleted(
        self, queue: AsyncQueue, last: QueueObservation | None, pod: str
    ) -> Reaped | None:
        """The pod of worker `pod` is gone: requeue its tasks if the worker is ours. Library
        errors (Redis down) propagate: the sweep retries once Redis answers."""
        known = _find(last, pod) or _find(await queue.observe(), pod)
        if known is None or known.owner != self.owner:
            return None
        return await self._requeue(queue, pod, POD_DELETED)

    async def sweep(self, queue: AsyncQueue, observed: QueueObservation) -> list[Reaped]:
        reaped: list[Reaped] = []
        namespace = self.key[0]
        now = time.monotonic()
        for worker in observed.workers:
            if worker.owner != self.owner or not worker.registered:
                continue
            pod = self.world.pod(self.key, worker.id)
            if pod is None:
                if now - self._checked.get(worker.id, 0.0) < CONFIRM_EVERY_S:
                    continue
                self._checked[worker.id] = now
                try:
                    live = await self.kube.get_pod(namespace, worker.id)
                except KubeError as exc:
                    log.warning("%s: cannot check pod %s: %s", self.key, worker.id, exc)
                    continue
                if live is None:
                    reaped.append(await self._requeue(queue, worker.id, POD_MISSING))
                continue
            if not worker.alive and await self._partitioned(pod):
                reaped.append(await self._requeue(queue, worker.id, NODE_LOST))
        self._checked = {k: v for k, v in self._checked.items() if now - v < 60}
        return reaped

    async def _partitioned(self, pod: dict[str, Any]) -> bool:
        if partitioned(pod, None, self.clock()):
            return True
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return False
        try:
            obj = await self.kube.get_node(node)
        except KubeError:
            return False  # not allowed to read nodes (namespace mode), or the API is down
        return partitioned(pod, obj or {}, self.clock())

    async def _requeue(self, queue: AsyncQueue, worker: str, reason: str) -> Reaped:
        requeued, failed = await queue.requeue_worker(worker, reason)
        return Reaped(worker, reason, requeued, failed)


def partitioned(pod: dict[str, Any], node: dict[str, Any] | None, now: float) -> bool:
    """Whether the pod of a worker whose heartbeat expired is on the wrong side of a partition:
    terminating past its deletionTimestamp (which includes the grace period) by
    `PARTITION_MARGIN_S`, or on a node that is NotReady or gone (`node` {}). `node` None: not
    read (yet)."""
    deleting_at = epoch((pod.get("metadata") or {}).get("deletionTimestamp"))
    if deleting_at is not None and now > deleting_at + PARTITION_MARGIN_S:
        return True
    if node is None:
        return False
    if not node:
        return True  # the node object was deleted
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") != "True")
    return False


def _find(observed: QueueObservation | None, worker: str) -> WorkerObservation | None:
    if observed is None:
        return None
    return next((o for o in observed.workers if o.id == worker), None)
