"""`python -m bench.instructions [--calls N] [--only NAME,...]`: the server's instructions per
call of each hot-path script, counted by valgrind's callgrind.

Each measurement runs a fresh redis-server under callgrind that counts only inside `FCALL`
(`--toggle-collect=fcallCommand`: the script, the Redis commands it calls, its reply and
Lua's garbage collection, not the network or the event loop). The set-up (tasks enqueued,
tasks begun for finish to end) goes through `EVALSHA` and plain commands, which are not
counted; then N calls of one script through `FCALL` are, and the total is divided by N.
Instruction counts do not move with the machine's load (repeated runs agree to well under
1%), so two versions of a script compare on a busy machine where times would not.

- **cycle**: the worker's steady state, `finish_claim_begin` of one task after another
  (finish, LMOVE of the next pending task, begin).
- **begin**: begin of the head of the worker's list, after a claim (`BLMOVE`, not counted),
  as an idle worker's `[BLMOVE, begin]` sends it.
- **finish**: finish (`complete`) of a begun task.
- **enqueue**: one task per call, for comparison with earlier measurements.

Needs valgrind (`apt-get install valgrind`). About 50 times slower than Redis alone: 2,000
calls of cycle take about 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import redis

from blueque import Client, Queue
from blueque.scripts import library_source
from devtools.errors import ProcessError
from devtools.processes import Process, free_port, wait_until
from devtools.redis_servers import require

WORKER = "cg-w"
PID = 4242


@contextlib.contextmanager
def counted_server(keep: Path | None = None) -> Iterator[tuple[str, Callable[[], int]]]:
    """A redis-server under callgrind, counting inside FCALL only: (url, a function that
    stops the server and returns the instructions it counted). `keep`: where to copy
    callgrind's output, for callgrind_annotate."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise ProcessError("valgrind is not installed: apt-get install valgrind")
    directory = Path(tempfile.mkdtemp(prefix="blueque-callgrind-"))
    port = free_port()
    out = directory / "callgrind.out"
    argv = [
        valgrind,
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=fcallCommand",
        f"--callgrind-out-file={out}",
        require("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    process = Process.start("redis-server (callgrind)", argv, log_file=directory / "log")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: _answers(url), 60.0, interval_s=0.1, what="redis under callgrind")
        # valgrind is a shell script that execs its launcher, which execs the tool: the
        # process runs another executable than the one recorded at its start.
        process = replace(process, executable=_exe(process.pid) or "")

        def stop() -> int:
            process.stop(grace_s=60.0)
            if keep is not None:
                shutil.copy(out, keep)
            return _total(out)

        yield url, stop
    finally:
        process.stop(grace_s=60.0)
        shutil.rmtree(directory, ignore_errors=True)


def _exe(pid: int) -> str | None:
    with contextlib.suppress(OSError):
        return str(Path(f"/proc/{pid}/exe").readlink())
    return None


def _answers(url: str) -> bool:
    with (
        contextlib.suppress(redis.exceptions.ConnectionError),
        redis.Redis.from_url(url, socket_connect_timeout=0.5) as r,
    ):
        return bool(r.ping())
    return False


def _total(out: Path) -> int:
    text = out.read_text()
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if found is None:
        raise ProcessError(f"no totals in {out}")
    return int(found.group(1))


def _queue(client: Client) -> Queue:
    """A queue set up by scripts (not counted), with the library loaded for the counted
    calls, and a registered worker."""
    client.scripting.functions = False
    queue = client.get_queue("cost")
    queue.transitions.heartbeat(WORKER, 600_000, {})
    return queue


def _enqueue(queue: Queue, n: int) -> None:
    """n tasks, 100 per call: a bigger batch may take longer than the client's socket timeout
    on a server under valgrind."""
    for start in range(0, n, 100):
        queue.enqueue_many([None] * min(100, n - start))


def _count_fcalls(client: Client) -> None:
    client.redis.function_load(library_source())
    client.scripting.functions = True


def cycle(client: Client, calls: int) -> None:
    queue = _queue(client)
    t = queue.transitions
    _enqueue(queue, calls + 1)
    begun = t.claim_and_begin(WORKER, PID, 1.0)
    _count_fcalls(client)
    for _ in range(calls):
        state, begun = t.finish_claim_begin(
            WORKER, begun.task_id, begun.attempt, "complete", "1", PID
        )
        assert state == "complete" and begun.status == "ok", (state, begun)


def begin(client: Client, calls: int) -> None:
    queue = _queue(client)
    t = queue.transitions
    _enqueue(queue, calls)
    _count_fcalls(client)
    for _ in range(calls):
        assert t.claim(WORKER, 1) is not None
        begun = t.begin(WORKER, None, PID)
        assert begun.status == "ok", begun
        _park(queue, begun.task_id)


def finish(client: Client, calls: int) -> None:
    queue = _queue(client)
    t = queue.transitions
    _enqueue(queue, calls)
    begun = []
    for _ in range(calls):
        b = t.claim_and_begin(WORKER, PID, 1.0)
        begun.append(b)
        _park(queue, b.task_id)
    _count_fcalls(client)
    for b in begun:
        _unpark(queue, b.task_id)
        state = t.finish(WORKER, b.task_id, b.attempt, "complete", "1")
        assert state == "complete", state


def enqueue(client: Client, calls: int) -> None:
    queue = _queue(client)
    queue.enqueue(None)
    _count_fcalls(client)
    for _ in range(calls):
        queue.enqueue(None)


def _park(queue: Queue, task_id: str) -> None:
    """Moves a begun task out of the worker's list (one task at a time); `_unpark` puts it
    back before its finish."""
    r = queue.client.redis
    r.lrem(queue.keys.worker_tasks(WORKER), 1, task_id)
    r.rpush(queue.keys.prefix + "parked", task_id)


def _unpark(queue: Queue, task_id: str) -> None:
    r = queue.client.redis
    r.lrem(queue.keys.prefix + "parked", 1, task_id)
    r.rpush(queue.keys.worker_tasks(WORKER), task_id)


SCRIPTS: dict[str, Callable[[Client, int], None]] = {
    "cycle": cycle,
    "begin": begin,
    "finish": finish,
    "enqueue": enqueue,
}


def measure(name: str, calls: int, keep: Path | None = None) -> float:
    """Instructions per call of one script."""
    with counted_server(keep) as (url, stop):
        with Client(url) as client:
            SCRIPTS[name](client, calls)
        return stop() / calls


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--only", default=",".join(SCRIPTS), help="scripts, comma-separated")
    p.add_argument("--keep", type=Path, help="a directory for callgrind's output files")
    args = p.parse_args(argv)
    print(f"# {args.calls} calls each; pid {os.getpid()}")
    print("| script | instructions per call |")
    print("|---|---:|")
    for name in args.only.split(","):
        keep = args.keep / f"callgrind.{name}" if args.keep else None
        print(f"| {name} | {measure(name, args.calls, keep) / 1000:.1f}k |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
