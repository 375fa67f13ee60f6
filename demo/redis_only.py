"""`./dev demo --redis-only`: the quick look without Kubernetes. A real redis-server, a few
`blueque worker` processes and a producer, with a live view of the queue, its workers and its
events.

Everything it starts it stops by pid (workers with SIGTERM, so running tasks finish; then
Redis), whether it ends on time, on Ctrl-C, or on an error.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import deque
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from blueque import Client, Queue
from devtools.processes import Process, stop_all
from devtools.redis_servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "demo.videos"


def start_workers(url: str, count: int, log_dir: Path) -> list[Process]:
    blueque = Path(sys.executable).parent / "blueque"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLUEQUE_CANCEL_GRACE_S": "2"}
    return [
        Process.start(
            f"demo-worker-{i}",
            [
                str(blueque),
                "--url",
                url,
                "worker",
                QUEUE,
                "--task",
                "demo.tasks:work",
                "--worker-id",
                f"demo-worker-{i}",
            ],
            log_file=log_dir / f"demo-worker-{i}.log",
            cwd=ROOT,
            env=env,
        )
        for i in range(count)
    ]


def produce(queue: Queue, tick: int, n: int) -> tuple[int, str | None]:
    """One producer step: a burst now and then, some scheduled, some failing."""
    note = None
    if tick % 12 == 0:
        burst = [
            {
                "n": n + i,
                "seconds": round(random.uniform(0.5, 4.0), 1),
                "fail": random.random() < 0.1,
            }
            for i in range(random.randint(3, 8))
        ]
        queue.enqueue_many(burst)
        note = f"enqueued a burst of {len(burst)}"
        n += len(burst)
    if tick % 20 == 5:
        queue.schedule({"n": n, "seconds": 1.0}, delay=3)
        note = "scheduled a task 3 s ahead"
        n += 1
    return n, note


def render(queue: Queue, log: deque[str]) -> Group:
    s = queue.stats()
    stats = Table(title=f"queue {queue.name}", expand=True)
    for col in (
        "pending",
        "reserved",
        "running",
        "scheduled",
        "complete",
        "failed",
        "cancelled",
        "workers",
        "oldest wait",
    ):
        stats.add_column(col, justify="right")
    age = "-" if s.oldest_pending_age_s is None else f"{s.oldest_pending_age_s:.1f}s"
    stats.add_row(
        *(
            str(v)
            for v in (
                s.pending,
                s.reserved,
                s.running,
                s.scheduled,
                s.complete,
                s.failed,
                s.cancelled,
                s.workers,
            )
        ),
        age,
    )
    workers = Table(title="workers", expand=True)
    for col in ("worker", "state", "task", "progress", "for"):
        workers.add_column(col)
    for w in queue.workers():
        progress, since = "", ""
        if w.task:
            task = queue.get_task(w.task)
            progress = f"{(task.progress or {}).get('percent', 0)}%"
            since = f"{task.runtime_s or 0:.1f}s"
        workers.add_row(w.id, w.state, w.task or "", progress, since)
    return Group(stats, workers, Panel("\n".join(log), title="events"))


def run(seconds: float, worker_count: int) -> int:
    server = RedisServer().start()
    workers: list[Process] = []
    try:
        client = Client(server.url)
        queue = client.get_queue(QUEUE)
        workers = start_workers(server.url, worker_count, server.directory)
        log: deque[str] = deque(maxlen=8)
        log.append(f"redis-server on {server.url}; {worker_count} workers started")
        n, tick, deadline = 0, 0, time.monotonic() + seconds
        with queue.events() as events, Live(render(queue, log), refresh_per_second=4) as live:
            while time.monotonic() < deadline:
                n, note = produce(queue, tick, n)
                if note:
                    log.append(note)
                end = time.monotonic() + 0.25
                while (left := end - time.monotonic()) > 0:
                    event = events.next(timeout=left)
                    if event and event["event"] in ("complete", "failed", "requeued", "cancelled"):
                        task, by = event.get("task", ""), event.get("worker", "-")
                        log.append(f"{event['event']:>9}  {task}  by {by}")
                live.update(render(queue, log))
                tick += 1
            log.append("stopping workers (SIGTERM: running tasks finish first)")
            live.update(render(queue, log))
            stop_all(workers, grace_s=30)
            live.update(render(queue, log))
        s = queue.stats()
        done, failed = s.totals["completed"], s.totals["failed"]
        print(f"\ndone: {done} complete, {failed} failed, {s.pending} still pending")
        client.close()
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        stop_all(workers, grace_s=30)
        server.stop()
    return 0
