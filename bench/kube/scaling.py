"""Two latencies of the operator, over real worker pods (pod runner) on KWOK nodes.

- Scale-up: a burst of tasks enqueued into an idle queue (zero replicas), to the worker
  Deployment's new `spec.replicas` as a watch sees it. Clock: from the return of the
  `enqueue_many` call to the arrival of the watch event. The trial starts at a random offset
  within one poll interval, so the tick's phase is sampled uniformly; between trials the tasks
  complete and the operator scales back to zero (no pods left).
- Requeue: a busy worker pod force-deleted (the pod runner SIGKILLs its process, then a DELETE
  with grace 0), to the `requeued` event of its task on the queue's event stream. Clock: from
  the moment the DELETE is sent to the event's arrival (the event can arrive before the DELETE's
  own answer does); the event's Redis timestamp (`ts`, ms) is kept too.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.kube.env import (
    WORKER_SELECTOR,
    KubeBench,
    bluequeue,
    deployment_path,
    pause,
)
from bench.kube.recording import Arrival, EventRecorder, WatchRecorder, watching
from blueque import Client, Queue
from devtools.podrunner import PodRunner
from devtools.processes import wait_until

Log = Callable[[str], None]


@dataclass
class Trials:
    """One latency per trial, in seconds, and what else a trial noted."""

    name: str
    values_s: list[float] = field(default_factory=list)
    notes: list[dict[str, float]] = field(default_factory=list)


def _replicas(arrival: Arrival) -> int:
    return int((arrival.data.get("spec") or {}).get("replicas", 0))


def _all_done(queue: Queue, ids: list[str]) -> bool:
    return all(t.status == "complete" for t in queue.get_tasks(ids))


def scale_up(
    bench: KubeBench, *, poll_s: float, trials: int, burst: int = 4, log: Log = print
) -> Trials:
    result = Trials(f"scale-up, poll {poll_s:g} s")
    name = "burst"
    deployment = f"{name}-workers"
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(bench.namespace("scaleup"))
        stack.enter_context(bench.pod_runner(ns))
        stack.enter_context(bench.operator([ns], f"scaleup-{poll_s:g}"))
        scaling = {"maxReplicas": burst, "pollIntervalSeconds": poll_s, "scaleDownDelaySeconds": 1}
        bench.create_bluequeue(ns, bluequeue(name, bench.redis.url, scaling=scaling))
        wait_until(lambda: bench.replicas(ns, deployment) == 0, 30, what="the Deployment")
        recorder = stack.enter_context(
            watching(
                bench.admin, deployment_path(ns), {"fieldSelector": f"metadata.name={deployment}"}
            )
        )
        client = stack.enter_context(Client(bench.redis.url))
        queue = client.get_queue(name)
        for trial in range(trials):
            latency, replicas = _scale_up_trial(bench, ns, queue, recorder, poll_s, burst)
            result.values_s.append(latency)
            result.notes.append({"replicas": replicas})
            log(f"  {result.name}: trial {trial + 1}: {latency * 1000:.0f} ms -> {replicas}")
    return result


def _scale_up_trial(
    bench: KubeBench, ns: str, queue: Queue, recorder: WatchRecorder, poll_s: float, burst: int
) -> tuple[float, int]:
    name = queue.name
    deployment = f"{name}-workers"
    selector = f"{WORKER_SELECTOR},blueque.io/bluequeue={name}"
    wait_until(
        lambda: bench.replicas(ns, deployment) == 0 and not bench.worker_pods(ns, selector),
        120,
        interval_s=0.1,
        what="the scale-down to zero",
    )
    pause(random.uniform(0, poll_s))  # a random phase against the operator's tick
    before = time.time()
    ids = queue.enqueue_many([{"echo": "burst"}] * burst)
    after = time.time()
    seen = recorder.wait(
        lambda a: a.kind == "MODIFIED" and _replicas(a) > 0,
        after=before,
        timeout_s=30,
        what="the Deployment's replicas to rise",
    )
    wait_until(lambda: _all_done(queue, ids), 120, interval_s=0.1, what="the burst done")
    return seen.at - after, _replicas(seen)


def requeue(bench: KubeBench, *, trials: int, log: Log = print) -> Trials:
    result = Trials("pod deleted -> requeued")
    name = "reap"
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(bench.namespace("requeue"))
        runner = stack.enter_context(bench.pod_runner(ns))
        stack.enter_context(bench.operator([ns], "requeue"))
        scaling = {"minReplicas": 1, "maxReplicas": 1}
        bench.create_bluequeue(ns, bluequeue(name, bench.redis.url, scaling=scaling))
        client = stack.enter_context(Client(bench.redis.url))
        queue = client.get_queue(name)
        events = EventRecorder(queue)
        stack.callback(events.close)
        holds = bench.workdir / "holds"
        holds.mkdir(parents=True, exist_ok=True)
        for trial in range(trials):
            latency, note = _requeue_trial(
                bench, ns, queue, runner, events, holds / f"requeue-{trial}"
            )
            result.values_s.append(latency)
            result.notes.append(note)
            log(f"  {result.name}: trial {trial + 1}: {latency * 1000:.0f} ms")
    return result


def _requeue_trial(
    bench: KubeBench,
    ns: str,
    queue: Queue,
    runner: PodRunner,
    events: EventRecorder,
    release: Path,
) -> tuple[float, dict[str, float]]:
    task_id = queue.enqueue({"hold": str(release)})
    pod = wait_until(
        lambda: t.worker if (t := queue.get_task(task_id)).status == "running" else None,
        120,
        interval_s=0.05,
        what="the task to run",
    )
    killing = time.time()
    runner.kill(pod, ns)
    deleting = time.time()
    _force_delete(bench, ns, pod)
    deleted = time.time()
    seen = events.wait(
        lambda a: a.kind == "requeued" and a.data.get("task") == task_id,
        after=killing,
        timeout_s=30,
        what=f"the requeue of {task_id}",
    )
    release.touch()
    wait_until(
        lambda: queue.get_task(task_id).status == "complete",
        120,
        interval_s=0.1,
        what="the requeued task to complete on the next pod",
    )
    note = {
        "by_redis_ts_s": float(seen.data.get("ts", 0)) / 1000 - deleting,
        "from_delete_return_s": seen.at - deleted,
        "delete_call_s": deleted - deleting,
    }
    return seen.at - deleting, note


def _force_delete(bench: KubeBench, ns: str, pod: str) -> None:
    """`kubectl delete pod --grace-period=0 --force`: the object goes at once."""
    body = json.dumps({"gracePeriodSeconds": 0}).encode()
    status, answer = bench.admin.raw(
        "DELETE", f"/api/v1/namespaces/{ns}/pods/{pod}", body, content_type="application/json"
    )
    if status not in (200, 202, 404):
        raise RuntimeError(f"DELETE pod {pod}: {status} {answer[:300]!r}")
