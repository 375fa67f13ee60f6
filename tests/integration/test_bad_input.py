"""Bad input and bad conditions: payloads that are not JSON, unknown or malformed ids and
names, Redis down (for a caller, and for a worker that must lose nothing), corrupt hashes."""

from __future__ import annotations

import math
import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from blueque import (
    Client,
    ConfigError,
    ConnectionFailedError,
    CorruptKeyError,
    CorruptTaskError,
    InvalidArgumentError,
    InvalidNameError,
    PayloadError,
    Queue,
    TaskNotFoundError,
)
from blueque.cli import cli
from blueque.keys import MAX_DELAY_S, new_task_id
from devtools.processes import free_port, wait_until
from devtools.redis_servers import RedisServer
from tests.support.workers import WorkerSpawner

Q = "bad.q"


@pytest.fixture
def queue(client: Client) -> Queue:
    return client.get_queue(Q)


@pytest.mark.parametrize("bad", [object(), {1, 2}, math.nan, {"k": b"bytes"}])
def test_parameters_that_are_not_json_are_refused(queue: Queue, bad: object) -> None:
    with pytest.raises(PayloadError, match="parameters must be JSON-serializable"):
        queue.enqueue(bad)
    with pytest.raises(PayloadError):
        queue.enqueue_many([1, bad, 3])  # all or nothing
    with pytest.raises(PayloadError):
        queue.schedule(bad, delay=10)
    stats = queue.stats()
    assert (stats.pending, stats.scheduled, stats.totals["enqueued"]) == (0, 0, 0)


@pytest.mark.parametrize(
    "delay",
    [
        math.nan,
        math.inf,
        -math.inf,
        1e30,
        MAX_DELAY_S + 1,
        pytest.param(10**400, id="10**400"),
        "5",
        None,
        True,
    ],
)
def test_delays_no_reader_could_use_are_refused(queue: Queue, delay: object) -> None:
    # `inf`, `nan` and 1e30 were accepted: the task's due time was no date, and `tasks
    # --state scheduled` failed for the whole queue.
    with pytest.raises(InvalidArgumentError) as err:
        queue.schedule("x", delay=delay)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)
    assert queue.client.redis.exists(queue.keys.stats, queue.keys.scheduled) == 0


def test_times_in_range_work_at_both_ends(queue: Queue) -> None:
    far = queue.schedule("far", delay=MAX_DELAY_S)
    past = queue.schedule("past", eta=datetime(1, 1, 2, tzinfo=UTC))
    assert [t.id for t in queue.tasks("scheduled")] == [far]
    assert queue.client.get_task(past).status == "pending"
    with pytest.raises(InvalidArgumentError, match="ten years"):
        queue.schedule("x", eta=datetime(9999, 12, 31, tzinfo=UTC))
    with pytest.raises(InvalidArgumentError, match="eta must be a datetime"):
        queue.schedule("x", eta="2030-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="exactly one of"):
        queue.schedule("x")


@pytest.mark.parametrize("batch", ["abc", b"ab", bytearray(b"a"), {"a": 1, "b": 2}, 5])
def test_a_batch_must_be_a_list(queue: Queue, batch: object) -> None:
    # enqueue_many("abc") made three tasks, one per letter.
    with pytest.raises(InvalidArgumentError, match="enqueue_many takes a list"):
        queue.enqueue_many(batch)  # type: ignore[arg-type]
    assert queue.stats().totals["enqueued"] == 0
    assert len(queue.enqueue_many(iter(["a", "b"]))) == 2  # any other iterable is fine


@pytest.mark.parametrize("limit", [0, -1, 1.5, "5", math.nan])
def test_list_limits(queue: Queue, limit: object) -> None:
    queue.enqueue_many([1, 2])
    with pytest.raises(InvalidArgumentError, match="limit"):
        queue.tasks("pending", limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [math.nan, -1, math.inf, "1"])
def test_wait_timeouts(queue: Queue, timeout: object) -> None:
    task = queue.client.get_task(queue.enqueue(1))
    with pytest.raises(InvalidArgumentError, match="timeout"):
        task.wait(timeout)  # type: ignore[arg-type]


def test_json_values_round_trip_and_a_string_stays_a_string(queue: Queue) -> None:
    values = ["plain text", "", 0, -1.5, None, True, [1, [2]], {"ü": {"x": None}}]
    ids = queue.enqueue_many(values)
    assert [queue.get_task(t).parameters for t in ids] == values
    raw = queue.client.redis.hget(queue.keys.task(ids[0]), "parameters")
    assert raw == '"plain text"'


def test_unknown_task_ids(client: Client, queue: Queue) -> None:
    unknown = new_task_id(Q)
    for call in (client.get_task, queue.cancel, queue.retry, queue.delete):
        with pytest.raises(TaskNotFoundError, match=re.escape(unknown)):
            call(unknown)


@pytest.mark.parametrize(
    "bad_id", ["", "nocolon", "bad.q:xyz", "bad.q:" + "0" * 31, "a b:" + "0" * 32]
)
def test_malformed_task_ids(client: Client, bad_id: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid task id"):
        client.get_task(bad_id)


def test_task_id_of_another_queue(client: Client) -> None:
    other = client.get_queue("other.q").enqueue(1)
    with pytest.raises(InvalidNameError, match="does not belong"):
        client.get_queue(Q).get_task(other)
    with pytest.raises(InvalidNameError):
        client.get_queue(Q).cancel(other)


@pytest.mark.parametrize("name", ["", "a b", "{tag}", "a:b", "x" * 201, "é", None, 7])
def test_invalid_queue_names(client: Client, name: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid queue name"):
        client.get_queue(name)  # type: ignore[arg-type]
    assert client.queues() == []


@pytest.mark.parametrize("namespace", ["app{1}", "x}:y", ""])
def test_invalid_namespace_is_refused_before_anything_is_written(
    redis_url: str, namespace: str
) -> None:
    # With `app{1}` the scripts took `app{1}:` as the queue's prefix while Python used
    # `app{1}:{q}:`: a claimed task was dropped as missing and its hash said pending forever.
    with pytest.raises(InvalidNameError, match="invalid namespace"):
        Client(redis_url, namespace=namespace)
    with Client(redis_url) as client:
        assert client.redis.keys("*") == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, "nan", 1e300])
def test_non_finite_or_absurd_settings_are_refused(queue: Queue, bad: object) -> None:
    with pytest.raises(ConfigError, match="retry_delay_s must be"):
        queue.set_config(retry_max=3, retry_delay_s=bad)
    assert queue.client.redis.exists(queue.keys.config) == 0  # all or nothing
    assert math.isfinite(queue.config().retry_delay_s)


def test_retry_due_time_stays_a_date(client: Client, queue: Queue) -> None:
    # The largest settings allowed, after many retries: backoff ^ retries is inf in Lua, and
    # a due time of 'inf' could no longer be read.
    queue.set_config(retry_max=1000, retry_delay_s=MAX_DELAY_S, retry_backoff=100)
    task_id = queue.enqueue("x")
    client.redis.hset(queue.keys.task(task_id), "retries", 999)
    queue.transitions.heartbeat("w", 30_000, {"host": "h", "pid": 1})
    assert client.redis.lmove(queue.keys.pending, queue.keys.worker_tasks("w"), "LEFT", "RIGHT")
    begun = queue.transitions.begin("w", task_id, 1)
    assert begun.status == "ok", begun
    error = '{"type":"E","message":"m"}'
    assert queue.transitions.finish("w", task_id, begun.attempt, "failed", error) == "scheduled"
    task = client.get_task(task_id)
    assert task.due_at is not None and task.due_at.year == 9999
    assert [t.id for t in queue.tasks("scheduled")] == [task_id]


def test_invalid_worker_id(queue: Queue) -> None:
    with pytest.raises(InvalidNameError, match="invalid worker id"):
        queue.drain("no/slashes")


def test_corrupt_task_hash_is_a_clear_error(client: Client, queue: Queue) -> None:
    bad_json, no_state = queue.enqueue_many([1, 2])
    client.redis.hset(queue.keys.task(bad_json), "parameters", "{not json")
    client.redis.hdel(queue.keys.task(no_state), "state")
    with pytest.raises(CorruptTaskError, match="parameters is not valid JSON"):
        client.get_task(bad_json)
    with pytest.raises(CorruptTaskError, match=f"task {re.escape(no_state)} is corrupt"):
        client.get_task(no_state)


def test_lists_show_a_corrupt_task_and_the_others(client: Client, queue: Queue) -> None:
    deep, wrong_type, good = queue.enqueue_many([1, 2, 3])
    client.redis.hset(queue.keys.task(deep), "parameters", "[" * 5000 + "]" * 5000)
    client.redis.delete(queue.keys.task(wrong_type))
    client.redis.set(queue.keys.task(wrong_type), "a string")
    listed = {t.id: t for t in queue.tasks("pending")}
    assert listed[good].corrupt is None and listed[good].parameters == 3
    assert listed[deep].corrupt == "parameters is nested too deeply to decode"
    assert (listed[deep].status, listed[deep].parameters) == ("pending", None)
    key = queue.keys.task(wrong_type)
    assert f"key {key} holds a string, not a hash" in (listed[wrong_type].corrupt or "")
    assert listed[wrong_type].status == "corrupt"
    # Reading one task stays strict, and names the key.
    with pytest.raises(CorruptTaskError, match="nested too deeply"):
        client.get_task(deep)
    with pytest.raises(CorruptTaskError, match=re.escape(f"key {key} holds a string")) as err:
        client.get_task(wrong_type)
    assert err.value.key == key


@pytest.mark.parametrize(
    ("key", "corrupt", "writes"),
    [
        ("pending", lambda r, k: r.set(k, "x"), {"now"}),
        ("scheduled", lambda r, k: r.rpush(k, "x"), {"later"}),
        ("stats", lambda r, k: r.hset(k, "live", "many"), {"now", "later"}),
        ("stats", lambda r, k: r.sadd(k, "x"), {"now", "later"}),
    ],
)
def test_a_failing_enqueue_creates_nothing(
    client: Client, queue: Queue, key: str, corrupt: Any, writes: set[str]
) -> None:
    # pending held a string: the task hashes were written, then RPUSH failed, and the tasks
    # were in no list. A corrupt key fails the enqueues that write it, and only those.
    name = getattr(queue.keys, key)
    corrupt(client.redis, name)
    mixed = [(new_task_id(Q), "1", 0), (new_task_id(Q), "2", 60_000)]
    calls: dict[str, list[Callable[[], object]]] = {
        "now": [lambda: queue.enqueue(1), lambda: queue.enqueue_many([1, 2])],
        "later": [lambda: queue.schedule(1, delay=60)],
        "both": [lambda: queue.transitions.enqueue(mixed)],
    }
    for kind, kind_calls in calls.items():
        for call in kind_calls:
            if kind == "both" or kind in writes:
                with pytest.raises(CorruptKeyError, match=re.escape(f"key {name} ")) as err:
                    call()
                assert err.value.key == name
                assert client.redis.keys(queue.keys.task("*")) == []
            else:
                assert call()
                created = client.redis.keys(queue.keys.task("*"))
                client.redis.delete(*created)


def test_script_errors_name_the_corrupt_key(client: Client, queue: Queue) -> None:
    bad, good = queue.enqueue_many([1, 2])
    task_key = queue.keys.task(bad)
    client.redis.delete(task_key)
    client.redis.set(task_key, "not a hash")
    assert client.redis.lmove(queue.keys.pending, queue.keys.worker_tasks("w"), "LEFT", "RIGHT")
    # A derived key (the head of the worker's list), not in the script's KEYS.
    with pytest.raises(CorruptTaskError, match=re.escape(f"key {task_key} holds a string")):
        queue.transitions.begin("w", None, 1)
    with pytest.raises(CorruptTaskError) as err:
        queue.requeue_worker("w")
    assert err.value.key == task_key
    client.redis.hset(queue.keys.config, "keep_finished", "lots")
    with pytest.raises(CorruptKeyError, match='field keep_finished is "lots"') as e:
        queue.promote_due()
    assert e.value.key == queue.keys.config
    assert client.get_task(good).status == "pending"  # nothing else is touched


def test_redis_down_is_a_clear_error() -> None:
    with Client(hostname="127.0.0.1", port=free_port()) as client:
        queue = client.get_queue(Q)
        with pytest.raises(
            ConnectionFailedError, match="Redis unreachable while trying to enqueue"
        ):
            queue.enqueue(1)
        with pytest.raises(ConnectionFailedError, match="read task"):
            client.get_task(new_task_id(Q))
        with pytest.raises(ConnectionFailedError, match="stats"):
            queue.stats()
        with pytest.raises(ConnectionFailedError):
            client.ping()


# -- with real workers, on the standalone server --------------------------------------------


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test alone, since the test takes it down."""
    with RedisServer() as server:
        yield server


def test_result_that_is_not_json_fails_the_task(
    client_standalone: Client, redis_url: str, workers: WorkerSpawner
) -> None:
    queue = client_standalone.get_queue(Q)
    bad, good = queue.enqueue_many([{"unserializable": True}, {"result": "fine"}])
    workers.start(redis_url, Q)
    task = client_standalone.get_task(bad).wait(20)
    assert task.status == "failed" and task.error is not None
    assert task.error["type"] == "blueque.errors.PayloadError"
    assert "result must be JSON-serializable" in task.error["message"]
    assert client_standalone.get_task(good).wait(20).result == "fine"


@pytest.mark.parametrize(
    "parameters", ["{not json", "[" * 5000 + "]" * 5000], ids=["not-json", "5000-deep"]
)
def test_worker_fails_a_corrupt_task_and_goes_on(
    client_standalone: Client, redis_url: str, workers: WorkerSpawner, parameters: str
) -> None:
    queue = client_standalone.get_queue(Q)
    corrupt, good = queue.enqueue_many([1, {"result": "after corrupt"}])
    client_standalone.redis.hset(queue.keys.task(corrupt), "parameters", parameters)
    worker = workers.start(redis_url, Q)
    assert client_standalone.get_task(good).wait(20).result == "after corrupt"
    fields = client_standalone.redis.hgetall(queue.keys.task(corrupt))
    assert fields["state"] == "failed", fields
    assert "CorruptTaskError" in fields["error"]
    assert worker.poll() is None, worker.output()


def test_worker_drops_a_task_whose_hash_is_corrupt_and_goes_on(
    client_standalone: Client, redis_url: str, workers: WorkerSpawner
) -> None:
    # It exited 1, restarted into the same failure, forever.
    queue = client_standalone.get_queue(Q)
    corrupt, good = queue.enqueue_many([1, {"result": "after corrupt"}])
    key = queue.keys.task(corrupt)
    client_standalone.redis.delete(key)
    client_standalone.redis.set(key, "not a hash")
    worker = workers.start(redis_url, Q, env={"BLUEQUE_WORKER_ID": "w-corrupt"})
    assert client_standalone.get_task(good).wait(20).result == "after corrupt"
    assert worker.poll() is None, worker.output()
    assert f"key {key} holds a string, not a hash" in worker.output()
    assert client_standalone.redis.lrange(queue.keys.worker_tasks("w-corrupt"), 0, -1) == []
    stats = queue.stats()
    assert (stats.pending, stats.reserved, stats.running) == (0, 0, 0)


def test_worker_waits_for_a_corrupt_queue_key_to_be_repaired(
    client_standalone: Client, redis_url: str, workers: WorkerSpawner
) -> None:
    queue = client_standalone.get_queue(Q)
    client_standalone.redis.set(queue.keys.pending, "not a list")
    worker = workers.start(redis_url, Q, env={"BLUEQUE_RECONNECT_MAX_DELAY_S": "0.2"})
    message = f"key {queue.keys.pending} holds a string, not a list"
    wait_until(lambda: worker.output().count(message) >= 2, 20, what="the key to be named")
    assert worker.poll() is None, worker.output()
    client_standalone.redis.delete(queue.keys.pending)  # repaired
    task_id = queue.enqueue({"result": "after repair"})
    assert client_standalone.get_task(task_id).wait(20).result == "after repair"


def test_worker_rides_out_a_redis_outage_and_loses_nothing(
    own_server: RedisServer, workers: WorkerSpawner, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    with Client(own_server.url) as client:
        queue = client.get_queue(Q)
        task_id = queue.enqueue({"gate": str(gate), "started": str(started), "result": "kept"})
        worker = workers.start(own_server.url, Q, env={"BLUEQUE_RECONNECT_MAX_DELAY_S": "0.4"})
        wait_until(started.exists, 20, what="the task to start")
        client.redis.save()  # the outage keeps the data: the server restarts from this dump

    own_server.kill()
    gate.touch()  # the task finishes while Redis is down: its result must wait, not vanish
    retries = wait_until(
        lambda: re.findall(r"retrying in (\d+\.\d) s", worker.output())[3:], 20, what="retries"
    )
    assert worker.poll() is None, worker.output()
    delays = [float(d) for d in re.findall(r"retrying in (\d+\.\d) s", worker.output())]
    assert delays[0] < delays[1] < delays[2] and max(delays) <= 0.4, delays  # backoff, capped
    assert retries

    own_server.start()  # same port, same directory: the dump is loaded
    with Client(own_server.url) as client:
        queue = client.get_queue(Q)
        task = client.get_task(task_id).wait(20)
        assert (task.status, task.result, task.attempts) == ("complete", "kept", 1)
        after = queue.enqueue({"result": "after the outage"})
        assert client.get_task(after).wait(20).result == "after the outage"
        assert worker.poll() is None
        assert queue.stats().totals["stale"] == 0


def test_stopping_idle_worker_does_not_wait_for_redis(
    own_server: RedisServer, workers: WorkerSpawner
) -> None:
    worker = workers.start(own_server.url, Q, env={"BLUEQUE_WORKER_ID": "leaver"})
    with Client(own_server.url) as client:
        wait_until(lambda: client.get_queue(Q).workers(), 10, what="the worker to register")
    own_server.kill()
    wait_until(lambda: "Redis unreachable" in worker.output(), 10, what="the worker to notice")
    began = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0, worker.output()
    assert time.monotonic() - began < 3.0
    assert "leaving without deregistering" in worker.output()


def test_worker_started_before_redis_waits_for_it(
    own_server: RedisServer, workers: WorkerSpawner
) -> None:
    own_server.kill()
    worker = workers.start(own_server.url, Q, env={"BLUEQUE_RECONNECT_MAX_DELAY_S": "0.2"})
    wait_until(
        lambda: worker.output().count("Redis unreachable") >= 2, 20, what="connection retries"
    )
    assert worker.poll() is None
    own_server.start()
    with Client(own_server.url) as client:
        task_id = client.get_queue(Q).enqueue({"result": "once Redis is up"})
        assert client.get_task(task_id).wait(20).result == "once Redis is up"


# -- hostile input through the CLI ----------------------------------------------------------

SECRET = "s3cret-pw"
ECHO = "tests.support.task_functions:echo"
NO_TASK = "bad.q:" + "0" * 32
HOSTILE: list[tuple[str, tuple[str, ...], bytes | None]] = [
    ("bad scheme", ("--url", f"http://u:{SECRET}@127.0.0.1:1/0", "info"), None),
    ("db not a number", ("--url", f"redis://:{SECRET}@{{host}}/abc", "info"), None),
    ("port not a number", ("--url", f"redis://:{SECRET}@127.0.0.1:notaport/0", "info"), None),
    ("port out of range", ("--url", f"redis://:{SECRET}@127.0.0.1:99999/0", "info"), None),
    ("sentinel port", ("--url", f"redis+sentinel://u:{SECRET}@h:x/m", "info"), None),
    ("db query", ("--url", f"unix:///tmp/none.sock?db=x&password={SECRET}", "info"), None),
    ("namespace", ("--namespace", "app{1}", "enqueue", Q, "x"), None),
    ("delay inf", ("enqueue", Q, "x", "--delay", "inf"), None),
    ("delay nan", ("enqueue", Q, "x", "--delay", "nan"), None),
    ("delay 1e30", ("enqueue", Q, "x", "--delay", "1e30"), None),
    ("delay 100000000d", ("enqueue", Q, "x", "--delay", "100000000d"), None),
    ("delay -1", ("enqueue", Q, "x", "--delay", "-1"), None),
    ("at year 9999", ("enqueue", Q, "x", "--at", "9999-12-31T00:00:00"), None),
    ("queue name", ("enqueue", "bad{q}", "x"), None),
    ("params not UTF-8", ("enqueue", Q, "a\udcffb"), None),
    ("stdin not UTF-8", ("enqueue", Q, "-"), b"\xff\xfe"),
    ("stdin 100000 deep", ("enqueue", Q, "-"), b"[" * 100_000 + b"]" * 100_000),
    ("config nan", ("config", Q, "retry_delay_s=nan"), None),
    ("config inf", ("config", Q, "retry_backoff=inf"), None),
    ("config huge", ("config", Q, "finished_ttl_s=1e300"), None),
    ("config zero", ("config", Q, "max_attempts=0"), None),
    ("config unknown", ("config", Q, "nope=1"), None),
    ("config malformed", ("config", Q, "retry_max"), None),
    ("1 ms heartbeat", ("worker", Q, "--task", ECHO, "--heartbeat-interval", "0.001"), None),
    (
        "claim past socket timeout",
        ("worker", Q, "--task", ECHO, "--claim-timeout", "8", "--heartbeat-ttl", "60"),
        None,
    ),
    ("task not importable", ("worker", Q, "--task", "no_such_module:fn"), None),
    ("limit 0", ("tasks", Q, "--limit", "0"), None),
    ("state", ("tasks", Q, "--state", "lost"), None),
    ("task id", ("status", "not-an-id"), None),
    ("wait timeout nan", ("wait", NO_TASK, "--timeout", "nan"), None),
    ("scheduler interval", ("scheduler", "--interval", "inf"), None),
    ("unknown option", ("--frobnicate", "info"), None),
]


@pytest.mark.parametrize(("args", "stdin"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_input_gets_one_line_and_writes_nothing(
    redis_url: str, args: tuple[str, ...], stdin: bytes | None
) -> None:
    host = redis_url.removeprefix("redis://").partition("/")[0]
    argv = [a.replace("{host}", host) for a in args]
    result = CliRunner().invoke(cli, ["--url", redis_url, *argv], input=stdin)
    assert result.exit_code in (1, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and SECRET not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    with Client(redis_url) as client:
        assert client.redis.keys("*") == []
