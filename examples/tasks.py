"""The example task module: `blueque worker videos --task tasks:transcode` (in the worker image,
this file sits in /app, which is on PYTHONPATH).

`transcode` pretends to transcode a video for as long as its parameters say
(`{"video": 7, "seconds": 1.5}`), reporting progress. Each execution first records itself in
Redis, outside the queue's own keys, so that a test (or a curious user) can tell how often a
task ran, at which attempt and on which worker: `LRANGE <prefix>:examples:executions 0 -1`, one
JSON object per execution. The record is written before the work starts, so an execution cut
off by a killed worker is counted too.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from blueque import Client, RedisEnvironment, Task

EXECUTIONS_KEY = "examples:executions"
"""Under the key prefix (BLUEQUE_NAMESPACE, default `blueque`): a list, one entry per execution."""
EXECUTIONS_TTL_S = 86_400
"""The list expires a day after the last execution: an example must not leave keys forever."""
DEFAULT_SECONDS = 1.0


def executions_key(prefix: str) -> str:
    return f"{prefix}:{EXECUTIONS_KEY}"


def record_execution(task: Task) -> None:
    """Appends {task, attempt, worker, pid, at} to the executions list, with the worker's own
    connection settings (the BLUEQUE_* variables the pod has)."""
    where = RedisEnvironment.from_env()
    entry = {
        "task": task.id,
        "attempt": task.attempts,
        "worker": task.worker,
        "pid": os.getpid(),
        "at": time.time(),
    }
    with Client(where.url, password=where.password, cluster=where.cluster) as client:
        key = executions_key(where.namespace)
        client.redis.rpush(key, json.dumps(entry))
        client.redis.expire(key, EXECUTIONS_TTL_S)


def transcode(task: Task) -> dict[str, Any]:
    """Works for `seconds` (default 1), reporting its progress about four times a second."""
    record_execution(task)
    params = task.parameters if isinstance(task.parameters, dict) else {}
    seconds = float(params.get("seconds", DEFAULT_SECONDS))
    started = time.monotonic()
    steps = max(1, round(seconds / 0.25))
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        task.set_progress({"percent": round(100 * step / steps)})
    return {"video": params.get("video"), "seconds": round(time.monotonic() - started, 3)}
