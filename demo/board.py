"""The Kubernetes demo's live view: what one refresh shows, read from the BlueQueue's status, the
queue, the worker pods and the operator's Events, and drawn with rich. No process is started or
stopped here."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table

from blueque import Queue
from devtools.localkube.api import ApiClient, Json
from devtools.podrunner import PodRunner

__all__ = ["Board", "PodRow", "Snapshot", "render"]

REAP_REASON = "WorkerReaped"


@dataclass(frozen=True)
class PodRow:
    name: str
    phase: str
    """Pending, Running, or Terminating (deletion begun)."""
    process: str
    """What the pod runner runs for it: "pid N", "waiting", "exited"."""
    worker: str
    """The worker's state in Redis (idle, busy, draining...), "-" before it registers."""
    task: str
    running_s: float | None


@dataclass(frozen=True)
class Snapshot:
    bluequeue: str
    status: Json
    pending: int
    running: int
    completed: int
    requeued: int
    """Tasks given back to the queue because their worker was lost (the reaper's doing here)."""
    pods: list[PodRow]
    reasons: Counter[str]
    events: list[str]
    elapsed_s: float
    left_s: float

    @property
    def replicas(self) -> int:
        return int(self.status.get("replicas", 0))

    @property
    def desired(self) -> int:
        return int(self.status.get("desiredReplicas", 0))


@dataclass
class Board:
    """Reads one snapshot per refresh; keeps the event lines and counts between refreshes."""

    api: ApiClient
    namespace: str
    bluequeue: str
    queue: Queue
    workers: PodRunner
    started: float = field(default_factory=time.monotonic)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    reasons: Counter[str] = field(default_factory=Counter)
    echo: Callable[[str], None] | None = None
    """Also prints each event line (without a terminal, there is no live view)."""
    _seen_events: set[str] = field(default_factory=set)

    def note(self, line: str) -> None:
        self.lines.append(f"{time.monotonic() - self.started:6.1f}s  {line}")
        if self.echo is not None:
            self.echo(self.lines[-1])

    def snapshot(self, left_s: float) -> Snapshot:
        self._read_events()
        status = self.api.get(
            f"/apis/blueque.io/v1alpha1/namespaces/{self.namespace}/bluequeues/{self.bluequeue}"
        ).get("status", {})
        stats = self.queue.stats()
        return Snapshot(
            bluequeue=self.bluequeue,
            status=status,
            pending=stats.pending + stats.reserved,
            running=stats.running,
            completed=stats.totals.get("completed", 0),
            requeued=stats.totals.get("requeued", 0),
            pods=self._pods(),
            reasons=Counter(self.reasons),
            events=list(self.lines),
            elapsed_s=time.monotonic() - self.started,
            left_s=left_s,
        )

    def _read_events(self) -> None:
        """The operator's Events on the BlueQueue not shown yet, oldest first."""
        name = self.bluequeue
        items = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/events",
            {"fieldSelector": f"involvedObject.kind=BlueQueue,involvedObject.name={name}"},
        )["items"]
        fresh = [e for e in items if e["metadata"]["uid"] not in self._seen_events]
        fresh.sort(
            key=lambda e: (e["metadata"].get("creationTimestamp", ""), e["metadata"]["name"])
        )
        for event in fresh:
            self._seen_events.add(event["metadata"]["uid"])
            self.reasons[event["reason"]] += int(event.get("count") or 1)
            self.note(f"[{_style(event)}]{event['reason']}[/]: {event['message']}")

    def _pods(self) -> list[PodRow]:
        pods = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/pods",
            {"labelSelector": f"blueque.io/bluequeue={self.bluequeue}"},
        )["items"]
        runner = {s.name: s for s in self.workers.statuses()}
        workers = {w.id: w for w in self.queue.workers()}
        now = datetime.now(UTC)
        rows = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]):
            name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if "deletionTimestamp" in pod["metadata"]:
                phase = "Terminating"
            status = runner.get(name)
            process: str = "-" if status is None else status.state
            if status is not None and status.state == "running":
                process = f"pid {status.pid}"
            worker = workers.get(name)
            since = worker.task_started_at if worker is not None else None
            rows.append(
                PodRow(
                    name=name,
                    phase=phase,
                    process=process,
                    worker=worker.state if worker is not None else "-",
                    task=(worker.task or "") if worker is not None else "",
                    running_s=(now - since).total_seconds() if since is not None else None,
                )
            )
        return rows


def render(snap: Snapshot, footer: str) -> RenderableType:
    head = Table(title=f"BlueQueue {snap.bluequeue}: the operator scales its workers", expand=True)
    for column in ("pending", "running", "replicas", "desired", "completed", "scaled", "reaped"):
        head.add_column(column, justify="right")
    head.add_row(
        str(snap.pending),
        str(snap.running),
        f"[bold]{snap.replicas}[/]",
        str(snap.desired),
        str(snap.completed),
        f"↑{snap.reasons['ScaledUp']} ↓{snap.reasons['ScaledDown']}",
        str(snap.requeued),
    )
    pods = Table(
        title="worker pods (each one a `blueque worker` process on this host)", expand=True
    )
    for column in ("pod", "phase", "process", "worker", "task", "for"):
        pods.add_column(column)
    for row in snap.pods:
        pods.add_row(
            row.name,
            row.phase,
            row.process,
            row.worker,
            row.task.rpartition(":")[2][:12],
            "" if row.running_s is None else f"{row.running_s:.1f}s",
        )
    reason = snap.status.get("lastScaleReason") or "-"
    events = Panel("\n".join(snap.events) or "-", title="events", subtitle=f"last scale: {reason}")
    clock = f"{snap.elapsed_s:.0f} s, {max(0.0, snap.left_s):.0f} s left. {footer}"
    return Group(head, pods, events, clock)


def _style(event: Json) -> str:
    if event.get("type") == "Warning":
        return "yellow"
    return {"ScaledUp": "green", "ScaledDown": "cyan", REAP_REASON: "magenta"}.get(
        event["reason"], "white"
    )
