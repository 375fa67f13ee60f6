"""Interleavings and hostile values that once lost, duplicated or mislabelled a task (issue 8),
driven script by script on standalone Redis and on a 3-master Redis Cluster."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from redis.exceptions import ResponseError

from blueque import Client, ConfigError, CorruptKeyError, Queue
from blueque.keys import new_task_id
from tests.support.protocol import claim, collect, names

ERROR = json.dumps({"type": "ValueError", "message": "boom"})


def begun(queue: Queue, worker_id: str) -> tuple[str, int]:
    """Claims and begins the head of pending; returns (task id, attempt)."""
    task_id = claim(queue, worker_id)
    assert task_id is not None
    answer = queue.transitions.begin(worker_id, task_id, 1)
    assert answer.status == "ok", answer
    return task_id, answer.attempt


def snapshot(queue: Queue, *extra: str) -> dict[str, bytes | None]:
    """Every key of the queue a test touches, serialized: equal snapshots, same state."""
    k = queue.keys
    keys = [
        k.pending,
        k.scheduled,
        k.complete,
        k.failed,
        k.cancelled,
        k.stats,
        k.config,
        k.workers,
        k.draining,
        *extra,
    ]
    return {key: queue.client.redis.dump(key) for key in keys}


# -- a stop between claim and run (case 9) -----------------------------------------------------


def test_release_gives_a_begun_task_back_to_the_head_at_no_cost(client: Client) -> None:
    queue = client.get_queue("release.q")
    queue.set_config(max_attempts=1)
    first, second = queue.enqueue_many([1, 2])
    task_id, attempt = begun(queue, "w1")
    assert task_id == first
    t = queue.transitions
    assert t.release("w2", first, attempt) == "stale"  # not its holder
    assert t.release("w1", first, attempt + 1) == "stale"  # not that attempt
    with queue.events() as events:
        assert t.release("w1", first, attempt) == "released"
        assert names(collect(events, 1)) == ["released"]
    assert t.release("w1", first, attempt) == "stale"  # a repeat changes nothing
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [first, second]
    assert client.redis.llen(queue.keys.worker_tasks("w1")) == 0
    task = client.get_task(first)
    assert (task.status, task.attempts, task.losses, task.pid) == ("pending", 0, 0, None)
    stats = queue.stats()
    assert (stats.running, stats.reserved, stats.pending) == (0, 0, 2)
    assert (stats.totals["released"], stats.totals["stale"], stats.totals["failed"]) == (1, 0, 0)
    assert [w.task for w in queue.workers()] == [None]
    # It runs later as the first attempt.
    assert begun(queue, "w2") == (first, 1)


def test_release_of_a_task_whose_cancel_was_requested_cancels_it(client: Client) -> None:
    queue = client.get_queue("release.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    assert queue.cancel(task_id) == "requested"
    assert queue.transitions.release("w1", task_id, attempt) == "cancelled"
    task = client.get_task(task_id)
    assert (task.status, task.attempts) == ("cancelled", 0)
    stats = queue.stats()
    assert (stats.running, stats.cancelled, stats.reserved, stats.totals["released"]) == (
        0,
        1,
        0,
        0,
    )


# -- a worker reaped while alive (case 5) ------------------------------------------------------


def test_begin_refuses_a_worker_that_is_not_registered(client: Client) -> None:
    queue = client.get_queue("unregistered.q")
    first, second = queue.enqueue_many([1, 2])
    queue.transitions.heartbeat("w1", 60_000, {})
    queue.requeue_worker("w1", "heartbeat expired")  # reaped, but alive: it claims on
    t = queue.transitions
    assert client.redis.blmove(queue.keys.pending, queue.keys.worker_tasks("w1"), 1) == first
    with queue.events() as events:
        assert t.begin("w1", None, 1).status == "unregistered"
        got = collect(events, 1)
    assert (names(got), got[0]["worker"]) == (["refused"], "w1")
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [first, second]
    assert client.redis.llen(queue.keys.worker_tasks("w1")) == 0
    assert client.get_task(first).attempts == 0
    stats = queue.stats()
    assert (stats.reserved, stats.running, stats.totals["refused"]) == (0, 0, 1)
    # Registered again (its next heartbeat), it begins; a later death is seen by reap.
    t.heartbeat("w1", 100, {})
    assert begun(queue, "w1") == (first, 1)
    client.redis.delete(queue.keys.worker_alive("w1"))
    assert queue.reap() == (1, 1, 0)
    assert client.get_task(first).status == "pending"


# -- begin checks the task, not only the list (cases 6 and 7) ----------------------------------


def test_begin_drops_a_copy_of_a_finished_task(client: Client) -> None:
    queue = client.get_queue("dup.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    assert queue.transitions.finish("w1", task_id, attempt, "complete", '"once"') == "complete"
    client.redis.rpush(queue.keys.pending, task_id)  # a stray copy (a repeated id)
    assert claim(queue, "w2") == task_id
    with queue.events() as events:
        assert queue.transitions.begin("w2", None, 1).status == "dropped"
        got = collect(events, 1)
    assert (names(got), got[0]["state"]) == (["dropped"], "complete")
    assert client.redis.llen(queue.keys.worker_tasks("w2")) == 0
    task = client.get_task(task_id)
    assert (task.status, task.result, task.attempts, task.worker) == ("complete", "once", 1, "w1")
    assert client.redis.zscore(queue.keys.complete, task_id) is not None
    stats = queue.stats()
    assert (stats.totals["dropped"], stats.totals["started"], stats.complete) == (1, 1, 1)


def test_begin_drops_a_copy_of_a_task_running_elsewhere(client: Client) -> None:
    queue = client.get_queue("dup.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    client.redis.rpush(queue.keys.pending, task_id)
    assert claim(queue, "w2") == task_id
    assert queue.transitions.begin("w2", task_id, 1).status == "dropped"
    task = client.get_task(task_id)
    assert (task.status, task.worker, task.attempts) == ("running", "w1", attempt)
    assert client.redis.lrange(queue.keys.worker_tasks("w1"), 0, -1) == [task_id]
    assert queue.transitions.finish("w1", task_id, attempt, "complete", '"r"') == "complete"
    assert queue.stats().totals["started"] == 1


def test_requeue_leaves_a_task_running_elsewhere_alone(client: Client) -> None:
    queue = client.get_queue("dup.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    client.redis.rpush(queue.keys.pending, task_id)
    assert claim(queue, "w2") == task_id  # w2 dies holding the stray copy
    assert queue.requeue_worker("w2", "pod deleted") == (0, 0)
    task = client.get_task(task_id)
    assert (task.status, task.worker, task.attempts, task.losses) == ("running", "w1", 1, 0)
    assert client.redis.llen(queue.keys.pending) == 0
    assert queue.stats().running == 1
    assert queue.transitions.finish("w1", task_id, attempt, "complete", '"r"') == "complete"


def test_enqueue_refuses_a_batch_with_a_repeated_id(client: Client) -> None:
    queue = client.get_queue("dup.q")
    task_id = new_task_id("dup.q")
    batch = [(task_id, "1", 0), (new_task_id("dup.q"), "2", 0), (task_id, "3", 0)]
    with pytest.raises(ResponseError, match="repeated"):
        queue.transitions.enqueue(batch)
    assert not client.redis.exists(queue.keys.task(task_id))
    stats = queue.stats()
    assert (stats.pending, stats.totals["enqueued"]) == (0, 0)
    existing = queue.enqueue(1)
    with pytest.raises(ResponseError, match="already exists"):
        queue.transitions.enqueue([(new_task_id("dup.q"), "2", 0), (existing, "3", 0)])
    assert client.redis.lrange(queue.keys.pending, 0, -1) == [existing]


# -- losses and retries are two budgets (case 10) -----------------------------------------------


def test_automatic_retries_do_not_use_up_the_worker_lost_budget(client: Client) -> None:
    queue = client.get_queue("budget.q")
    queue.set_config(max_attempts=2, retry_max=2, retry_delay_s=0)
    task_id = queue.enqueue(1)
    t = queue.transitions
    for attempt in (1, 2):  # two failures, each retried automatically
        assert begun(queue, "w1") == (task_id, attempt)
        assert t.finish("w1", task_id, attempt, "failed", ERROR) == "scheduled"
        assert queue.promote_due()[0] == 1
    assert begun(queue, "w1") == (task_id, 3)
    assert queue.requeue_worker("w1", "pod deleted") == (1, 0)  # first loss of two
    task = client.get_task(task_id)
    assert (task.status, task.attempts, task.retries, task.losses) == ("pending", 3, 2, 1)
    assert begun(queue, "w2") == (task_id, 4)
    assert queue.requeue_worker("w2", "pod deleted") == (0, 1)  # second loss: it fails
    task = client.get_task(task_id)
    assert (task.status, task.attempts, task.losses) == ("failed", 4, 2)
    assert task.error is not None and task.error["type"] == "WorkerLost"
    assert "lost 2 of max_attempts 2" in task.error["message"]
    # A manual retry starts both budgets again; attempts, the fencing token, go on.
    queue.retry(task_id)
    task = client.get_task(task_id)
    assert (task.status, task.attempts, task.losses, task.retries) == ("pending", 4, 0, 0)
    assert begun(queue, "w3") == (task_id, 5)
    assert queue.requeue_worker("w3") == (1, 0)


# -- cancel of a task reserved by a draining worker (case 12) ----------------------------------


def test_cancel_of_a_task_reserved_by_a_draining_worker_is_applied(client: Client) -> None:
    queue = client.get_queue("drain.q")
    task_id = queue.enqueue(1)
    queue.transitions.heartbeat("w1", 60_000, {})
    assert queue.drain("w1")
    assert claim(queue, "w1") == task_id  # claimed before the worker learned of the drain
    assert queue.cancel(task_id) == "requested"
    assert queue.transitions.begin("w1", None, 1).status == "cancelled"
    task = client.get_task(task_id)
    assert (task.status, task.attempts) == ("cancelled", 0)
    stats = queue.stats()
    assert (stats.pending, stats.reserved, stats.cancelled, stats.demand) == (0, 0, 1, 0)
    assert stats.totals["refused"] == 0


# -- progress is fenced like finish (case 13) ---------------------------------------------------


def test_progress_of_a_stale_worker_never_lands_in_a_later_run(client: Client) -> None:
    queue = client.get_queue("progress.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    t = queue.transitions
    assert t.set_progress("w1", task_id, attempt, '"w1 at work"')
    queue.requeue_worker("w1", "partitioned")  # w1 is presumed dead, but it is not
    task_id, attempt = begun(queue, "w2")
    # w1 even knows the live attempt number: it is neither the holder nor holds the task.
    assert not t.set_progress("w1", task_id, attempt, '"stale"')
    assert not t.set_progress("w2", task_id, attempt + 1, '"wrong attempt"')
    assert t.set_progress("w2", task_id, attempt, '"w2 at work"')
    assert client.get_task(task_id).progress == "w2 at work"


# -- drains survive re-registration and restarts (case 11) -------------------------------------


def test_a_drain_survives_the_worker_being_requeued_and_registering_again(
    client: Client,
) -> None:
    queue = client.get_queue("drain.q")
    t = queue.transitions
    t.heartbeat("w1", 60_000, {})
    assert queue.drain("w1")
    assert queue.requeue_worker("w1", "heartbeat expired") == (0, 0)  # reaped alive
    stats = queue.stats()
    assert (stats.workers, stats.draining) == (0, 0)  # a mark without a worker is not counted
    assert t.heartbeat("w1", 60_000, {}) == (True, False)
    assert [(w.id, w.draining, w.state) for w in queue.workers()] == [("w1", True, "draining")]
    assert queue.stats().draining == 1
    task_id = queue.enqueue(1)
    assert claim(queue, "w1") == task_id
    assert t.begin("w1", None, 1).status == "draining"
    # Only the worker's own clean exit (or undrain) clears it.
    t.requeue_worker("w1", "worker stopped", exiting=True)
    assert not client.redis.sismember(queue.keys.draining, "w1")
    assert t.heartbeat("w1", 60_000, {}) == (False, False)


def test_draining_counts_registered_workers_only(client: Client) -> None:
    queue = client.get_queue("drain.q")
    queue.transitions.heartbeat("w1", 60_000, {})
    assert queue.drain("w1") and queue.drain("starting-pod")  # not registered yet
    stats = queue.stats()
    assert (stats.workers, stats.draining) == (1, 1)
    queue.transitions.heartbeat("starting-pod", 60_000, {})
    assert queue.stats().draining == 2
    assert queue.undrain("starting-pod")
    assert queue.stats().draining == 1


# -- no script writes half-way (case 2) ---------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "abc", "", "0x10", "1e400"])
def test_a_bad_config_value_fails_finish_before_any_write(client: Client, value: str) -> None:
    queue = client.get_queue("badconfig.q")
    queue.set_config(retry_max=1)
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    client.redis.hset(queue.keys.config, "retry_delay_s", value)
    extra = [queue.keys.task(task_id), queue.keys.worker_tasks("w1"), queue.keys.worker("w1")]
    before = snapshot(queue, *extra)
    with pytest.raises(CorruptKeyError, match=rf"{queue.keys.config}.* retry_delay_s"):
        queue.transitions.finish("w1", task_id, attempt, "failed", ERROR)
    assert snapshot(queue, *extra) == before
    client.redis.hset(queue.keys.config, "retry_delay_s", "0")
    assert queue.transitions.finish("w1", task_id, attempt, "failed", ERROR) == "scheduled"


@pytest.mark.parametrize(
    ("field", "value", "retention"),
    [
        ("max_attempts", "nan", False),
        ("max_attempts", "0", False),
        ("keep_finished", "1.5", True),
        ("finished_ttl_s", "inf", True),
    ],
)
def test_a_bad_config_value_fails_requeue_reap_cancel_and_promote_before_any_write(
    client: Client, field: str, value: str, retention: bool
) -> None:
    queue = client.get_queue("badconfig.q")
    running_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    waiting_id = queue.enqueue(2)
    queue.cancel(running_id)  # requested: requeue would cancel it
    client.redis.delete(queue.keys.worker_alive("w1"))  # dead: reap would requeue it
    client.redis.hset(queue.keys.config, field, value)
    extra = [
        queue.keys.task(running_id),
        queue.keys.task(waiting_id),
        queue.keys.worker_tasks("w1"),
        queue.keys.worker("w1"),
    ]
    before = snapshot(queue, *extra)
    calls: list[Callable[[], object]] = [
        lambda: queue.requeue_worker("w1"),
        queue.reap,
        queue.config,
    ]
    if retention:  # every script that may finish a task applies retention
        calls += [
            lambda: queue.transitions.cancel(waiting_id),
            queue.promote_due,
            lambda: queue.transitions.release("w1", running_id, attempt),
        ]
    for call in calls:
        with pytest.raises(CorruptKeyError, match=f" {field} "):
            call()
        assert snapshot(queue, *extra) == before


def test_a_corrupt_counter_fails_the_scripts_that_count_it_before_any_write(
    client: Client,
) -> None:
    queue = client.get_queue("badstats.q")
    task_id, attempt = begun(queue, "w1") if queue.enqueue(1) else ("", 0)
    client.redis.hset(queue.keys.stats, "completed", "many")
    extra = [queue.keys.task(task_id), queue.keys.worker_tasks("w1"), queue.keys.worker("w1")]
    before = snapshot(queue, *extra)
    with pytest.raises(CorruptKeyError, match=f"{queue.keys.stats} field completed"):
        queue.transitions.finish("w1", task_id, attempt, "complete", '"r"')
    assert snapshot(queue, *extra) == before
    live = client.redis.hget(queue.keys.stats, "live")
    client.redis.hset(queue.keys.stats, "live", "lots")
    with pytest.raises(CorruptKeyError, match="field live"):
        queue.enqueue(2)  # creates no task
    assert client.redis.llen(queue.keys.pending) == 0
    # A counter that a script does not count does not stop it.
    client.redis.hset(queue.keys.stats, "live", str(live))
    assert queue.enqueue(3) and client.redis.llen(queue.keys.pending) == 1


@pytest.mark.parametrize(
    ("script", "counter", "value"),
    [
        ("finish", "running", "many"),
        ("finish", "live", "many"),
        ("finish", "completed", "many"),
        ("finish", "completed", "9223372036854775807"),  # HINCRBY would overflow
        ("cycle", "running", "many"),
        ("cycle", "live", "many"),
        ("cycle", "completed", "many"),
        ("begin", "running", "many"),
        ("begin", "started", "many"),
    ],
)
def test_finish_begin_and_cycle_count_first_and_take_back_what_they_counted(
    client: Client, script: str, counter: str, value: str
) -> None:
    """Their increments are their first writes; when one fails, those made already are taken
    back: the error names the counter and nothing has changed. (A counter that was absent,
    which only a queue's very first transitions meet, is left at 0, which reads the same.)"""
    queue = client.get_queue("counting.q")
    t = queue.transitions
    t.heartbeat("w1", 60_000, {})
    first, second = queue.enqueue_many([1, 2])
    if script == "begin":
        assert t.claim("w1", 1) == first
    else:
        assert t.claim_and_begin("w1", 1, 1.0).task_id == first
    for seen in ("running", "started", "completed"):
        client.redis.hsetnx(queue.keys.stats, seen, 0)
    client.redis.hset(queue.keys.stats, counter, value)
    extra = [
        queue.keys.task(first),
        queue.keys.task(second),
        queue.keys.worker_tasks("w1"),
        queue.keys.worker("w1"),
    ]
    before = snapshot(queue, *extra)
    calls: dict[str, Callable[[], object]] = {
        "finish": lambda: t.finish("w1", first, 1, "complete", "1"),
        "cycle": lambda: t.finish_claim_begin("w1", first, 1, "complete", "1", 1),
        "begin": lambda: t.begin("w1", None, 1),
    }
    with pytest.raises(CorruptKeyError, match=f"{queue.keys.stats} field {counter} is"):
        calls[script]()
    assert snapshot(queue, *extra) == before


@pytest.mark.parametrize("broken", ["started", "task hash", "pending"])
def test_a_cycle_whose_claim_or_begin_fails_keeps_its_finish_whole(
    client: Client, broken: str
) -> None:
    """cycle leaves finish's `running -= 1` and its clearing of the worker hash to the begin
    that follows; when the claim or the begin fails (an error reply, or a key of another
    type, which stops a Redis command), they are written all the same: the finish is whole,
    as it was before the claim, and the error names the key."""
    queue = client.get_queue("cyclefail.q")
    k = queue.keys
    t = queue.transitions
    t.heartbeat("w1", 60_000, {})
    first, second = queue.enqueue_many([1, 2])
    assert t.claim_and_begin("w1", 1, 1.0).task_id == first
    blamed = {"started": f"{k.stats} field started", "task hash": k.task(second)}
    if broken == "started":
        client.redis.hset(k.stats, "started", "many")
    elif broken == "task hash":
        client.redis.delete(k.task(second))
        client.redis.set(k.task(second), "not a hash")
    else:
        client.redis.delete(k.pending)
        client.redis.set(k.pending, "not a list")
    with pytest.raises(CorruptKeyError, match=blamed.get(broken, k.pending)):
        t.finish_claim_begin("w1", first, 1, "complete", "1", 1)
    assert client.redis.hmget(k.task(first), "state", "pid") == ["complete", None]
    assert client.redis.hget(k.stats, "running") == "0"
    assert client.redis.hmget(k.worker("w1"), "task", "task_started_at") == ["", ""]
    assert client.redis.zrange(k.complete, 0, -1) == [first]
    # The claim before a failed begin stands, as after a failed begin in [BLMOVE, begin].
    held = [] if broken == "pending" else [second]
    assert client.redis.lrange(k.worker_tasks("w1"), 0, -1) == held


@pytest.mark.parametrize("answer", ["draining", "unregistered", "cancelled", "missing", "dropped"])
def test_a_cycle_whose_begin_refuses_counts_the_finished_task_out(
    client: Client, answer: str
) -> None:
    """Whatever begin answers but 'ok', the finished task's `running -= 1` and its clearing of
    the worker hash, which cycle left to the begin, are written."""
    queue = client.get_queue("cyclerefused.q")
    k = queue.keys
    t = queue.transitions
    t.heartbeat("w1", 60_000, {})
    first, second = queue.enqueue_many([1, 2])
    assert t.claim_and_begin("w1", 1, 1.0).task_id == first
    if answer == "draining":
        client.redis.sadd(k.draining, "w1")
    elif answer == "unregistered":
        client.redis.srem(k.workers, "w1")
    elif answer == "cancelled":
        client.redis.hset(k.task(second), "cancel_requested", "1")
    elif answer == "missing":
        client.redis.delete(k.task(second))
    else:
        client.redis.hset(k.task(second), "state", "complete")
    state, after = t.finish_claim_begin("w1", first, 1, "complete", "1", 1)
    assert (state, after.status, after.task_id) == ("complete", answer, second)
    assert client.redis.hget(k.stats, "running") == "0"
    assert client.redis.hmget(k.worker("w1"), "task", "task_started_at") == ["", ""]


def test_bad_script_arguments_fail_before_any_write(client: Client) -> None:
    queue = client.get_queue("badargs.q")
    t = queue.transitions
    batch = [(new_task_id("badargs.q"), "1", 0), (new_task_id("badargs.q"), "2", "soon")]
    with pytest.raises(ResponseError, match="whole number"):
        t.enqueue(batch)  # type: ignore[arg-type]
    with pytest.raises(ResponseError, match="ttl"):
        t.heartbeat("w1", 0, {})
    with pytest.raises(ResponseError, match="unknown outcome"):
        t.finish("w1", new_task_id("badargs.q"), 1, "exploded", "1")  # type: ignore[arg-type]  # on purpose
    before = snapshot(queue, queue.keys.worker("w1"), queue.keys.worker_alive("w1"))
    assert all(v is None for v in before.values())


# -- small ones (case 14) ----------------------------------------------------------------------


def test_a_requeued_task_keeps_no_pid_of_the_dead_worker(client: Client) -> None:
    queue = client.get_queue("small.q")
    task_id = queue.enqueue(1)
    claim(queue, "w1")
    assert queue.transitions.begin("w1", task_id, 4242).status == "ok"
    assert client.get_task(task_id).pid == 4242
    queue.requeue_worker("w1")
    task = client.get_task(task_id)
    assert (task.status, task.pid) == ("pending", None)


def test_keep_finished_keeps_at_least_the_task_just_finished(client: Client) -> None:
    queue = client.get_queue("small.q")
    with pytest.raises(ConfigError):
        queue.set_config(keep_finished=0)
    queue.set_config(keep_finished=1)
    task_id = queue.enqueue(1)
    waiter = client.get_task(task_id)
    task_id, attempt = begun(queue, "w1")
    queue.transitions.finish("w1", task_id, attempt, "complete", '"kept"')
    assert waiter.wait(5).result == "kept"
