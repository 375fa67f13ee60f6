"""A model-based test of the protocol (issue 8: find the next ones ourselves).

A Hypothesis state machine drives `blueque.protocol.Transitions` on a real redis-server, with
three simulated workers (w0..w2): their claims (the protocol layer's BLMOVE), begins,
finishes, heartbeats, drains, deaths (the alive key deleted, never a sleep), reaps, restarts,
clean stops and stale returns, plus producers and people (enqueue, cancel, retry, delete,
promote by rewriting scheduled scores). A small model says, for every task, where it must be
and in which state, and what each script must answer. After every step the checker SCANs the
queue's keys and compares all of them with the model (key set, lists in order, sets, task and
worker hashes, every stats counter), then checks PROTOCOL.md's invariants from the scan alone.

Profiles (env `BLUEQUE_MODEL_PROFILE`): `ci` (the default, run by `./dev test`: derandomized,
150 runs of up to 60 steps, about a minute on a loaded 2-core machine; a failure is reported
unshrunk), `ci-shrink` (the same runs, and a failure shrunk to its shortest form: minutes) and
`long` (random runs, 2000 of up to 100 steps, shrunk; tens of minutes), e.g.

    BLUEQUE_MODEL_PROFILE=long .venv/bin/pytest tests/integration/test_protocol_model.py -q -s
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.exceptions import ResponseError

from blueque import Client, CorruptKeyError, Queue
from blueque.protocol import Begun, Transitions
from blueque.records import TOTALS as STATS_TOTALS
from blueque.scripts import pipeline
from blueque.states import as_outcome

QUEUE = "model.q"
WORKERS = ("w0", "w1", "w2")
FINISHED = ("complete", "failed", "cancelled")
TOTALS = {"complete": "completed", "failed": "failed", "cancelled": "cancelled"}
COUNTERS = ("running", "live", *STATS_TOTALS)  # the stats hash: two gauges and the totals
LATER_MS = 3_600_000  # a scheduled task is never due by the clock during a run
ERROR = json.dumps({"type": "ValueError", "message": "boom"})

CI = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    stateful_step_count=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # Shrinking 60 steps against a real server takes minutes: CI reports the failing run as
    # found; `ci-shrink` replays the same runs and shrinks the failure.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
PROFILES = {
    "ci": CI,
    "ci-shrink": settings(CI, phases=list(Phase)),
    "long": settings(
        database=None,
        deadline=None,
        max_examples=2000,
        stateful_step_count=100,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ),
}
PROFILE = os.environ.get("BLUEQUE_MODEL_PROFILE", "ci")
TOP_UPS = 20
TOP_UP = settings(CI, derandomize=False, max_examples=50)
# What the runs reached (answers of the scripts, retention, steps, examples): the test asserts
# that the interesting cases happened, so a model that stops reaching them is noticed.
SEEN: Counter[str] = Counter()


@dataclass
class TaskModel:
    state: str
    attempts: int = 0
    losses: int = 0
    retries: int = 0
    worker: str | None = None  # who began it last
    pid: int | None = None
    cancel: bool = False
    progress: str | None = None
    due: bool = False  # scheduled, and its score rewritten to the past
    waited: bool = False  # a client waits for it (await set `waited`)


@dataclass
class WorkerModel:
    """What Redis holds for a worker id, and what its (simulated) process believes."""

    tasks: list[str] = field(default_factory=list)
    registered: bool = False  # in `workers`, with a worker hash
    alive: bool = False
    hash_task: str | None = None  # the worker hash's `task` field (None: absent)
    hash_draining: str | None = None
    # The process: pid, the id its claim brought (not begun), the task it runs (id, attempt),
    # and its last finish (to repeat as after a lost reply).
    pid: int = 0
    claimed: str | None = None
    job: tuple[str, int] | None = None
    last_finish: tuple[str, int, str] | None = None


class ProtocolModel(RuleBasedStateMachine):
    client: Client  # set by the test before running

    def __init__(self) -> None:
        super().__init__()
        self.redis: Any = self.client.redis
        self.redis.flushdb()
        self.queue: Queue = self.client.get_queue(QUEUE)
        self.t: Transitions = self.queue.transitions
        self.keys = self.queue.keys
        self.tasks: dict[str, TaskModel] = {}
        self.ids: list[str] = []  # every id ever created (deleted ones too)
        self.pending: list[str] = []
        self.scheduled: set[str] = set()
        self.finished: dict[str, list[str]] = {s: [] for s in FINISHED}  # oldest first
        self.workers = {w: WorkerModel(pid=1000 + i) for i, w in enumerate(WORKERS)}
        self.draining: set[str] = set()
        self.stats = dict.fromkeys(COUNTERS, 0)
        self.max_attempts = 3
        self.retry_max = 0
        self.keep_finished = 10000
        self.seen_attempts: dict[str, int] = {}
        self.released: str | None = None  # the task a release just gave back
        # The done streams there must be: task id -> (kind, state the entry copies).
        self.done: dict[str, tuple[str, str | None]] = {}
        SEEN["examples"] += 1

    # -- the model's transitions ---------------------------------------------------------------

    def _add(self, name: str, n: int = 1) -> None:
        self.stats[name] += n

    def _finish_into(self, task_id: str, state: str) -> None:
        task = self.tasks[task_id]
        task.state, task.pid = state, None
        if task.waited:  # its waiters are woken, before retention may delete it
            task.waited = False
            self.done[task_id] = ("task", state)
            SEEN["notify:" + state] += 1
        self.finished[state].append(task_id)
        self._add("live", -1)
        while len(self.finished[state]) > self.keep_finished:  # retention: oldest first
            del self.tasks[self.finished[state].pop(0)]
            SEEN["retention"] += 1

    def _holds(self, wid: str, task_id: str, attempt: int) -> bool:
        """Fencing, as PROTOCOL.md states it: running at this attempt, by this worker, in
        its list."""
        task = self.tasks.get(task_id)
        return (
            task is not None
            and task.state == "running"
            and task.attempts == attempt
            and task.worker == wid
            and task_id in self.workers[wid].tasks
        )

    def _leave_worker(self, wid: str, task_id: str) -> None:
        self.workers[wid].tasks.remove(task_id)
        self.workers[wid].hash_task = ""
        self._add("running", -1)
        self.tasks[task_id].pid = None

    def _begin(self, wid: str, task_id: str | None) -> tuple[Any, ...]:
        answer = self._begin_answer(wid, task_id)
        SEEN["begin:" + answer[0]] += 1
        return answer

    def _begin_answer(self, wid: str, task_id: str | None) -> tuple[Any, ...]:
        w = self.workers[wid]
        if task_id is None:
            if not w.tasks:
                return ("empty", "")
            task_id = w.tasks[0]
        elif task_id not in w.tasks:
            self._add("stale")
            return ("gone", task_id)
        task = self.tasks.get(task_id)
        if task is not None and task.state == "running" and task.worker == wid:
            return ("ok", task.attempts, task_id)
        if task is None:
            w.tasks.remove(task_id)
            return ("missing", task_id)
        if task.state != "pending":
            w.tasks.remove(task_id)
            self._add("dropped")
            return ("dropped", task_id)
        if task.cancel:
            w.tasks.remove(task_id)
            self._finish_into(task_id, "cancelled")
            self._add("cancelled")
            return ("cancelled", task_id)
        refusal = "draining" if wid in self.draining else None if w.registered else "unregistered"
        if refusal:
            w.tasks.remove(task_id)
            self.pending.insert(0, task_id)
            self._add("refused")
            return (refusal, task_id)
        task.attempts += 1
        task.state, task.worker, task.pid = "running", wid, w.pid
        w.hash_task = task_id
        self._add("running")
        self._add("started")
        return ("ok", task.attempts, task_id)

    def _finish(self, wid: str, task_id: str, attempt: int, outcome: str) -> str:
        answer = self._finish_answer(wid, task_id, attempt, outcome)
        SEEN["finish:" + answer] += 1
        return answer

    def _finish_answer(self, wid: str, task_id: str, attempt: int, outcome: str) -> str:
        task = self.tasks.get(task_id)
        if outcome == "failed" and task is not None and task.cancel:
            outcome = "cancelled"
        if task is not None and task.worker == wid and task.attempts == attempt:
            # A repeat of a finish whose reply was lost.
            if task.state == outcome and task_id in self.finished[outcome]:
                return outcome
            if outcome == "failed" and task.state == "scheduled" and task_id in self.scheduled:
                return "scheduled"
        if not self._holds(wid, task_id, attempt):
            if task is not None and task.state == "running":
                SEEN["finish:stale, running elsewhere"] += 1
            self._add("stale")
            return "stale"
        assert task is not None
        self._leave_worker(wid, task_id)
        if outcome == "failed" and task.retries < self.retry_max:
            task.state, task.due = "scheduled", False
            task.retries += 1
            self.scheduled.add(task_id)
            self._add("retried")
            return "scheduled"
        self._finish_into(task_id, outcome)
        self._add(TOTALS[outcome])
        return outcome

    def _requeue_worker(self, wid: str, exiting: bool) -> tuple[int, int]:
        w = self.workers[wid]
        requeued = failed = 0
        for task_id in reversed(w.tasks):
            task = self.tasks.get(task_id)
            state = task.state if task is not None else None
            if task is not None and state == "running" and task.worker != wid:
                state = "stray"
            if task is not None and task.cancel and state in ("running", "pending"):
                if state == "running":
                    self._add("running", -1)
                self._finish_into(task_id, "cancelled")
                self._add("cancelled")
            elif task is not None and state == "running":
                self._add("running", -1)
                task.losses += 1
                SEEN["requeue:lost"] += 1
                if task.losses >= self.max_attempts:
                    SEEN["requeue:failed"] += 1
                    self._finish_into(task_id, "failed")
                    self._add("failed")
                    failed += 1
                else:
                    task.state, task.pid = "pending", None
                    self.pending.insert(0, task_id)
                    self._add("requeued")
                    requeued += 1
            elif state == "pending":
                SEEN["requeue:reserved"] += 1
                self.pending.insert(0, task_id)
                self._add("requeued")
                requeued += 1
        w.tasks = []
        w.registered = w.alive = False
        w.hash_task = w.hash_draining = None
        if exiting:
            self.draining.discard(wid)
        return requeued, failed

    def _reset_process(self, wid: str) -> None:
        w = self.workers[wid]
        w.pid += 10
        w.claimed = w.job = w.last_finish = None

    def _after_begin(self, wid: str, begun: Begun, expected: tuple[Any, ...]) -> None:
        w = self.workers[wid]
        if expected[0] == "ok":
            assert (begun.status, begun.attempt, begun.task_id) == expected, (begun, expected)
            w.job = (begun.task_id, begun.attempt)
        else:
            assert (begun.status, begun.task_id) == expected, (begun, expected)
        w.claimed = None
        if begun.status == "unregistered":  # as the worker does: register again
            self.heartbeat(wid)

    # -- choosing ------------------------------------------------------------------------------

    def _idle_claimers(self) -> list[str]:
        return [
            wid
            for wid, w in self.workers.items()
            if w.claimed is None and w.job is None and not w.tasks
        ]

    def _running_processes(self) -> list[str]:
        return [wid for wid, w in self.workers.items() if w.job is not None]

    # -- set-up ----------------------------------------------------------------------------------

    @initialize(
        max_attempts=st.sampled_from([1, 2, 3]),
        retry_max=st.sampled_from([0, 1, 2]),
        keep_finished=st.sampled_from([1, 2, 10000]),
    )
    def configure(self, max_attempts: int, retry_max: int, keep_finished: int) -> None:
        self.queue.set_config(
            max_attempts=max_attempts,
            retry_max=retry_max,
            retry_delay_s=3600,
            retry_backoff=2,
            keep_finished=keep_finished,
        )
        self.max_attempts, self.retry_max, self.keep_finished = (
            max_attempts,
            retry_max,
            keep_finished,
        )
        for wid in WORKERS:  # workers register when they start
            self.heartbeat(wid)

    # -- producers and people --------------------------------------------------------------------

    @rule(
        later=st.lists(st.booleans(), min_size=1, max_size=3),
        refused=st.sampled_from([False, False, False, True]),
    )
    def enqueue(self, later: list[bool], refused: bool) -> None:
        if refused:
            self.enqueue_refused(repeat_in_batch=later[0])
            return
        batch = []
        for scheduled in later:
            task_id = f"{QUEUE}:{len(self.ids):032x}"  # ids sort by creation, like real ones
            self.ids.append(task_id)
            batch.append((task_id, json.dumps(len(self.ids)), LATER_MS if scheduled else 0))
            if scheduled:
                self.tasks[task_id] = TaskModel("scheduled")
                self.scheduled.add(task_id)
            else:
                self.tasks[task_id] = TaskModel("pending")
                self.pending.append(task_id)
        assert self.t.enqueue(batch) == len(batch)
        self._add("enqueued", len(batch))
        self._add("live", len(batch))

    def enqueue_refused(self, repeat_in_batch: bool) -> None:
        """A batch that repeats an id, or reuses an existing one, creates nothing."""
        fresh = f"{QUEUE}:{len(self.ids):032x}"
        if repeat_in_batch or not self.tasks:
            batch = [(fresh, "1", 0), (fresh, "2", 0)]
        else:
            batch = [(fresh, "1", 0), (next(iter(self.tasks)), "2", 0)]
        with pytest.raises((ResponseError, CorruptKeyError), match="blueque"):
            self.t.enqueue(batch)

    @precondition(lambda self: self.scheduled)
    @rule(data=st.data(), limit=st.integers(1, 3))
    def promote(self, data: st.DataObject, limit: int) -> None:
        """Makes some scheduled tasks due by rewriting their scores (never a sleep)."""
        chosen = data.draw(st.sets(st.sampled_from(sorted(self.scheduled)), min_size=1))
        for task_id in chosen:
            assert self.redis.zscore(self.keys.scheduled, task_id) is not None
            self.redis.zadd(self.keys.scheduled, {task_id: 1}, xx=True)
            self.tasks[task_id].due = True
        due = sorted(i for i in self.scheduled if self.tasks[i].due)  # equal scores: by id
        moved = due[:limit]
        for task_id in moved:
            self.scheduled.remove(task_id)
            task = self.tasks[task_id]
            task.state, task.due = "pending", False
            self.pending.append(task_id)
        self._add("promoted", len(moved))
        promoted, next_due = self.t.promote_due(limit)
        assert promoted == len(moved)
        SEEN["promoted"] += promoted
        if not self.scheduled:
            assert next_due is None
        elif any(self.tasks[i].due for i in self.scheduled):
            assert next_due == 1
        else:
            assert next_due is not None and next_due > 1

    def _any_id(self, data: st.DataObject) -> str:
        """A task that exists, mostly; or one that never did or no longer does."""
        gone = [i for i in self.ids if i not in self.tasks][-1:] or [f"{QUEUE}:{'f' * 32}"]
        # One draw in four names a gone task and one in four a task a client waits for, so
        # the `missing` answers and the done entries of waited tasks are reached in each run
        # however many tasks exist (1 in n+1 left `await:missing` to chance).
        pick = data.draw(st.integers(0, 3))
        waited = sorted(i for i, t in self.tasks.items() if t.waited)
        if not self.tasks or pick == 0:
            return gone[0]
        return data.draw(st.sampled_from(waited if waited and pick == 1 else sorted(self.tasks)))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), action=st.sampled_from(["cancel", "retry", "delete", "wait"]))
    def person(self, data: st.DataObject, action: str) -> None:
        """Someone cancels, retries, deletes or waits for a task (mostly one that exists)."""
        getattr(self, action)(data)

    def cancel(self, data: st.DataObject) -> None:
        task_id = self._any_id(data)
        task = self.tasks.get(task_id)
        if task is None:
            expected = ("missing", "")
        elif task.state in FINISHED:
            expected = ("finished", task.state)
        elif task.state == "scheduled" or task_id in self.pending:
            self.scheduled.discard(task_id)
            if task_id in self.pending:
                self.pending.remove(task_id)
            self._finish_into(task_id, "cancelled")
            self._add("cancelled")
            expected = ("cancelled", "cancelled")
        else:
            task.cancel = True
            expected = ("requested", task.state)
        assert self.t.cancel(task_id) == expected
        SEEN["cancel:" + expected[0]] += 1

    def retry(self, data: st.DataObject) -> None:
        task_id = self._any_id(data)
        task = self.tasks.get(task_id)
        if task is None:
            expected = "missing"
        elif task.state not in ("failed", "cancelled"):
            expected = task.state
        else:
            self.finished[task.state].remove(task_id)
            task.state, task.losses, task.retries, task.cancel = "pending", 0, 0, False
            self.pending.append(task_id)
            self.done.pop(task_id, None)
            self._add("live")
            self._add("retried")
            expected = "requeued"
        assert self.t.retry(task_id) == expected
        SEEN["retry:" + expected] += 1

    def delete(self, data: st.DataObject) -> None:
        task_id = self._any_id(data)
        task = self.tasks.get(task_id)
        expected = "deleted"
        if task is None:
            expected = "missing"
        elif task.state in FINISHED:
            self.finished[task.state].remove(task_id)
        elif task.state == "scheduled":
            self.scheduled.remove(task_id)
            self._add("live", -1)
        elif task_id in self.pending:
            self.pending.remove(task_id)
            self._add("live", -1)
        else:
            expected = "busy"
        if expected == "deleted":
            if self.tasks[task_id].waited:
                self.done[task_id] = ("missing", None)
                SEEN["notify:deleted"] += 1
            del self.tasks[task_id]
        assert self.t.delete(task_id) == expected
        SEEN["delete:" + expected] += 1

    def wait(self, data: st.DataObject) -> None:
        """A client waits for a task (mostly one that exists)."""
        self._await(self._any_id(data))

    def _await(self, task_id: str) -> None:
        """A client's await (with an XREAD that does not block): a task that may still
        finish is marked waited for, any other has its done stream written at once."""
        task = self.tasks.get(task_id)
        if task is not None and task.state in ("scheduled", "pending", "running"):
            task.waited = True
            self.done.pop(task_id, None)
            expected: tuple[str, str | None] | None = None
            SEEN["await:registered"] += 1
        else:
            expected = ("missing", None) if task is None else ("task", task.state)
            self.done[task_id] = expected
            SEEN["await:" + expected[0]] += 1
        state, entry = self.t.await_task(task_id, None)
        assert state == ("" if task is None else task.state)
        got = None if entry is None else (entry["notify"], entry.get("state"))
        assert got == expected, (got, expected)

    # -- workers ---------------------------------------------------------------------------------

    @precondition(lambda self: self.pending and self._idle_claimers())
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        """The claim alone (BLMOVE): the task is reserved until its begin."""
        wid = data.draw(st.sampled_from(self._idle_claimers()))
        blmove = self.t.protocol._claim_calls(wid, self.workers[wid].pid, 1.0)[0]
        [claimed] = self.t.run(pipeline(self.t.protocol.scripting, [blmove]))
        assert claimed == self.pending[0]
        w = self.workers[wid]
        w.tasks.append(self.pending.pop(0))
        w.claimed = claimed

    @precondition(lambda self: any(w.claimed for w in self.workers.values()))
    @rule(data=st.data(), by_id=st.booleans())
    def begin(self, data: st.DataObject, by_id: bool) -> None:
        """Begins what the claim brought: named, or the head of the worker's list."""
        wid = data.draw(st.sampled_from([w for w, m in self.workers.items() if m.claimed]))
        claimed = self.workers[wid].claimed
        expected = self._begin(wid, claimed if by_id else None)
        begun = self.t.begin(wid, claimed if by_id else None, self.workers[wid].pid)
        self._after_begin(wid, begun, expected)

    @precondition(lambda self: self.pending and self._idle_claimers())
    @rule(data=st.data())
    def claim_and_begin(self, data: st.DataObject) -> None:
        self._claim_and_begin(data.draw(st.sampled_from(self._idle_claimers())))

    def _claim_and_begin(self, wid: str) -> None:
        self.workers[wid].tasks.append(self.pending.pop(0))
        expected = self._begin(wid, None)
        begun = self.t.claim_and_begin(wid, self.workers[wid].pid, 1.0)
        self._after_begin(wid, begun, expected)

    def _holders(self) -> list[str]:
        return [w for w, m in self.workers.items() if m.job and self._holds(w, *m.job)]

    @precondition(lambda self: self._holders())
    @rule(
        data=st.data(),
        action=st.sampled_from([*FINISHED, "set_progress", "release", "begin_again"]),
    )
    def presumed_dead_comes_back(self, data: st.DataObject, action: str) -> None:
        """A live worker is presumed dead (requeued), another worker begins its task, then
        the first one, still running it, finishes it, reports progress, releases it or
        begins it again: fencing must keep the second run's state."""
        wid = data.draw(st.sampled_from(self._holders()))
        self.requeue_worker(wid, process_dies=False)
        others = [o for o in self._idle_claimers() if o != wid]
        if others and self.pending:
            other = data.draw(st.sampled_from(others))
            if not self.workers[other].registered:
                self.heartbeat(other)
            self._claim_and_begin(other)
        if action in FINISHED:
            self.finish_as(wid, action)
        else:
            getattr(self, action)(data, wid)

    @precondition(lambda self: self._running_processes())
    @rule(
        data=st.data(),
        action=st.sampled_from(
            ["begin_again", "set_progress", "finish_with_bad_config", "release"]
        ),
    )
    def while_running(self, data: st.DataObject, action: str) -> None:
        """What a process that runs a task (or believes it does) may do besides finishing."""
        getattr(self, action)(data)

    def begin_again(self, data: st.DataObject, wid: str | None = None) -> None:
        """A begin repeated as after a lost reply (or by a worker whose task was requeued)."""
        wid = wid or data.draw(st.sampled_from(self._running_processes()))
        w = self.workers[wid]
        assert w.job is not None
        job = w.job
        expected = self._begin(wid, job[0])
        begun = self.t.begin(wid, job[0], w.pid)
        self._after_begin(wid, begun, expected)
        if expected[0] != "ok":
            w.job = job  # the process still runs it; its finish will be stale

    @precondition(lambda self: self._running_processes())
    @rule(
        data=st.data(),
        outcome=st.sampled_from(FINISHED),
        then_claim=st.booleans(),
        waited=st.booleans(),
    )
    def finish(self, data: st.DataObject, outcome: str, then_claim: bool, waited: bool) -> None:
        """A worker finishes its task (with `then_claim`, and claims the next one in the
        same call); with `waited`, a client waits for the task before and after."""
        wid = data.draw(st.sampled_from(self._running_processes()))
        job = self.workers[wid].job
        assert job is not None
        if waited:
            self._await(job[0])
        if then_claim and self.pending:
            self.finish_claim_begin(wid, outcome)
        else:
            self.finish_as(wid, outcome)
        if waited:
            self._await(job[0])

    def finish_as(self, wid: str, outcome: str) -> None:
        w = self.workers[wid]
        assert w.job is not None
        task_id, attempt = w.job
        expected = self._finish(wid, task_id, attempt, outcome)
        payload = '"done"' if outcome == "complete" else ERROR
        assert self.t.finish(wid, task_id, attempt, as_outcome(outcome), payload) == expected
        w.job, w.last_finish = None, (task_id, attempt, outcome)

    def finish_claim_begin(self, wid: str, outcome: str) -> None:
        """finish, then the claim and begin of the head of pending, in one script (`cycle`),
        as the worker sends them; nothing is claimed while the worker's list is not empty."""
        w = self.workers[wid]
        assert w.job is not None
        task_id, attempt = w.job
        expected_state = self._finish(wid, task_id, attempt, outcome)
        payload = '"done"' if outcome == "complete" else ERROR
        claims = not w.tasks
        if claims:
            w.tasks.append(self.pending.pop(0))
            expected = self._begin(wid, None)
        state, begun = self.t.finish_claim_begin(
            wid, task_id, attempt, as_outcome(outcome), payload, w.pid
        )
        assert state == expected_state
        w.job, w.last_finish = None, (task_id, attempt, outcome)
        if claims:
            self._after_begin(wid, begun, expected)
        else:
            assert begun.status == "empty"
            SEEN["cycle:list not empty"] += 1

    @precondition(lambda self: any(w.last_finish for w in self.workers.values()))
    @rule(data=st.data())
    def finish_again(self, data: st.DataObject) -> None:
        """A finish repeated as after a lost reply: the same answer, nothing written."""
        wid = data.draw(st.sampled_from([w for w, m in self.workers.items() if m.last_finish]))
        last = self.workers[wid].last_finish
        assert last is not None
        task_id, attempt, outcome = last
        expected = self._finish(wid, task_id, attempt, outcome)
        payload = '"done"' if outcome == "complete" else ERROR
        assert self.t.finish(wid, task_id, attempt, as_outcome(outcome), payload) == expected

    def finish_with_bad_config(self, data: st.DataObject, wid: str | None = None) -> None:
        """A failure finished while the config is corrupt: an error reply, nothing written
        (or 'stale' for a stale worker, which reads no config)."""
        wid = wid or data.draw(st.sampled_from(self._running_processes()))
        job = self.workers[wid].job
        assert job is not None
        self.redis.hset(self.keys.config, "retry_delay_s", "nan")
        try:
            task = self.tasks.get(job[0])
            if self._holds(wid, *job) and not (task is not None and task.cancel):
                with pytest.raises(CorruptKeyError, match="retry_delay_s"):
                    self.t.finish(wid, job[0], job[1], "failed", ERROR)
                SEEN["finish:refused by config"] += 1
            else:  # stale, or a cancel that reads no retry settings: the model says what
                expected = self._finish(wid, job[0], job[1], "failed")
                assert self.t.finish(wid, job[0], job[1], "failed", ERROR) == expected
                self.workers[wid].job = None
        finally:
            self.redis.hset(self.keys.config, "retry_delay_s", "3600")

    def release(self, data: st.DataObject, wid: str | None = None) -> None:
        """A stopping worker gives back a task it began but did not run."""
        wid = wid or data.draw(st.sampled_from(self._running_processes()))
        w = self.workers[wid]
        assert w.job is not None
        task_id, attempt = w.job
        expected = self._release(wid, task_id, attempt)
        assert self.t.release(wid, task_id, attempt) == expected
        SEEN["release:" + expected] += 1
        w.job = None

    def _release(self, wid: str, task_id: str, attempt: int) -> str:
        if not self._holds(wid, task_id, attempt):
            return "stale"
        self._leave_worker(wid, task_id)
        task = self.tasks[task_id]
        task.attempts -= 1
        self.released = task_id
        if task.cancel:
            self._finish_into(task_id, "cancelled")
            self._add("cancelled")
            return "cancelled"
        task.state = "pending"
        self.pending.insert(0, task_id)
        self._add("released")
        return "released"

    def set_progress(self, data: st.DataObject, wid: str | None = None) -> None:
        progress = data.draw(st.integers(0, 100))
        wid = wid or data.draw(st.sampled_from(self._running_processes()))
        job = self.workers[wid].job
        assert job is not None
        expected = self._holds(wid, *job)
        if expected:
            self.tasks[job[0]].progress = str(progress)
        assert self.t.set_progress(wid, job[0], job[1], str(progress)) is expected
        SEEN[f"progress:{expected}"] += 1

    @rule(wid=st.sampled_from(WORKERS))
    def heartbeat(self, wid: str) -> None:
        w = self.workers[wid]
        task_id = w.job[0] if w.job else None
        task = self.tasks.get(task_id) if task_id else None
        expected = (wid in self.draining, task is not None and task.cancel)
        w.registered = w.alive = True
        w.hash_draining = "1" if wid in self.draining else "0"
        fields: dict[str, str | int] = {"pid": w.pid, "runner": "model"}
        assert self.t.heartbeat(wid, 60_000, fields, task_id) == expected

    @precondition(lambda self: any(w.alive for w in self.workers.values()))
    @rule(data=st.data())
    def go_silent(self, data: st.DataObject) -> None:
        """Workers stop heartbeating (stalled, SIGSTOPped, dead): their alive keys expire,
        here by deleting them. Each process keeps what it believes it holds. Several at once,
        so that a reap finds several dead workers holding tasks often enough."""
        alive = [w for w, m in self.workers.items() if m.alive]
        for wid in sorted(data.draw(st.sets(st.sampled_from(alive), min_size=1))):
            assert self.redis.delete(self.keys.worker_alive(wid)) == 1
            self.workers[wid].alive = False

    @rule()
    def reap(self) -> None:
        """Requeues every silent worker, in one call.

        Reap visits the dead in SMEMBERS order, which on Redis 7.0 depends on the server's
        random hash seed; PROTOCOL.md leaves it open. It decides one thing only: the order
        in which the dead workers' tasks land at the head of pending (each worker holds at
        most one; the counters are sums; tasks finished in one call share a score, so a
        finished index keeps them, and trims them, by id whatever the order). So the model
        requeues the dead in the order of the tasks they hold, checks that the head of
        pending holds the same tasks in some order, and then writes its own order there (a
        permutation the protocol allows): every later step, and a replay, stays exact."""
        dead = sorted(
            (w for w, m in self.workers.items() if m.registered and not m.alive),
            key=lambda w: self.workers[w].tasks,
        )
        requeued = failed = 0
        for wid in dead:
            r, f = self._requeue_worker(wid, exiting=False)
            requeued, failed = requeued + r, failed + f
        assert self.t.reap("model reap") == (len(dead), requeued, failed)
        if len(dead) > 1:
            SEEN["reap:several"] += 1
        if requeued > 1:
            SEEN["reap:several requeued"] += 1
            head = self.redis.lrange(self.keys.pending, 0, requeued - 1)
            assert sorted(head) == sorted(self.pending[:requeued]), (head, self.pending)
            pipe = self.redis.pipeline(transaction=True)
            for i, task_id in enumerate(self.pending[:requeued]):
                pipe.lset(self.keys.pending, i, task_id)
            pipe.execute()

    @rule(
        wid=st.sampled_from(WORKERS),
        how=st.sampled_from(["dies", "presumed_dead", "stops", "restarts"]),
    )
    def worker_ends(self, wid: str, how: str) -> None:
        """A worker's pod is deleted (its process dead, or in fact alive: it comes back
        stale), it stops cleanly, or its container restarts under the same id."""
        if how in ("dies", "presumed_dead"):
            self.requeue_worker(wid, process_dies=how == "dies")
        else:
            getattr(self, how.removesuffix("s"))(wid)

    def requeue_worker(self, wid: str, process_dies: bool) -> None:
        """The worker is declared dead (its pod deleted). A process that in fact lives on
        keeps what it believes it holds, and comes back stale."""
        expected = self._requeue_worker(wid, exiting=False)
        assert self.t.requeue_worker(wid, "model requeue") == expected
        if process_dies:
            self._reset_process(wid)

    def stop(self, wid: str) -> None:
        """A clean stop: the task begun during the stop is released, then the worker
        deregisters (exiting)."""
        w = self.workers[wid]
        if w.job is not None:
            expected = self._release(wid, *w.job)
            assert self.t.release(wid, *w.job) == expected
        expected_requeue = self._requeue_worker(wid, exiting=True)
        assert self.t.requeue_worker(wid, "model stop", exiting=True) == expected_requeue
        self._reset_process(wid)

    def restart(self, wid: str) -> None:
        """The process dies and a new one starts with the same id: it gives back its own
        list, then registers."""
        self._reset_process(wid)
        w = self.workers[wid]
        if self.redis.llen(self.keys.worker_tasks(wid)):
            expected = self._requeue_worker(wid, exiting=False)
            assert self.t.requeue_worker(wid, "worker restarted") == expected
        else:
            assert not w.tasks
        self.heartbeat(wid)

    @rule(wid=st.sampled_from(WORKERS), undrain=st.booleans())
    def drain_or_undrain(self, wid: str, undrain: bool) -> None:
        if undrain:
            self.undrain(wid)
        else:
            self.drain(wid)

    def drain(self, wid: str) -> None:
        w = self.workers[wid]
        expected = not w.tasks
        if expected:
            self.draining.add(wid)
            if w.registered:
                w.hash_draining = "1"
        assert self.t.drain(wid) is expected

    def undrain(self, wid: str) -> None:
        w = self.workers[wid]
        expected = wid in self.draining
        self.draining.discard(wid)
        if w.registered:
            w.hash_draining = "0"
        assert self.t.undrain(wid) is expected

    # -- the checker -----------------------------------------------------------------------------

    def _scan(self) -> Snapshot:
        k = self.keys
        found = set(self.redis.scan_iter(match=k.prefix + "*", count=1000))
        pipe = self.redis.pipeline(transaction=False)
        pipe.lrange(k.pending, 0, -1)
        pipe.zrange(k.scheduled, 0, -1)
        for state in FINISHED:
            pipe.zrange(k.finished(state), 0, -1)
        pipe.smembers(k.workers)
        pipe.smembers(k.draining)
        pipe.hgetall(k.stats)
        for wid in WORKERS:
            pipe.lrange(k.worker_tasks(wid), 0, -1)
            pipe.hgetall(k.worker(wid))
            pipe.exists(k.worker_alive(wid))
        tasks = sorted(key for key in found if key.startswith(k.prefix + "task:"))
        hashes = [key for key in tasks if not key.endswith(":done")]
        dones = [key for key in tasks if key.endswith(":done")]
        for key in hashes:
            pipe.hgetall(key)
        for key in dones:
            pipe.xrange(key)
            pipe.pttl(key)
        replies: Iterator[Any] = iter(pipe.execute())
        snap = Snapshot(
            keys=found,
            pending=next(replies),
            scheduled=next(replies),
            finished={state: next(replies) for state in FINISHED},
            workers=next(replies),
            draining=next(replies),
            stats={f: int(v) for f, v in next(replies).items()},
        )
        for wid in WORKERS:
            snap.lists[wid] = next(replies)
            snap.worker_hashes[wid] = next(replies)
            snap.alive[wid] = bool(next(replies))
        for key in hashes:
            snap.tasks[key.removeprefix(k.prefix + "task:")] = next(replies)
        for key in dones:
            entries, ttl_ms = next(replies), next(replies)
            snap.done[key.removeprefix(k.prefix + "task:").removesuffix(":done")] = (
                [fields for _, fields in entries],
                ttl_ms,
            )
        return snap

    @invariant()
    def redis_matches_model(self) -> None:
        SEEN["checks"] += 1
        snap = self._scan()
        self._check_model(snap)
        self._check_invariants(snap)

    def _check_model(self, snap: Snapshot) -> None:
        k = self.keys
        expected_keys = {k.stats, k.config} | {k.task(i) for i in self.tasks}
        expected_keys |= {k.task_done(i) for i in self.done}
        for key, present in [
            (k.pending, self.pending),
            (k.scheduled, self.scheduled),
            (k.workers, [w for w, m in self.workers.items() if m.registered]),
            (k.draining, self.draining),
            *((k.finished(s), self.finished[s]) for s in FINISHED),
        ]:
            if present:
                expected_keys.add(key)
        for wid, w in self.workers.items():
            if w.tasks:
                expected_keys.add(k.worker_tasks(wid))
            if w.registered:
                expected_keys.add(k.worker(wid))
            if w.alive:
                expected_keys.add(k.worker_alive(wid))
        if not any(self.stats.values()):
            expected_keys.discard(k.stats)
        assert snap.keys == expected_keys
        assert snap.pending == self.pending, (snap.pending, self.pending)
        assert set(snap.scheduled) == self.scheduled
        for state in FINISHED:
            assert set(snap.finished[state]) == set(self.finished[state]), state
        assert snap.workers == {w for w, m in self.workers.items() if m.registered}
        assert snap.draining == self.draining
        assert {c: snap.stats.get(c, 0) for c in COUNTERS} == self.stats
        assert set(snap.stats) <= set(COUNTERS)
        for wid, w in self.workers.items():
            assert snap.lists[wid] == w.tasks, wid
            assert snap.alive[wid] == w.alive, wid
            whash = snap.worker_hashes[wid]
            assert (whash.get("task"), whash.get("draining")) == (w.hash_task, w.hash_draining)
        for task_id, task in self.tasks.items():
            h = snap.tasks[task_id]
            got = (
                h.get("state"),
                int(h.get("attempts", 0)),
                int(h.get("losses", 0)),
                int(h.get("retries", 0)),
                h.get("worker"),
                int(h["pid"]) if "pid" in h else None,
                h.get("cancel_requested") == "1",
                h.get("progress"),
                "result" in h,
                h.get("waited"),
            )
            want = (
                task.state,
                task.attempts,
                task.losses,
                task.retries,
                task.worker,
                task.pid,
                task.cancel,
                task.progress,
                task.state == "complete",
                "1" if task.waited else None,
            )
            assert got == want, task_id
        for task_id, notice in self.done.items():
            entries, _ = snap.done[task_id]
            assert [(e["notify"], e.get("state")) for e in entries] == [notice], task_id

    def _check_invariants(self, snap: Snapshot) -> None:
        """PROTOCOL.md's invariants, from the scan alone."""
        places: dict[str, list[str]] = {}
        for task_id in snap.pending:
            places.setdefault(task_id, []).append("pending")
        for task_id in snap.scheduled:
            places.setdefault(task_id, []).append("scheduled")
        for state in FINISHED:
            for task_id in snap.finished[state]:
                places.setdefault(task_id, []).append(state)
        for wid in WORKERS:
            for task_id in snap.lists[wid]:
                places.setdefault(task_id, []).append("worker:" + wid)
        # 1. One place per task, consistent with its state; every listed id has a hash.
        assert set(places) == set(snap.tasks)
        reserved = running = live = 0
        for task_id, h in snap.tasks.items():
            [place] = places[task_id]
            state = h["state"]
            if place.startswith("worker:"):
                assert state in ("pending", "running"), (task_id, state)
                reserved += state == "pending"
            else:
                assert place == state, (task_id, place, state)
            # 2. Running means held, by the worker its hash names, whose hash names it.
            if state == "running":
                running += 1
                holder = h["worker"]
                assert place == "worker:" + holder
                assert snap.worker_hashes[holder].get("task") == task_id
                # 4. Holders are registered. 5. No draining worker holds a begun task.
                assert holder in snap.workers
                assert holder not in snap.draining
            assert ("pid" in h) == (state == "running")
            live += state not in FINISHED
            # 6. Attempts only grow (but for the release of the attempt just begun); budgets.
            attempts = int(h.get("attempts", 0))
            floor = self.seen_attempts.get(task_id, 0) - (self.released == task_id)
            assert attempts >= floor, task_id
            self.seen_attempts[task_id] = attempts
            assert int(h.get("losses", 0)) <= self.max_attempts
            assert int(h.get("retries", 0)) <= self.retry_max
            # 8. Only a task that may still finish is waited for.
            assert "waited" not in h or state not in FINISHED, task_id
        self.released = None
        # 8. A done stream expires, holds one entry, and tells of a finished or gone task:
        # when the task is there, the entry copies its hash as it is.
        for task_id, (entries, ttl_ms) in snap.done.items():
            assert 0 < ttl_ms <= 60_000, task_id
            [entry] = entries
            copied = snap.tasks.get(task_id)
            assert copied is None or copied["state"] in FINISHED, task_id
            if copied is not None and entry["notify"] == "task":
                assert {f: v for f, v in entry.items() if f != "notify"} == copied, task_id
        for wid in WORKERS:
            assert len(snap.lists[wid]) <= 1
            # 4. A list of an unregistered worker holds only a claim not yet begun.
            if wid not in snap.workers:
                assert all(snap.tasks[i]["state"] == "pending" for i in snap.lists[wid])
        # 3. Counters are exact.
        stats = snap.stats
        assert stats.get("running", 0) == running
        assert stats.get("live", 0) == live
        assert live - len(snap.pending) - len(snap.scheduled) - running == reserved


@dataclass
class Snapshot:
    keys: set[str]
    pending: list[str]
    scheduled: list[str]
    finished: dict[str, list[str]]
    workers: set[str]
    draining: set[str]
    stats: dict[str, int]
    lists: dict[str, list[str]] = field(default_factory=dict)
    worker_hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    alive: dict[str, bool] = field(default_factory=dict)
    tasks: dict[str, dict[str, str]] = field(default_factory=dict)
    done: dict[str, tuple[list[dict[str, str]], int]] = field(default_factory=dict)


# The cases a CI run must reach, or the model has stopped testing what matters (the rarer
# ones, e.g. a cancel applied by begin or a stale progress, are printed, not required).
MUST_REACH = {
    "begin:ok",
    "begin:gone",
    "begin:draining",
    "begin:unregistered",
    "finish:complete",
    "finish:failed",
    "finish:cancelled",
    "finish:scheduled",
    "finish:stale",
    "finish:stale, running elsewhere",
    "release:released",
    "requeue:lost",
    "requeue:failed",
    "requeue:reserved",
    "reap:several requeued",
    "cancel:cancelled",
    "cancel:requested",
    "retry:requeued",
    "delete:deleted",
    "promoted",
    "retention",
    "await:registered",
    "await:task",
    "await:missing",
    "notify:complete",
    "notify:failed",
    "notify:cancelled",
    "notify:deleted",
}


@pytest.mark.timeout(300 if PROFILE == "ci" else 0)
def test_protocol_against_its_model(client_standalone: Client) -> None:
    ProtocolModel.client = client_standalone
    SEEN.clear()
    try:
        run_state_machine_as_test(ProtocolModel, settings=PROFILES[PROFILE])
        # Which rare cases the derandomized runs reach depends on Hypothesis's version and on
        # this file (its generator changes between releases, and swarm testing turns rules off
        # per run: with 6.170.17 they miss two to four cases). Random batches top them up
        # until each is reached (one to six batches, 5-10 s each on a loaded machine; the
        # rarest is `notify:failed`); a case still missing after TOP_UPS batches fails the
        # test. Three batches were too few: a CI run missed `await:missing` after them.
        for _ in range(TOP_UPS if PROFILE == "ci" else 0):
            if set(SEEN) >= MUST_REACH:
                break
            SEEN["top-up batches"] += 1
            run_state_machine_as_test(ProtocolModel, settings=TOP_UP)
    finally:
        print(f"protocol model ({PROFILE}):", dict(sorted(SEEN.items())))
    assert set(SEEN) >= MUST_REACH, sorted(MUST_REACH - set(SEEN))
