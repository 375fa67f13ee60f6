"""The two examples from the talk that introduced Blueque, run as written (only the port
differs) as separate processes against a real redis-server."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from devtools.processes import wait_until
from devtools.redis_servers import RedisServer
from tests.support.workers import WorkerSpawner

WORKER = """\
from blueque import Client, forking_runner
def do_work(task):
    print(task.id, task.parameters)
    return "result"
client = Client(hostname="localhost", port=6379, db=0)
forking_runner.run(client, "some.queue", do_work)
"""

PRODUCER = """\
from blueque import Client
client = Client(hostname="localhost", port=6379, db=0)
queue = client.get_queue("some.queue")
task_id = queue.enqueue("some data to process")
task = client.get_task(task_id)
while task.status != "complete":
    task = client.get_task(task_id)
print(task.result)   # "result"
"""


def test_the_two_examples_work_as_written(
    redis_url: str, redis_server: RedisServer, workers: WorkerSpawner, tmp_path: Path
) -> None:
    port = str(redis_server.port)
    worker_py, producer_py = tmp_path / "worker.py", tmp_path / "producer.py"
    worker_py.write_text(WORKER.replace("6379", port))
    producer_py.write_text(PRODUCER.replace("6379", port))

    # No test-only settings: the example runs with the library's defaults.
    env = {
        "PYTHONUNBUFFERED": "<unset>",
        "BLUEQUE_HEARTBEAT_INTERVAL_S": "<unset>",
        "BLUEQUE_CLAIM_TIMEOUT_S": "<unset>",
    }
    worker = workers.start(redis_url, "some.queue", script=worker_py, env=env)
    producer = subprocess.run(
        [sys.executable, str(producer_py)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert producer.returncode == 0, producer.stderr
    assert producer.stdout == "result\n"

    # The worker printed the task it ran: "<task id> some data to process".
    line = wait_until(
        lambda: next(
            (ln for ln in worker.output().splitlines() if "some data to process" in ln), None
        ),
        10,
        what="the worker's print",
    )
    task_id = line.split()[0]
    assert task_id.startswith("some.queue:")
    assert line == f"{task_id} some data to process"

    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(10) == 0, worker.output()
