"""Blueque under test: producers through `Queue`, workers through the two runners' `run`.

Run as `python -m bench.blueque_system worker MODE URL QUEUE` it is the worker subprocess.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.harness import report_rusage
from blueque import Client, Task, forking_runner, inprocess_runner
from blueque.events import EventStream

PREFILL_BATCH = 1000
FINISHED_EVENTS = frozenset({"complete", "failed", "cancelled"})


def noop(task: Task) -> float:
    return time.time()


class BluequeSystem:
    name = "blueque"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = Client(url)
        self._subscriptions: dict[str, EventStream] = {}

    def enqueue(self, queue: str, n: int) -> float:
        q = self.client.get_queue(queue)
        q.enqueue(None)  # registers the queue and loads the script: not part of the loop
        start = time.perf_counter()
        for _ in range(n):
            q.enqueue(None)
        return time.perf_counter() - start

    def enqueue_many(self, queue: str, n: int, batch: int) -> float:
        q = self.client.get_queue(queue)
        q.enqueue(None)
        params = [None] * batch
        start = time.perf_counter()
        for done in range(0, n, batch):
            q.enqueue_many(params[: min(batch, n - done)])
        return time.perf_counter() - start

    def prefill(self, queue: str, n: int) -> tuple[Any, Any]:
        q = self.client.get_queue(queue)
        ids: list[str] = []
        for done in range(0, n, PREFILL_BATCH):
            ids += q.enqueue_many([None] * min(PREFILL_BATCH, n - done))
        return ids[0], ids[-1]

    def started_at(self, handle: Any) -> float | None:
        task = self.client.get_task(handle)
        return float(task.result) if task.status == "complete" else None

    def latency_sample(self, queue: str) -> tuple[float, float, float]:
        q = self.client.get_queue(queue)
        t0 = time.time()
        task = q.wait(q.enqueue(None), timeout=10)
        t_done = time.time()
        return t0, float(task.result), t_done

    def latency_sample_subscribed(self, queue: str) -> tuple[float, float, float]:
        """A diagnostic, not the public wait: the queue's event subscription is opened once
        and kept, as `Task.wait` could do, instead of a new one per wait."""
        q = self.client.get_queue(queue)
        events = self._subscriptions.get(queue)
        if events is None:
            events = self._subscriptions[queue] = q.events().__enter__()
        t0 = time.time()
        task_id = q.enqueue(None)
        while True:
            event = events.next(timeout=10)
            if event is None:
                raise TimeoutError(f"task {task_id} not finished within 10 s")
            if event.get("task") == task_id and event.get("event") in FINISHED_EVENTS:
                break
        task = self.client.get_task(task_id)  # the result, read as Task.wait reads it
        return t0, float(task.result), time.time()

    def worker_command(self, mode: str, queue: str) -> list[str]:
        return [sys.executable, "-m", "bench.blueque_system", "worker", mode, self.url, queue]

    def close(self) -> None:
        for events in self._subscriptions.values():
            events.__exit__(None, None, None)
        self.client.close()


def worker_main(mode: str, url: str, queue: str) -> int:
    client = Client(url)
    with report_rusage():
        if mode == "fork":
            return forking_runner.run(client, queue, noop)
        return inprocess_runner.run(client, queue, noop)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "worker":
        sys.exit("usage: python -m bench.blueque_system worker {inprocess|fork} URL QUEUE")
    sys.exit(worker_main(*sys.argv[2:]))
