"""python-rq under test: `Queue.enqueue`, `Job.latest_result(timeout=...)` (its blocking
wait, an XREAD on the job's result stream), and its two workers: `SimpleWorker` (in process)
and `Worker` (a forked work horse per job). Workers log at WARNING, like the others.

Run as `python -m bench.rq_system worker MODE URL QUEUE` it is the worker subprocess.
"""

from __future__ import annotations

import sys
import time
from typing import Any, cast

from redis import Redis
from rq import Queue, SimpleWorker, Worker
from rq.job import Job

from bench.harness import report_rusage

PREFILL_BATCH = 500


def noop() -> float:
    return time.time()


class RqSystem:
    name = "rq"

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = Redis.from_url(url)

    def _queue(self, name: str) -> Queue:
        return Queue(name, connection=self.redis)

    def enqueue(self, queue: str, n: int) -> float:
        q = self._queue(queue)
        q.enqueue(noop)
        start = time.perf_counter()
        for _ in range(n):
            q.enqueue(noop)
        return time.perf_counter() - start

    def prefill(self, queue: str, n: int) -> tuple[Any, Any]:
        q = self._queue(queue)
        jobs: list[Job] = []
        for done in range(0, n, PREFILL_BATCH):
            batch = [Queue.prepare_data(noop) for _ in range(min(PREFILL_BATCH, n - done))]
            jobs += q.enqueue_many(batch)
        return jobs[0], jobs[-1]

    def started_at(self, handle: Any) -> float | None:
        result = handle.latest_result()
        return None if result is None else float(result.return_value)

    def latency_sample(self, queue: str) -> tuple[float, float, float]:
        q = self._queue(queue)
        t0 = time.time()
        job = q.enqueue(noop)
        result = job.latest_result(timeout=10)
        t_done = time.time()
        assert result is not None, "no result within 10 s"
        return t0, float(cast(float, result.return_value)), t_done

    def worker_command(self, mode: str, queue: str) -> list[str]:
        return [sys.executable, "-m", "bench.rq_system", "worker", mode, self.url, queue]

    def close(self) -> None:
        self.redis.close()


def worker_main(mode: str, url: str, queue: str) -> int:
    redis = Redis.from_url(url)
    cls = {"inprocess": SimpleWorker, "fork": Worker}[mode]
    worker = cls([queue], connection=redis)
    with report_rusage():
        worker.work(logging_level="WARNING", with_scheduler=False)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "worker":
        sys.exit("usage: python -m bench.rq_system worker {inprocess|fork} URL QUEUE")
    sys.exit(worker_main(*sys.argv[2:]))
