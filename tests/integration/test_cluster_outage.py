"""A Redis Cluster's outages, met as a standalone Redis's are (test_bad_input.py): a master
restarted under a worker (down, then `CLUSTERDOWN` for a while after it answers again), and
a worker or scheduler started while the node its URL names is down. They wait and retry,
log Redis as unavailable and lose nothing; a standalone Redis behind a cluster URL is a
setting's mistake and still fails at once. On a cluster of this module alone (three masters
with AOF), since the tests take its nodes down."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from blueque import Client, ConnectionFailedError
from devtools.processes import Process, wait_until
from devtools.redis_servers import RedisCluster, RedisServer
from tests.support.cli_processes import BluequeRunner
from tests.support.workers import WorkerSpawner

Q = "cdown.q"
AOF = ["--appendonly", "yes", "--appendfsync", "always"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster(nodes=[RedisServer(cluster=True, extra_args=AOF) for _ in range(3)]) as c:
        yield c


@pytest.fixture
def fresh(cluster: RedisCluster) -> RedisCluster:
    for node in cluster.nodes:  # a previous test may have left one down
        if node.process is None:
            node.start()
    cluster.wait_ok()
    cluster.flush()
    return cluster


@pytest.fixture
def bq(fresh: RedisCluster, tmp_path: Path) -> Iterator[BluequeRunner]:
    runner = BluequeRunner(fresh.url, tmp_path)
    try:
        yield runner
    finally:
        runner.kill_all()


def holder(cluster: RedisCluster, client: Client) -> RedisServer:
    """The master that holds the queue's keys (they share one hash tag)."""
    keys = client.get_queue(Q).keys
    node = client.redis.get_node_from_key(keys.pending)  # type: ignore[union-attr]
    return next(n for n in cluster.nodes if n.port == node.port)


RETRY_FAST = {"BLUEQUE_RECONNECT_MAX_DELAY_S": "0.2"}


def start_gated_task(
    fresh: RedisCluster, workers: WorkerSpawner, tmp_path: Path
) -> tuple[str, Path, Process]:
    """Enqueues a task that runs until `gate` exists, and starts a worker that begins it;
    returns the task's id, the gate and the worker."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    with Client(fresh.url) as client:
        task_id = client.get_queue(Q).enqueue(
            {"gate": str(gate), "started": str(started), "result": "kept"}
        )
    worker = workers.start(fresh.url, Q, env=RETRY_FAST)
    wait_until(started.exists, 20, what="the task to start")
    return task_id, gate, worker


def test_a_worker_rides_out_a_master_restart_and_loses_nothing(
    fresh: RedisCluster, workers: WorkerSpawner, tmp_path: Path
) -> None:
    task_id, gate, worker = start_gated_task(fresh, workers, tmp_path)
    with Client(fresh.url) as client:
        master = holder(fresh, client)

    master.kill()
    gate.touch()  # the task finishes while its master is down: its result must wait
    wait_until(lambda: "cannot record" in worker.output(), 20, what="the record to retry")
    master.start()  # answers PING at once, refuses commands (CLUSTERDOWN) for a while
    wait_until(lambda: "Redis Cluster unavailable" in worker.output(), 20, what="CLUSTERDOWN")
    fresh.wait_ok()
    with Client(fresh.url) as client:
        task = client.get_task(task_id).wait(30)
        assert (task.status, task.result, task.attempts) == ("complete", "kept", 1)
        after = client.get_queue(Q).enqueue({"result": "after the restart"})
        assert client.get_task(after).wait(20).result == "after the restart"
        assert client.get_queue(Q).stats().totals["stale"] == 0
    output = worker.output()
    assert worker.poll() is None, output
    assert "Traceback" not in output, output


def test_a_worker_rides_out_the_whole_cluster_going_down(
    fresh: RedisCluster, workers: WorkerSpawner, tmp_path: Path
) -> None:
    # Every node down at once, under a worker that is waiting in its claim and one that is
    # running a task: both wait for the cluster (no node answering is Redis unavailable, not
    # a setting's mistake), then record and claim again.
    running, gate, busy = start_gated_task(fresh, workers, tmp_path)
    idle = workers.start(fresh.url, Q, env=RETRY_FAST)
    with Client(fresh.url) as client:
        wait_until(lambda: len(client.get_queue(Q).workers()) == 2, 20, what="both workers")

    for node in fresh.nodes:
        node.kill()
    gate.touch()  # the result must wait for the cluster
    wait_until(lambda: "cannot record" in busy.output(), 20, what="the record to retry")
    for node in fresh.nodes:
        node.start()
    fresh.wait_ok()
    with Client(fresh.url) as client:
        task = client.get_task(running).wait(30)
        assert (task.status, task.result, task.attempts) == ("complete", "kept", 1)
        later = [client.get_queue(Q).enqueue({"result": n}) for n in range(4)]
        assert [client.get_task(t).wait(30).result for t in later] == list(range(4))
    for worker in (busy, idle):
        output = worker.output()
        assert worker.poll() is None, output
        assert "Traceback" not in output, output
        assert re.search(r"Redis (Cluster )?unavailable|no node of the Redis Cluster", output), (
            output
        )


def test_a_worker_started_while_its_urls_node_is_down_waits_for_it(
    fresh: RedisCluster, bq: BluequeRunner
) -> None:
    first = fresh.nodes[0]  # the node the URL names
    first.kill()
    worker = bq.worker(Q, "echo", "--reconnect-max-delay", "0.2")
    wait_until(
        lambda: worker.output().count("no node of the Redis Cluster answers") >= 3,
        20,
        what="connection retries",
    )
    delays = [float(d) for d in re.findall(r"retrying in (\d+\.\d) s", worker.output())]
    assert delays[:3] == [0.1, 0.2, 0.2], delays  # the worker's backoff, capped
    assert worker.poll() is None, worker.output()
    first.start()
    fresh.wait_ok()
    with Client(fresh.url) as client:
        task_id = client.get_queue(Q).enqueue({"once": "up"})
        assert client.get_task(task_id).wait(30).result == {"once": "up"}
    assert worker.poll() is None, worker.output()
    assert "Traceback" not in worker.output(), worker.output()


def test_a_scheduler_started_while_its_urls_node_is_down_waits_for_it(
    fresh: RedisCluster, bq: BluequeRunner
) -> None:
    first = fresh.nodes[0]
    first.kill()
    scheduler = bq.start("scheduler", Q, "--interval", "0.2")
    wait_until(
        lambda: scheduler.output().count("no node of the Redis Cluster answers") >= 3,
        20,
        what="connection retries",
    )
    assert scheduler.poll() is None, scheduler.output()
    first.start()
    fresh.wait_ok()
    with Client(fresh.url) as client:
        queue = client.get_queue(Q)
        queue.schedule({"due": "soon"}, delay=0.3)
        wait_until(lambda: queue.stats().pending == 1, 20, what="the scheduler to promote")
    assert scheduler.poll() is None, scheduler.output()
    assert "scheduler on" in scheduler.output()


def test_a_client_of_a_cluster_with_no_node_answering_is_a_connection_failure(
    fresh: RedisCluster,
) -> None:
    fresh.nodes[0].kill()
    with pytest.raises(ConnectionFailedError, match="no node of the Redis Cluster answers"):
        Client(fresh.url)


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_a_standalone_redis_behind_a_cluster_url_fails_at_once(
    redis_url: str, tmp_path: Path, command: str
) -> None:
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    bq = BluequeRunner(f"redis+cluster://127.0.0.1:{port}", tmp_path)
    args = ["worker", Q, "--task", "tests.support.task_functions:echo"]
    done = bq.run(*(args if command == "worker" else ["scheduler", Q]), timeout=20)
    assert done.returncode == 1, done
    assert "Cluster mode is not enabled" in done.stderr, done.stderr
    assert "retrying" not in done.stderr and "Traceback" not in done.stderr, done.stderr
