"""Scale-down with busy workers: a plain Deployment beside a BlueQueue.

Each round, for each side: 4 worker pods (real workers, pod runner), 4 long tasks (one per
worker), 2 of them released at random: 2 workers busy, 2 idle. Then the replicas go to 2:

- plain: a Deployment of the same workers (same labels but no BlueQueue: the operator ignores
  it), scaled to 2 by hand (`kubectl scale`). The ReplicaSet picks which 2 pods go; it knows
  nothing of tasks.
- blueque: a BlueQueue's operator, on its own: demand is 2, so after `scaleDownDelaySeconds` it
  drains the 2 idle workers, gives their pods the lowest deletion cost and lowers replicas.

Counted: pods removed (deletionTimestamp set, or gone) that held a running task at that moment
(the running tasks' workers, read just before), and of those, tasks cut short: the grace
period (5 s here; an hour by default) ended before the task did, so the worker was killed.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.kube.env import FAST_WORKER_ENV, TASK, KubeBench, bluequeue, deployment_path
from blueque import Client, Queue
from blueque import environment as worker_env
from devtools.localkube.api import Json
from devtools.processes import wait_until

Log = Callable[[str], None]
REPLICAS = 4
BUSY = 2
GRACE_S = 5


@dataclass
class Round:
    side: str
    round: int
    removed: list[str]
    busy: list[str]
    busy_removed: int
    tasks_cut_short: int
    scale_down_s: float
    """From the release of the 2 tasks to the 2 pods' removal."""


def _plain_deployment(name: str, queue: str, redis_url: str) -> Json:
    labels = {"app.kubernetes.io/name": "blueque-worker", "bench.blueque.io/plain": name}
    env: list[Json] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": worker_env.REDIS_URL, "value": redis_url},
        {"name": worker_env.QUEUE, "value": queue},
        {"name": worker_env.WORKER_ID, "value": "$(POD_NAME)"},
        *FAST_WORKER_ENV,
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_S,
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.invalid/blueque-bench:1",
                            "command": ["blueque", "worker"],
                            "args": ["--task", TASK],
                            "env": env,
                        }
                    ],
                },
            },
        },
    }


def _pods(bench: KubeBench, ns: str, selector: str) -> dict[str, Json]:
    return {p["metadata"]["name"]: p for p in bench.worker_pods(ns, selector)}


def _live(pods: dict[str, Json]) -> set[str]:
    return {n for n, p in pods.items() if "deletionTimestamp" not in p["metadata"]}


def _running_workers(queue: Queue, ids: list[str]) -> dict[str, str]:
    """task id -> worker, for the tasks running now."""
    return {t.id: t.worker for t in queue.get_tasks(ids) if t.status == "running" and t.worker}


def _load(queue: Queue, holds: Path, tag: str) -> dict[str, Path]:
    """4 long tasks, each running on its own worker; returns their release files by id."""
    files = {f"{tag}-{i}": holds / f"{tag}-{i}" for i in range(REPLICAS)}
    ids = queue.enqueue_many([{"hold": str(f)} for f in files.values()])
    by_id = dict(zip(ids, files.values(), strict=True))
    wait_until(
        lambda: len(set(_running_workers(queue, ids).values())) == REPLICAS,
        120,
        interval_s=0.1,
        what=f"{REPLICAS} tasks running on {REPLICAS} workers",
    )
    return by_id


def _release_some(queue: Queue, files: dict[str, Path]) -> tuple[dict[str, str], float]:
    """Releases all but `BUSY` tasks, at random; returns the busy ones' workers and when."""
    ids = list(files)
    released = random.sample(ids, len(ids) - BUSY)
    at = time.time()
    for task_id in released:
        files[task_id].touch()
    wait_until(
        lambda: all(t.status == "complete" for t in queue.get_tasks(released)),
        60,
        interval_s=0.05,
        what="the released tasks to complete",
    )
    busy = _running_workers(queue, [i for i in ids if i not in released])
    return busy, at


def _outcome(
    side: str, rnd: int, before: set[str], after: set[str], busy: dict[str, str], took: float
) -> Round:
    removed = sorted(before - after)
    busy_pods = sorted(busy.values())
    return Round(
        side=side,
        round=rnd,
        removed=removed,
        busy=busy_pods,
        busy_removed=len(set(removed) & set(busy_pods)),
        tasks_cut_short=0,
        scale_down_s=took,
    )


def _cut_short(queue: Queue, busy: dict[str, str], removed: list[str]) -> int:
    """Busy tasks whose pod went before they ended: after the grace period the worker was
    killed (the task never completed on that worker)."""
    lost = [task_id for task_id, pod in busy.items() if pod in removed]
    return sum(1 for t in queue.get_tasks(lost) if t.status != "complete" or (t.attempts or 0) > 1)


def plain_round(bench: KubeBench, ns: str, client: Client, rnd: int, log: Log) -> Round:
    name = f"plain-{rnd}"
    queue = client.get_queue(name)
    selector = f"bench.blueque.io/plain={name}"
    admin = bench.admin
    admin.create(deployment_path(ns), _plain_deployment(name, name, bench.redis.url))
    try:
        files = _load(queue, bench.workdir / "holds", name)
        before = _live(_pods(bench, ns, selector))
        busy, released_at = _release_some(queue, files)
        admin.patch(f"{deployment_path(ns, name)}/scale", {"spec": {"replicas": REPLICAS - BUSY}})
        after = wait_until(
            lambda: live if len(live := _live(_pods(bench, ns, selector))) == BUSY else None,
            60,
            interval_s=0.05,
            what="the plain Deployment at 2 pods",
        )
        result = _outcome("plain", rnd, before, after, busy, time.time() - released_at)
        # A removed busy pod keeps its task for the grace period, then its worker is killed.
        wait_until(
            lambda: set(_pods(bench, ns, selector)) <= after,
            GRACE_S + 30,
            interval_s=0.1,
            what="the removed pods gone",
        )
        result.tasks_cut_short = _cut_short(queue, busy, result.removed)
        for f in files.values():
            f.touch()
    finally:
        admin.delete(deployment_path(ns, name))
    bench.wait_no_pods(ns, selector)
    log(
        f"  plain round {rnd + 1}: removed {result.removed}, busy {result.busy}:"
        f" {result.busy_removed} busy removed, {result.tasks_cut_short} cut short"
    )
    return result


def bluequeue_round(bench: KubeBench, ns: str, client: Client, rnd: int, log: Log) -> Round:
    name = "guarded"
    queue = client.get_queue(name)
    selector = f"blueque.io/bluequeue={name}"
    deployment = f"{name}-workers"
    files = _load(queue, bench.workdir / "holds", f"{name}-{rnd}")
    before = _live(_pods(bench, ns, selector))
    busy, released_at = _release_some(queue, files)
    after = wait_until(
        lambda: (
            live
            if bench.replicas(ns, deployment) == BUSY
            and len(live := _live(_pods(bench, ns, selector))) == BUSY
            else None
        ),
        60,
        interval_s=0.05,
        what="the operator's scale-down to 2",
    )
    result = _outcome("blueque", rnd, before, after, busy, time.time() - released_at)
    wait_until(
        lambda: set(_pods(bench, ns, selector)) <= after,
        GRACE_S + 30,
        interval_s=0.1,
        what="the removed pods gone",
    )
    result.tasks_cut_short = _cut_short(queue, busy, result.removed)
    for f in files.values():
        f.touch()
    wait_until(lambda: bench.replicas(ns, deployment) == 0, 120, what="the scale-down to zero")
    bench.wait_no_pods(ns, selector, timeout_s=120)
    log(
        f"  blueque round {rnd + 1}: removed {result.removed}, busy {result.busy}:"
        f" {result.busy_removed} busy removed, {result.tasks_cut_short} cut short"
    )
    return result


def compare(bench: KubeBench, *, rounds: int, log: Log = print) -> list[Round]:
    results: list[Round] = []
    (bench.workdir / "holds").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(bench.namespace("busy"))
        stack.enter_context(bench.pod_runner(ns))
        stack.enter_context(bench.operator([ns], "busy"))
        scaling = {"maxReplicas": REPLICAS, "scaleDownDelaySeconds": 2}
        bench.create_bluequeue(
            ns, bluequeue("guarded", bench.redis.url, scaling=scaling, grace_s=GRACE_S)
        )
        client = stack.enter_context(Client(bench.redis.url))
        for rnd in range(rounds):
            results.append(plain_round(bench, ns, client, rnd, log))
            results.append(bluequeue_round(bench, ns, client, rnd, log))
    return results


def table(rounds: list[Round]) -> str:
    lines = [
        "| side | rounds | pods removed | busy pods removed | tasks cut short"
        " | release -> 2 pods, s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for side in ("plain", "blueque"):
        mine = [r for r in rounds if r.side == side]
        if not mine:
            continue
        took = sorted(r.scale_down_s for r in mine)
        lines.append(
            f"| {side} | {len(mine)} | {sum(len(r.removed) for r in mine)}"
            f" | {sum(r.busy_removed for r in mine)} | {sum(r.tasks_cut_short for r in mine)}"
            f" | {took[len(took) // 2]:.1f} |"
        )
    return "\n".join(lines)
