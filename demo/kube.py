"""`./dev demo`: Blueque on a real local Kubernetes control plane, scaling real workers, live.

It starts a redis-server and the local control plane (etcd, kube-apiserver, controller-manager,
scheduler, KWOK for the nodes; devtools.localkube), installs the chart with `helm install`, runs
the chart's operator pod and the worker pods as host processes (two pod runners; KWOK runs no
container), applies examples/bluequeue.yaml (its Redis URL pointed at this machine's server),
then enqueues bursts with examples/produce.py. The view shows the operator scale the worker
Deployment from zero to `maxReplicas` and back, with the BlueQueue's status, the pods and the
operator's Events; now and then it force-deletes a busy pod, and the operator's reaper requeues
its task.

Everything it starts it stops by pid, in reverse order, when the time is up, on Ctrl-C or on an
error: the workers (SIGTERM: a running task finishes, up to a few seconds), the operator, the
control plane (its state directory removed), Redis. The logs stay in the directory it prints.
`--summary FILE` writes what happened as JSON (replicas seen, Events, every process started),
for scripts and its test.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from blueque import Client, Queue
from demo.board import Board, Snapshot, render
from devtools.localkube.api import ApiClient, Json
from devtools.localkube.cluster import LocalCluster
from devtools.podrunner import PodRunner
from devtools.processes import Process, free_port, stop_all, wait_until
from devtools.redis_servers import RedisServer
from devtools.stack import (
    EXAMPLES,
    apply_manifest,
    example_bluequeue,
    force_delete_pod,
    install_chart,
    operator_runner,
    wait_crd_established,
    worker_runner,
)

__all__ = ["DemoOptions", "run"]

NAMESPACE = "blueque-demo"
SCALING = {"scaleDownDelaySeconds": 5, "pollIntervalSeconds": 0.5}
"""The example's 0-4 replicas; a scale-down 5 s after the demand fell, so that it shows."""
TASK_SECONDS = (0.5, 4.0)
BURST_SIZE = (8, 20)
REFRESH_S = 0.5
CHAOS_AFTER_S = 4.0
"""Into each burst: when a busy pod is force-deleted (with --chaos)."""


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 90.0
    burst_every_s: float = 30.0
    chaos: bool = True
    summary: Path | None = None
    seed: int | None = None


@dataclass
class _Run:
    """What the run started and saw: for the cleanup message and `--summary`."""

    log_dir: Path
    processes: list[Process] = field(default_factory=list)
    producers: list[Process] = field(default_factory=list)
    runners: list[PodRunner] = field(default_factory=list)
    replicas: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since start, replicas, desired), on each change."""
    enqueued: int = 0
    completed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    force_deleted: list[str] = field(default_factory=list)
    interrupted: bool = False

    def all_processes(self) -> list[Process]:
        started = self.processes + self.producers
        return started + [p for r in self.runners for p in r.processes()]

    def summary(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "max_replicas": max((r for _, r, _ in self.replicas), default=0),
            "enqueued": self.enqueued,
            "completed": self.completed,
            "events": self.reasons,
            "force_deleted": self.force_deleted,
            "interrupted": self.interrupted,
            "log_dir": str(self.log_dir),
            "processes": [p.to_json() for p in self.all_processes()],
        }


def run(options: DemoOptions) -> int:
    console = Console()
    began = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - began:5.1f}s[/] {message}")

    state = _Run(Path(tempfile.mkdtemp(prefix="blueque-demo-")))
    code = 0
    try:
        with contextlib.ExitStack() as stack:
            stack.callback(stop_all, state.producers, 5.0)
            try:
                _start_and_show(options, state, stack, say, console)
                say("time is up")
            except KeyboardInterrupt:
                state.interrupted = True
                code = 130
                say("interrupted")
            say("stopping everything it started, by pid: workers, operator, control plane, Redis")
    except KeyboardInterrupt:  # a second Ctrl-C: what is left dies with this process
        state.interrupted = True
        code = 130
    finally:
        left = [p.name for p in state.all_processes() if p.alive()]
        say(
            f"stopped {len(state.all_processes())} processes"
            + (f"; STILL RUNNING: {left}" if left else "")
        )
        say(f"logs in {state.log_dir}")
        if options.summary is not None:
            options.summary.write_text(json.dumps(state.summary(), indent=2))
    return code


def _start_and_show(
    options: DemoOptions,
    state: _Run,
    stack: contextlib.ExitStack,
    say: Callable[[str], None],
    console: Console,
) -> None:
    redis = stack.enter_context(RedisServer())
    assert redis.process is not None
    state.processes.append(redis.process)
    say(f"redis-server on {redis.url}")

    say(
        "starting the local control plane: etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler and KWOK for 3 fake nodes (about 10 s)"
    )
    cluster = LocalCluster(state.log_dir / "cluster")
    cluster.start()  # stops what it started if it fails
    stack.callback(cluster.stop)
    state.processes += cluster.state.components
    say(f"control plane ready in {cluster.state.ready_after_s:.1f} s at {cluster.state.server}")
    api = cluster.admin_client()
    api.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )

    say(f"helm install blueque charts/blueque -n {NAMESPACE} --set watch.mode=namespaces")
    install_chart(cluster, NAMESPACE, metrics_port=free_port())
    operators = stack.enter_context(operator_runner(api, NAMESPACE, state.log_dir / "operator"))
    state.runners.append(operators)
    workers = stack.enter_context(
        worker_runner(api, NAMESPACE, state.log_dir / "workers", close_grace_s=5.0)
    )
    state.runners.append(workers)
    (operator,) = wait_until(
        lambda: [s for s in operators.statuses() if s.state == "running"],
        30,
        what="the chart's operator pod running",
    )
    say(
        f"the operator pod {operator.name} runs as pid {operator.pid}, "
        "with the chart ServiceAccount's token"
    )
    wait_crd_established(api)
    manifest = example_bluequeue(redis.url, scaling=SCALING)
    say(apply_manifest(cluster, NAMESPACE, manifest).strip() + " (examples/bluequeue.yaml)")

    name, queue_name = manifest["metadata"]["name"], manifest["spec"]["queue"]
    api.wait_for(
        f"/apis/blueque.io/v1alpha1/namespaces/{NAMESPACE}/bluequeues/{name}",
        _ready,
        timeout_s=60,
        what="the operator to take the BlueQueue up (condition Ready)",
    )
    say(f"the operator made the worker Deployment {name}-workers (0 replicas: the queue is empty)")
    with Client(redis.url) as client:
        queue = client.get_queue(queue_name)
        board = Board(api, NAMESPACE, name, queue, workers)
        _show(options, state, board, queue, redis.url, api, workers, console)


def _show(
    options: DemoOptions,
    state: _Run,
    board: Board,
    queue: Queue,
    redis_url: str,
    api: ApiClient,
    workers: PodRunner,
    console: Console,
) -> None:
    """The producer's bursts and the live view until the time is up. Without a terminal (a
    pipe, CI, its test) it prints the events and each change of the replicas as lines."""
    rng = random.Random(options.seed)
    started = time.monotonic()
    deadline = started + options.seconds
    next_burst, chaos_at = started, None
    footer = "Ctrl-C stops everything."
    live = None
    if console.is_terminal:
        first = render(board.snapshot(options.seconds), footer)
        live = Live(first, console=console, refresh_per_second=4)
    else:
        board.echo = console.print
    with live or contextlib.nullcontext():
        while (now := time.monotonic()) < deadline:
            if now >= next_burst:
                count = rng.randint(*BURST_SIZE)
                _produce(state, redis_url, count)
                low, high = TASK_SECONDS
                board.note(f"[bold]examples/produce.py {count}[/]: tasks of {low}-{high} s")
                next_burst += options.burst_every_s
                chaos_at = now + CHAOS_AFTER_S if options.chaos else None
            due = chaos_at is not None and now >= chaos_at
            if due and _force_delete_a_busy_pod(state, board, queue, api, workers):
                chaos_at = None  # else: again on the next refresh
            snap = board.snapshot(deadline - now)
            if _record(state, snap) and live is None:
                console.print(
                    f"replicas {snap.replicas}, desired {snap.desired}: pending {snap.pending},"
                    f" running {snap.running}, completed {snap.completed}"
                )
            if live is not None:
                live.update(render(snap, footer))
            time.sleep(REFRESH_S)


def _produce(state: _Run, redis_url: str, count: int) -> None:
    """One burst, by the example producer as a user runs it (its own process, not awaited)."""
    argv = [sys.executable, str(EXAMPLES / "produce.py"), str(count)]
    argv += ["--min-seconds", str(TASK_SECONDS[0]), "--max-seconds", str(TASK_SECONDS[1])]
    producer = Process.start(
        "produce.py",
        argv,
        log_file=state.log_dir / "produce.log",
        env={**os.environ, "BLUEQUE_REDIS_URL": redis_url},
    )
    state.producers.append(producer)
    state.enqueued += count


def _force_delete_a_busy_pod(
    state: _Run, board: Board, queue: Queue, api: ApiClient, workers: PodRunner
) -> bool:
    """`kubectl delete pod --force` on a pod whose worker runs a task; False if none does."""
    running = {s.name for s in workers.statuses() if s.state == "running"}
    busy = [w for w in queue.workers() if w.task and w.id in running]
    if not busy:
        return False
    victim = busy[0]
    force_delete_pod(api, workers, NAMESPACE, victim.id)
    state.force_deleted.append(victim.id)
    board.note(
        f"[bold red]kubectl delete pod --force {victim.id}[/] while it ran "
        f"{(victim.task or '').rpartition(':')[2][:12]}: the reaper requeues its task"
    )
    return True


def _ready(bluequeue: Json) -> bool:
    conditions = (bluequeue.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _record(state: _Run, snap: Snapshot) -> bool:
    """Keeps what the summary reports; True when the replicas or the desired count changed."""
    state.completed = snap.completed
    state.reasons = dict(snap.reasons)
    point = (round(snap.elapsed_s, 1), snap.replicas, snap.desired)
    if state.replicas and state.replicas[-1][1:] == point[1:]:
        return False
    state.replicas.append(point)
    return True
