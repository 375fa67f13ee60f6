"""The soak: real workers under chaos, and a count of every task's fate.

`python -m devtools.soak` (or `./dev soak`; docs/soak.md) starts a redis-server with AOF
(`appendfsync always`), `blueque worker` processes (forking and in-process) and a `blueque
scheduler` (promote and reap: here the workers do not promote, so the scheduler alone does
both), enqueues `--tasks` tasks evenly over `--duration` seconds, and meanwhile, at random:
SIGKILLs a worker, SIGSTOPs one (half the time past the heartbeat TTL) and SIGCONTs it later,
SIGTERMs one (each ended worker is restarted, with its old id or a new one), restarts Redis
(SIGKILL, then the same port and data directory), SIGKILLs or SIGTERMs the scheduler (a new
one starts 0.5-3 s later), and cancels tasks.
Each task records its execution, sleeps a random short time, and some fail on purpose (the
queue retries a failure once). Then the chaos stops, every task is waited for, everything is
stopped, and it prints tasks enqueued, completed, failed per reason, cancelled, and the two
numbers that must be 0; it exits 1 when one is not.

**lost**: a task not complete, failed or cancelled once everything quiesced.

**over-run**, "run more often than its worker died": `executions - 1 <= times a worker that
held the task died`, made precise per rerun. A task's executions, in the order they were
begun (their attempt numbers), form reruns (each execution followed by the next); a rerun is
explained when

- the worker process that ran the previous execution was lost between the begin of that
  execution (taken as 2 s before its first line: a worker stopped between its begin and its
  task starts the task late) and the start of the next: SIGKILLed by the soak, SIGSTOPped
  for at least the heartbeat TTL minus one heartbeat interval (long enough to be presumed
  dead and reaped), or exited on its own (also reported as a warning); or
- the previous execution failed on purpose and the queue scheduled an automatic retry: at
  most as many such reruns as the task's `retries` (a failure whose worker was wrongly
  presumed dead before it could record it is rerun by a requeue, not by a retry).

A task with an unexplained rerun is over-run. A death explains only the rerun after the
execution it interrupted: a worker killed after the task had moved on explains nothing.

Why worker deaths are counted from what the soak did, and not from the queue:

- Not from the task's `attempts` and `losses` (or its `WorkerLost` error): those are the
  protocol's own bookkeeping, the thing under test. A live worker wrongly presumed dead
  (issue 8 case 20: a Redis outage counted as worker silence) bumps them exactly as a real
  death does, so counting them would excuse the very bug a soak is for. The report shows
  them next to each over-run task.
- Not from the events channel, although `requeued` events name the task and the worker:
  pub/sub drops what is published while a subscriber reconnects, and Redis restarts are part
  of the chaos. The soak follows the events anyway, to explain an unexplained rerun in its
  report ("requeued from worker soak-w1-2 at +31.2s"), never to decide.

A Redis outage is not a worker death: reaping must not count Redis's downtime against a
worker (DESIGN.md; issue 8 case 20). A rerun caused by one is unexplained, and the report
shows the outage next to it. Nor is a scheduler's death: what it did not promote or reap
waits for the next one.

Executions are counted by the tasks themselves (`task.py`): before doing anything else, an
execution writes a field named by a token of its own into the hash `soak:runs:<task id>`
(outside the queue's keys), retrying while Redis is down; the write is idempotent, so a
retry after a lost reply counts once. An execution killed before it could write is not
seen: that can hide a rerun, never invent one.

Modules: `harness.py` (the run: Redis, producer, chaos, settling, reading the outcome),
`workers.py` (the worker processes and the signals sent to them), `scheduler.py` (the
scheduler process and the signals sent to it), `task.py` (the
task function), `ledger.py` (the verdict, pure), `__main__.py` (the command line). This
file imports none of them: every worker imports `devtools.soak.task`, and only that.
"""
