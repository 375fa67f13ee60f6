"""Huey under test, two ways: `huey` is `RedisHuey` as it comes (its blocking `Result.get`
polls the result with sleeps from 0.1 s), `huey_notify` sets `notify_result=True`, so that
`Result.get` is a BLPOP on a notification key (its fastest wait); the consumer runs one
worker thread. Huey has no forking worker and no bulk enqueue.

Run as `python -m bench.huey_system worker MODE URL QUEUE NOTIFY` it is the consumer
subprocess (NOTIFY: 1 or 0).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from huey import RedisHuey

from bench.harness import report_rusage


def _noop() -> float:
    return time.time()


def make_huey(queue: str, url: str, notify: bool) -> tuple[RedisHuey, Any]:
    huey = RedisHuey(queue, url=url, notify_result=notify)
    return huey, huey.task(name="noop")(_noop)


class HueySystem:
    def __init__(self, url: str, notify: bool = False) -> None:
        self.url = url
        self.notify = notify
        self.name = "huey_notify" if notify else "huey"
        self._hueys: dict[str, tuple[RedisHuey, Any]] = {}

    def _task(self, queue: str) -> Any:
        if queue not in self._hueys:
            self._hueys[queue] = make_huey(queue, self.url, self.notify)
        return self._hueys[queue][1]

    def enqueue(self, queue: str, n: int) -> float:
        noop = self._task(queue)
        noop()
        start = time.perf_counter()
        for _ in range(n):
            noop()
        return time.perf_counter() - start

    def prefill(self, queue: str, n: int) -> tuple[Any, Any]:
        noop = self._task(queue)
        results = [noop() for _ in range(n)]
        return results[0], results[-1]

    def started_at(self, handle: Any) -> float | None:
        value = handle.get(preserve=True)
        return None if value is None else float(value)

    def latency_sample(self, queue: str) -> tuple[float, float, float]:
        noop = self._task(queue)
        t0 = time.time()
        value = noop().get(blocking=True, timeout=10)
        t_done = time.time()
        return t0, float(value), t_done

    def worker_command(self, mode: str, queue: str) -> list[str]:
        notify = "1" if self.notify else "0"
        return [sys.executable, "-m", "bench.huey_system", "worker", mode, self.url, queue, notify]

    def close(self) -> None:
        for huey, _ in self._hueys.values():
            huey.storage.conn.close()


def worker_main(mode: str, url: str, queue: str, notify: str) -> int:
    if mode != "inprocess":
        raise SystemExit(f"huey has no {mode} worker")
    huey, _ = make_huey(queue, url, notify == "1")
    consumer = huey.create_consumer(workers=1, worker_type="thread")
    with report_rusage():
        consumer.run()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "worker":
        sys.exit("usage: python -m bench.huey_system worker inprocess URL QUEUE NOTIFY")
    # Huey names a task by its module: import this one by its package name, not __main__.
    from bench.huey_system import worker_main as package_worker_main

    sys.exit(package_worker_main(*sys.argv[2:]))
