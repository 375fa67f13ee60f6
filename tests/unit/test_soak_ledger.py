"""The soak's verdict (devtools/soak/ledger.py): which reruns a worker's death explains, what
counts as lost, and what the report shows to debug."""

from __future__ import annotations

import json

from devtools.soak.ledger import (
    Execution,
    FinalTask,
    Happening,
    format_summary,
    judge,
    summarize,
)

T = "soak:0123456789abcdef0123456789abcdef"


def run(inc: str, at: float, *, fails: bool = False, attempt: int = 1) -> Execution:
    return Execution(T, inc, attempt, at, fails)


def done(state: str = "complete", attempts: int = 1) -> FinalTask:
    return FinalTask(T, state, attempts=attempts)


def test_one_execution_is_no_rerun() -> None:
    verdict = judge(done(), [run("w0.1", 10)], [])
    assert verdict.reruns == () and not verdict.unexplained and not verdict.lost


def test_a_rerun_with_no_death_is_unexplained() -> None:
    verdict = judge(done(attempts=2), [run("w0.1", 10), run("w1.1", 14, attempt=2)], [])
    assert len(verdict.unexplained) == 1
    assert verdict.unexplained[0].previous.incarnation == "w0.1"


def test_a_kill_of_the_worker_that_ran_it_explains_the_rerun() -> None:
    kill = Happening("SIGKILL", 11, 11, "w0.1", loss=True)
    verdict = judge(done(attempts=2), [run("w0.1", 10), run("w1.1", 14, attempt=2)], [kill])
    assert [r.cause for r in verdict.reruns] == ["SIGKILL"]


def test_a_kill_of_another_worker_explains_nothing() -> None:
    kill = Happening("SIGKILL", 11, 11, "w2.1", loss=True)
    verdict = judge(done(attempts=2), [run("w0.1", 10), run("w1.1", 14, attempt=2)], [kill])
    assert len(verdict.unexplained) == 1


def test_a_kill_before_the_execution_or_after_the_next_start_explains_nothing() -> None:
    runs = [run("w0.1", 10), run("w1.1", 14, attempt=2)]
    for at in (7.5, 15.0):
        kill = Happening("SIGKILL", at, at, "w0.1", loss=True)
        assert len(judge(done(attempts=2), runs, [kill]).unexplained) == 1


def test_one_death_explains_one_rerun_only() -> None:
    kill = Happening("SIGKILL", 11, 11, "w0.1", loss=True)
    runs = [run("w0.1", 10), run("w1.1", 14, attempt=2), run("w2.1", 20, attempt=3)]
    verdict = judge(done(attempts=3), runs, [kill])
    assert [r.cause for r in verdict.reruns] == ["SIGKILL", None]


def test_a_long_stop_explains_but_a_short_one_does_not() -> None:
    runs = [run("w0.1", 10), run("w1.1", 16, attempt=2)]
    long_stop = Happening("SIGSTOP 4.0 s", 10.5, 14.5, "w0.1", loss=True)
    short_stop = Happening("SIGSTOP 0.5 s", 10.5, 11, "w0.1", loss=False)
    assert [r.cause for r in judge(done(), runs, [long_stop]).reruns] == ["SIGSTOP"]
    unexplained = judge(done(), runs, [short_stop]).unexplained
    assert len(unexplained) == 1 and unexplained[0].around == (short_stop,)


def test_a_planned_failure_explains_its_retry() -> None:
    runs = [run("w0.1", 10, fails=True), run("w0.1", 11, attempt=2)]
    retried = FinalTask(T, "complete", attempts=2, retries=1)
    assert [r.cause for r in judge(retried, runs, []).reruns] == ["planned failure"]


def test_a_planned_failure_without_a_retry_explains_nothing() -> None:
    # The failure was never recorded (its worker was requeued while alive): the rerun came
    # from the requeue, not from an automatic retry.
    runs = [run("w0.1", 10, fails=True), run("w1.1", 14, attempt=2)]
    assert len(judge(FinalTask(T, "complete", attempts=2), runs, []).unexplained) == 1


def test_a_death_is_preferred_to_a_retry_as_the_explanation() -> None:
    kill = Happening("SIGKILL", 10.5, 10.5, "w0.1", loss=True)
    runs = [
        run("w0.1", 10, fails=True),
        run("w1.1", 12, fails=True, attempt=2),
        run("w1.1", 13, fails=True, attempt=3),
    ]
    retried_once = FinalTask(T, "failed", attempts=3, retries=1)
    verdict = judge(retried_once, runs, [kill])
    assert [r.cause for r in verdict.reruns] == ["SIGKILL", "planned failure"]


def test_executions_are_judged_in_the_order_they_were_begun() -> None:
    # w0.1 began attempt 1 and was stopped before it called the task; presumed dead, its task
    # went to w1.1 (attempt 2); resumed, w0.1 ran attempt 1 after w1.1 had started attempt 2.
    stop = Happening("SIGSTOP 4.5 s", 10, 14.5, "w0.1", loss=True)
    runs = [run("w1.1", 14, attempt=2), run("w0.1", 14.6, attempt=1)]
    verdict = judge(done(attempts=2), runs, [stop])
    assert [e.attempt for e in verdict.executions] == [1, 2]
    assert [r.cause for r in verdict.reruns] == ["SIGSTOP"]


def test_a_loss_just_before_the_first_line_counts_but_not_long_before() -> None:
    # Between the begin and the task's first line: at most BEGIN_LEAD_S.
    runs = [run("w0.1", 10), run("w1.1", 14, attempt=2)]
    just_before = Happening("SIGSTOP 4.0 s", 5.5, 9.5, "w0.1", loss=True)
    long_before = Happening("SIGSTOP 4.0 s", 3, 7, "w0.1", loss=True)
    assert [r.cause for r in judge(done(), runs, [just_before]).reruns] == ["SIGSTOP"]
    assert len(judge(done(), runs, [long_before]).unexplained) == 1


def test_a_redis_outage_explains_nothing_but_is_shown() -> None:
    outage = Happening("Redis down 4.0 s", 10.5, 14.5)
    requeued = Happening("requeued from worker soak-w0-1", 14.6, 14.6, task_id=T)
    other_task = Happening("requeued from worker soak-w3-1", 14.6, 14.6, task_id="soak:other")
    runs = [run("w0.1", 10), run("w1.1", 15, attempt=2)]
    summary = summarize({T: done(attempts=2)}, {T: runs}, [outage, requeued, other_task])
    assert len(summary.over_run) == 1
    assert summary.over_run[0].unexplained[0].around == (outage, requeued)
    assert summary.unexplained_around == {"Redis": 1}
    text = format_summary(summary, origin=10.0)
    assert "OVER-RUN:          1" in text and "RESULT: FAILED" in text
    assert "Redis down 4.0 s at +0.50s" in text and "soak-w3-1" not in text


def test_a_scheduler_outage_explains_nothing_but_is_shown() -> None:
    # The scheduler's restart is no worker's death: a rerun around it is over-run, labelled.
    outage = Happening("scheduler SIGKILL, down 2.0 s", 10.5, 12.5)
    runs = [run("w0.1", 10), run("w1.1", 13, attempt=2)]
    summary = summarize({T: done(attempts=2)}, {T: runs}, [outage])
    assert summary.over_run[0].unexplained[0].around == (outage,)
    assert summary.unexplained_around == {"scheduler": 1}


def test_a_task_not_finished_or_gone_is_lost() -> None:
    tasks = {
        "soak:a": FinalTask("soak:a", "complete"),
        "soak:b": FinalTask("soak:b", "running", worker="soak-w1-1"),
        "soak:c": FinalTask("soak:c", None),
        "soak:d": FinalTask("soak:d", "pending"),
        "soak:e": FinalTask("soak:e", "cancelled"),
    }
    summary = summarize(tasks, {}, [])
    assert sorted(v.task.id for v in summary.lost) == ["soak:b", "soak:c", "soak:d"]
    assert not summary.ok
    assert summary.never_ran == {
        "complete": 1,
        "running": 1,
        "None": 1,
        "pending": 1,
        "cancelled": 1,
    }


def test_counts_and_reasons() -> None:
    worker_lost = FinalTask(
        "soak:b",
        "failed",
        attempts=3,
        error_type="WorkerLost",
        error_message="worker heartbeat expired (worker soak-w1-2, attempt 3 of 3)",
    )
    planned = FinalTask("soak:c", "failed", error_type="devtools.soak.task.PlannedFailureError")
    tasks = {"soak:a": FinalTask("soak:a", "complete"), "soak:b": worker_lost, "soak:c": planned}
    runs = {"soak:b": [Execution("soak:b", "w1.2", 3, 5.0, False)]}
    summary = summarize(tasks, runs, [], run={"soak": "test"}, warnings=["counter off"])
    assert summary.ok
    assert (summary.enqueued, summary.completed, summary.cancelled) == (3, 1, 0)
    assert summary.failed == {"WorkerLost (worker heartbeat expired)": 1, "PlannedFailureError": 1}
    assert summary.begun_not_run == 2  # attempts 3, one execution seen
    assert json.loads(json.dumps(summary.as_dict()))["ok"] is True
    assert "warning: counter off" in format_summary(summary)
