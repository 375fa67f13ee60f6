"""The draining handshake under races: workers claim and begin while an operator drains and
undrains them; the event log (one channel, in script order) must never show a worker begin a
task while it is drained, nor a drain succeed while the worker runs a task."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from blueque import Client, Queue
from devtools.processes import wait_until
from tests.support.protocol import claim
from tests.support.workers import WorkerSpawner


def check_event_log(events: list[dict[str, Any]]) -> tuple[int, int]:
    """Replays the events; returns (drains, tasks started). Fails on a violation."""
    drained: set[str] = set()
    running: dict[str, str] = {}  # worker -> task
    drains = started = 0
    for e in events:
        kind, worker = e["event"], str(e.get("worker"))
        if kind == "drained":
            assert worker not in running, f"{worker} drained while running {running[worker]}"
            drained.add(worker)
            drains += 1
        elif kind == "undrained":
            drained.discard(worker)
        elif kind == "started":
            assert worker not in drained, f"drained worker {worker} began {e['task']}"
            assert worker not in running, f"{worker} began a second task"
            running[worker] = e["task"]
            started += 1
        elif kind in ("complete", "failed", "cancelled") and worker in running:
            assert running.pop(worker) == e["task"]
    return drains, started


def read_all(stream: Any, until: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while time.monotonic() < until:
        event = stream.next(timeout=0.2)
        if event is None:
            if out and out[-1].get("event") == "end-of-test":
                break
            continue
        out.append(event)
    return out


def test_claim_drain_races_between_threads(client: Client, backend_url: str) -> None:
    queue = client.get_queue("drain.q")
    worker_ids = [f"w{i}" for i in range(3)]
    stop = threading.Event()
    errors: list[BaseException] = []
    outcome = {"drained": 0, "refused_drain": 0, "begin_refused": 0}

    def worker(wid: str) -> None:
        own = Client(backend_url)
        q = own.get_queue("drain.q")
        draining = False
        try:
            while not stop.is_set():
                if draining:  # as the real worker: claim nothing until undrained
                    draining = bool(own.redis.sismember(q.keys.draining, wid))
                    continue
                task_id = claim(q, wid, timeout_s=0.05)
                if task_id is None:
                    continue
                begun = q.transitions.begin(wid, task_id, 1)
                if begun.status == "draining":
                    draining = True
                    outcome["begin_refused"] += 1
                    continue
                assert begun.status == "ok", begun
                q.transitions.finish(wid, task_id, begun.attempt, "complete", '"ok"')
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    def operator() -> None:
        own = Client(backend_url)
        q = own.get_queue("drain.q")
        rng = random.Random(7)
        try:
            while not stop.is_set():
                wid = rng.choice(worker_ids)
                if q.drain(wid):
                    outcome["drained"] += 1
                    time.sleep(rng.random() * 0.003)
                    q.undrain(wid)
                else:
                    outcome["refused_drain"] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    with queue.events() as stream:
        threads = [threading.Thread(target=worker, args=(w,)) for w in worker_ids]
        threads.append(threading.Thread(target=operator))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not errors:
            if client.redis.llen(queue.keys.pending) < 20:
                queue.enqueue_many(list(range(50)))
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(10)
        client.redis.spublish(queue.keys.events, '{"event": "end-of-test"}')
        events = read_all(stream, time.monotonic() + 20)
    assert not errors, errors
    drains, started = check_event_log(events)
    assert drains == outcome["drained"] and drains > 20, outcome
    assert started > 50 and outcome["refused_drain"] > 0, outcome
    stats = queue.stats()
    assert stats.totals["refused"] == outcome["begin_refused"]
    assert stats.running == 0 and stats.totals["stale"] == 0


def test_real_workers_under_drain_and_undrain(
    redis_url: str, workers: WorkerSpawner, client_standalone: Client
) -> None:
    queue: Queue = client_standalone.get_queue("drain.q")
    ids = queue.enqueue_many([{"sleep_s": 0.005} for _ in range(150)])
    worker_ids = ["pw0", "pw1", "pw2"]
    with queue.events() as stream:
        for wid in worker_ids:
            workers.start(
                redis_url,
                "drain.q",
                env={"BLUEQUE_WORKER_ID": wid, "BLUEQUE_HEARTBEAT_INTERVAL_S": "0.05"},
            )
        rng = random.Random(11)
        drains = 0
        deadline = time.monotonic() + 60
        while queue.stats().complete < len(ids) and time.monotonic() < deadline:
            wid = rng.choice(worker_ids)
            if queue.drain(wid):
                drains += 1
                time.sleep(0.01)
                queue.undrain(wid)
        wait_until(lambda: queue.stats().complete == len(ids), 30, what="every task to complete")
        client_standalone.redis.spublish(queue.keys.events, '{"event": "end-of-test"}')
        events = read_all(stream, time.monotonic() + 20)
    logged_drains, started = check_event_log(events)
    assert logged_drains == drains > 0
    assert started == len(ids)  # a refused begin costs no attempt and runs once later
    stats = queue.stats()
    assert (stats.pending, stats.running, stats.reserved, stats.totals["stale"]) == (0, 0, 0, 0)
