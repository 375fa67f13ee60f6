"""Key naming, name validation and task ids."""

from __future__ import annotations

import os
import threading

import pytest
from redis.crc import key_slot

from blueque import InvalidNameError
from blueque.keys import (
    key_type,
    new_task_id,
    queue_keys,
    queue_of_task,
    registry_key,
    sanitize_worker_id,
    validate_namespace,
    validate_queue_name,
    validate_worker_id,
)


@pytest.mark.parametrize("name", ["a", "emails", "video.transcode", "a-b_c.1", "x" * 200])
def test_valid_queue_names(name: str) -> None:
    assert validate_queue_name(name) == name


@pytest.mark.parametrize("name", ["", " ", "a b", "{a}", "a}", "a:b", "a/b", "é", "x" * 201])
def test_invalid_queue_names(name: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid queue name"):
        validate_queue_name(name)
    with pytest.raises(InvalidNameError):
        queue_keys(name)


def test_invalid_worker_ids() -> None:
    assert validate_worker_id("pod-abc.1_2") == "pod-abc.1_2"
    for bad in ("", "a b", "a:b", "{w}"):
        with pytest.raises(InvalidNameError, match="invalid worker id"):
            validate_worker_id(bad)


@pytest.mark.parametrize("namespace", ["blueque", "app:jobs", "app-1.test_x", "x" * 100])
def test_valid_namespaces(namespace: str) -> None:
    assert validate_namespace(namespace) == namespace
    assert queue_keys("q", namespace).prefix == f"{namespace}:{{q}}:"


@pytest.mark.parametrize("namespace", ["", "app{1}", "a}:b", "{x}", "a b", "é", "x" * 101, None])
def test_invalid_namespaces(namespace: object) -> None:
    # A brace would move the queue's hash tag or the `}:` the scripts find the prefix by:
    # then the scripts and Python derive different keys for the same task.
    with pytest.raises(InvalidNameError, match="invalid namespace"):
        validate_namespace(namespace)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameError, match="invalid namespace"):
        queue_keys("q", namespace)  # type: ignore[arg-type]


def test_sanitize_worker_id_makes_any_host_or_pod_name_valid() -> None:
    assert sanitize_worker_id("node 1:{x}") == "node-1--x-"
    assert sanitize_worker_id("") == "worker"
    assert len(sanitize_worker_id("a" * 500)) == 200
    validate_worker_id(sanitize_worker_id("ü/ß host:1"))


def test_task_ids_name_their_queue_and_sort_by_creation() -> None:
    ids = [new_task_id("q.1") for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(queue_of_task(t) == "q.1" for t in ids)
    # The first 12 hex digits are a millisecond clock: non-decreasing in creation order.
    clocks = [t.split(":")[1][:12] for t in ids]
    assert clocks == sorted(clocks)


def test_task_ids_are_unique_across_threads() -> None:
    # The random digits are read for many ids at once and handed out without a lock.
    ids: list[list[str]] = [[] for _ in range(4)]

    def make(mine: list[str]) -> None:
        mine.extend(new_task_id("q") for _ in range(3000))

    threads = [threading.Thread(target=make, args=(mine,)) for mine in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    digits = [t[-20:] for mine in ids for t in mine]
    assert len(set(digits)) == len(digits) == 12000


def test_a_forked_child_never_repeats_its_parents_task_ids() -> None:
    # A child that kept the digits its parent had read (and not yet used) would make the
    # parent's next ids: a task forked by a worker that enqueues would collide with it.
    new_task_id("q")  # the parent has digits in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, " ".join(new_task_id("q")[-20:] for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    parent = {new_task_id("q")[-20:] for _ in range(50)}
    assert len(child) == 50 and not child & parent


@pytest.mark.parametrize("bad", ["", "q", "q:", "q:123", "q:" + "g" * 32, "a b:" + "0" * 32, 5])
def test_malformed_task_ids(bad: object) -> None:
    with pytest.raises(InvalidNameError, match="invalid task id"):
        queue_of_task(bad)  # type: ignore[arg-type]


def test_every_key_of_a_queue_is_in_one_cluster_slot() -> None:
    k = queue_keys("emails")
    keys = [
        k.pending, k.scheduled, k.complete, k.failed, k.cancelled, k.stats, k.config, k.events,
        k.workers, k.draining, k.task(new_task_id("emails")), k.worker("w1"),
        k.worker_tasks("w1"), k.worker_alive("w1"), k.owner,
    ]  # fmt: skip
    assert all(key.startswith("blueque:{emails}:") for key in keys)
    assert len(set(keys)) == len(keys)
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"{emails}")}
    assert k.finished("failed") == k.failed
    assert queue_keys("emails", namespace="other").pending == "other:{emails}:pending"
    assert registry_key() == "blueque:queues"


def test_key_types_follow_the_layout() -> None:
    k = queue_keys("q", "app:x")
    expected = {
        k.pending: "list",
        k.scheduled: "zset",
        k.complete: "zset",
        k.stats: "hash",
        k.config: "hash",
        k.workers: "set",
        k.task("q:" + "0" * 32): "hash",
        k.task_done("q:" + "0" * 32): "stream",
        k.worker("tasks"): "hash",  # a worker named like a suffix
        k.worker_tasks("w"): "list",
        k.worker_alive("w"): "string",
        k.owner: "string",
        k.events: None,  # a channel
        "app:x:queues": None,
    }
    assert {key: key_type(key) for key in expected} == expected
