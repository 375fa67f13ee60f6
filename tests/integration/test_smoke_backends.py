"""The basic cycle on both backends: enqueue, claim, begin, finish, wait."""

from __future__ import annotations

import threading

from blueque import Client


def test_enqueue_claim_finish_wait(client: Client) -> None:
    queue = client.get_queue("smoke.q")
    task_id = queue.enqueue({"n": 1})
    queue.transitions.heartbeat("w1", 60_000, {})  # a worker registers before it begins
    assert queue.transitions.claim("w1", 1) == task_id
    assert queue.transitions.held("w1") == task_id
    begun = queue.transitions.begin("w1", task_id, 123)
    assert begun.status == "ok" and begun.attempt == 1

    def finish() -> None:
        queue.transitions.finish("w1", task_id, 1, "complete", '"done"')

    timer = threading.Timer(0.2, finish)
    timer.start()
    task = client.get_task(task_id).wait(timeout=5)
    timer.join()
    assert task.status == "complete"
    assert task.result == "done"
    assert queue.stats().complete == 1
