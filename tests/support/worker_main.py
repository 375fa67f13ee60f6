"""A worker process for the tests: `python tests/support/worker_main.py URL QUEUE [fork|inprocess]`.

Its task function obeys the task's parameters, so one script covers every behaviour a test
needs. A dict parameter may hold:
  gate: a path; the task waits until that file exists (a task that is "mid-run" on demand)
  started: a path; the task creates it once it runs (written with the attempt number)
  sleep_s: seconds to sleep
  raise: a message; the task raises ValueError(message)
  signal: a signal name; the task process kills itself with it
  exit: a status; the task process leaves at once with it (os._exit)
  unserializable: true; the task returns a set (not JSON)
  result_size: return a string of that many characters
  result: what to return (default: the string "done at attempt N")
  undecodable_result: true; return a string with a lone surrogate (a file name that is not
    UTF-8, as os.listdir gives it)
  undecodable_error: true; raise an error whose message holds such a file name
  nested_result: a depth; return lists nested that deep
  bad_str: true; raise an exception whose __str__ raises
  process: true; return {"pid": the task process's pid, "frozen": how many objects of its
    heap were frozen (gc.get_freeze_count()) when it started}
  spawn: "group", "setsid" or "daemon"; start a `sleep` process in the task's process group,
    in a session of its own, or as a daemon (double fork and setsid), and write its pid
    into the file named by "spawned", before anything else
Every task process writes its pid into $BLUEQUE_TEST_PIDS_DIR (a directory), so the spawner
fixture can kill task processes whose worker parent is gone (see task_pids.py).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from blueque import Client, Task, forking_runner, inprocess_runner
from tests.support.task_pids import register_pid


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception fails")


def spawn(how: str, pid_file: Path) -> None:
    """Leaves a process running: the test must end it (by the pid written) if the worker
    does not."""
    sleeper = ["sleep", "600"]
    if how == "daemon":
        middle = os.fork()
        if middle == 0:
            os.setsid()
            daemon = os.fork()
            if daemon == 0:
                os.execvp(sleeper[0], sleeper)
            pid_file.write_text(str(daemon))
            os._exit(0)
        os.waitpid(middle, 0)
        return
    process = subprocess.Popen(sleeper, start_new_session=how == "setsid")
    pid_file.write_text(str(process.pid))


def task_function(task: Task) -> Any:
    frozen = gc.get_freeze_count()
    register_pid()
    p = task.parameters if isinstance(task.parameters, dict) else {}
    if "spawn" in p:
        spawn(p["spawn"], Path(p["spawned"]))
    if "started" in p:
        Path(p["started"]).write_text(str(task.attempts))
    if "gate" in p and (task.attempts == 1 or not p.get("gate_first_only")):
        while not Path(p["gate"]).exists():
            time.sleep(0.01)
    if "sleep_s" in p:
        time.sleep(p["sleep_s"])
    if "raise" in p:
        raise ValueError(p["raise"])
    if "signal" in p:
        os.kill(os.getpid(), getattr(signal, p["signal"]))
        time.sleep(10)
    if "exit" in p:
        os._exit(p["exit"])
    if "result_size" in p:
        return "x" * p["result_size"]
    if p.get("unserializable"):
        return {1, 2}
    if p.get("undecodable_result"):
        return os.fsdecode(b"report-\xff.txt")
    if p.get("undecodable_error"):
        raise ValueError("cannot parse " + os.fsdecode(b"report-\xff.txt"))
    if "nested_result" in p:
        nested: list[Any] = []
        for _ in range(p["nested_result"]):
            nested = [nested]
        return nested
    if p.get("bad_str"):
        raise UnprintableError
    if p.get("process"):
        return {"pid": os.getpid(), "frozen": frozen}
    return p.get("result", f"done at attempt {task.attempts}")


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s"
    )
    url, queue = sys.argv[1], sys.argv[2]
    runner = sys.argv[3] if len(sys.argv) > 3 else "fork"
    client = Client(url)
    try:
        run = forking_runner.run if runner == "fork" else inprocess_runner.run
        return run(client, queue, task_function)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
