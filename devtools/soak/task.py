"""The soak's task function, run by real `blueque worker` processes
(`--task devtools.soak.task:run`).

Each execution first records itself in Redis, outside the queue's keys: one field of the
hash `soak:runs:<task id>`, named by a token unique to the execution (so the hash's length
is the task's execution count, and a write retried after a connection lost mid-reply counts
once), whose JSON value says which worker process ran it (the incarnation the soak put in
`$SOAK_INCARNATION`), at which attempt, when, and whether it is about to fail on purpose.
Then it sleeps the time its parameters ask for and returns, or raises when it is one of the
tasks planned to fail.

An execution that starts while Redis is down keeps trying to record itself before it does
anything else, so an execution is never missed, only (if its worker is killed meanwhile)
one that did no work.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import redis

from blueque import Task
from blueque.connection import connect

TASK_REF = "devtools.soak.task:run"
"""What `blueque worker --task` names; also in the command line of every task process."""
INCARNATION_ENV = "SOAK_INCARNATION"
REDIS_URL_ENV = "SOAK_REDIS_URL"
RUNS_PREFIX = "soak:runs:"

# Parameters: {"n": sequence number, "sleep_ms": int, "fail": "always" | "once" | None}.
FAIL_ALWAYS = "always"
FAIL_ONCE = "once"
"""Fails on its first attempt only: an automatic retry then completes it."""


class PlannedFailureError(Exception):
    """Raised by a task planned to fail, so its reason is known in the summary."""


def runs_key(task_id: str) -> str:
    return RUNS_PREFIX + task_id


def run(task: Task) -> str:
    started_at = time.time()
    params: dict[str, Any] = task.parameters
    mode = params.get("fail")
    fails = mode == FAIL_ALWAYS or (mode == FAIL_ONCE and task.attempts == 1)
    entry = json.dumps(
        {
            "inc": os.environ.get(INCARNATION_ENV, "?"),
            "attempt": task.attempts,
            "at": started_at,
            "fails": fails,
            "pid": os.getpid(),
        }
    )
    _record(task.id, uuid.uuid4().hex, entry)
    time.sleep(int(params.get("sleep_ms", 0)) / 1000)
    if fails:
        raise PlannedFailureError(f"planned failure ({mode}) on attempt {task.attempts}")
    return "ok"


# Redis down, or a cluster that cannot serve the key yet (a master restarting): try again.
# A cluster client also fails to be made while the node its URL names is down.
_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.RedisClusterException,
)


def _record(task_id: str, token: str, entry: str) -> None:
    url = os.environ[REDIS_URL_ENV]
    while True:
        client = None
        try:
            client = connect(url)
            client.hset(runs_key(task_id), token, entry)
            return
        except _UNAVAILABLE:
            time.sleep(0.05)
        finally:
            if client is not None:
                client.close()
