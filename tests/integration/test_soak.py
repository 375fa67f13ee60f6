"""The soak (devtools/soak) in CI: a short run under every kind of chaos loses no task and runs
none more often than its workers died, and so does one on a Redis Cluster; a sabotaged run
shows that the soak would see it if one did. The long run is by hand: `./dev soak --tasks 10000
--duration 720` (docs/soak.md)."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.soak.__main__ import main
from devtools.soak.harness import CHAOS, Soak, SoakSettings
from devtools.soak.ledger import format_summary

SEED = 117
"""Its first 20 s of chaos draw every kind of action at least twice: Redis restarts at about
4.8 s (longer than the heartbeat TTL), 12 s and 17 s, the scheduler is SIGTERMed at 2.6 s,
15 s and 19 s and SIGKILLed at 5.8 s (Redis down: it comes back before Redis), 9.3 s and
13.5 s (the draws depend on the seed alone; their targets and timings do not)."""


def test_short_soak_loses_nothing_and_reruns_only_after_a_worker_died(tmp_path: Path) -> None:
    soak = Soak(
        SoakSettings(tasks=300, duration_s=20, workers=4, seed=SEED, workdir=tmp_path / "soak")
    )
    summary = soak.run()
    report = format_summary(summary, soak.origin)
    assert [kind for kind in CHAOS if not soak.done[kind]] == [], report
    # The scheduler alone promotes and reaps here: while it was down, scheduled tasks fell
    # due or dead workers' tasks waited, and the verdict below covers them.
    assert soak.waited_for_scheduler, report
    assert summary.enqueued == 300, report
    assert summary.executions >= summary.enqueued - summary.cancelled, report
    lost, over_run = len(summary.lost), len(summary.over_run)
    assert lost == 0, report
    assert over_run == 0, report


def test_short_cluster_soak_loses_nothing_and_no_process_ends_on_its_own(tmp_path: Path) -> None:
    # On a Redis Cluster of three masters, every kind of chaos, master restarts too: a
    # restarted master refuses commands (CLUSTERDOWN) for about 2 s, and a worker or
    # scheduler may start while the node its URL names is down; both are outages to wait
    # out. The verdict would be clean even if a process exited on meeting them (an exit is a
    # worker death, and explains its reruns), which is why this test also wants no process
    # to end on its own.
    soak = Soak(
        SoakSettings(
            tasks=300,
            duration_s=20,
            workers=4,
            seed=SEED,
            cluster=True,
            workdir=tmp_path / "soak",
        )
    )
    summary = soak.run()
    report = format_summary(summary, soak.origin)
    assert [kind for kind in CHAOS if not soak.done[kind]] == [], report
    assert soak.waited_for_scheduler, report
    assert summary.warnings == (), report
    assert summary.enqueued == 300, report
    assert summary.executions >= summary.enqueued - summary.cancelled, report
    assert len(summary.lost) == 0, report
    assert len(summary.over_run) == 0, report


def test_soak_reports_a_task_run_again_while_its_worker_lived(tmp_path: Path) -> None:
    # No chaos; instead the running task of a live worker is requeued every second: exactly
    # what a reaper that takes a live worker for dead does.
    argv = ["--tasks", "60", "--duration", "6", "--chaos", "", "--seed", "3"]
    argv += ["--task-sleep-max", "1", "--requeue-live-every", "1", "--workdir", str(tmp_path)]
    assert main(argv) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["lost"] == []
    assert report["over_run"], report
    # Each unexplained rerun is pinned on the sabotage; when a planned failure's retry and a
    # sabotage hit one task within a second, the ledger may attribute that rerun to the
    # execution after the one sabotaged and find nothing around it ("nothing known"), but
    # never a worker death or an outage, which did not happen here.
    assert "sabotage" in report["unexplained_around"], report
    assert set(report["unexplained_around"]) <= {"sabotage", "nothing known"}, report
