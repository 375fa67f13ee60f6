"""devtools.processes: processes are stopped by their recorded pid, and only while it is theirs."""

from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path

import pytest

from devtools.errors import WaitTimeoutError
from devtools.processes import Process, pid_running, stop_all, wait_until

REPO = Path(__file__).resolve().parents[2]

# Ignores SIGTERM, forks a child that stays in its process group, prints the child's pid.
STUBBORN_PARENT = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def python(tmp_path: Path, code: str) -> Process:
    return Process.start("python", [sys.executable, "-c", code], log_file=tmp_path / "out.log")


def printed_pid(process: Process) -> int:
    return int(wait_until(lambda: process.output().strip(), what="a pid printed"))


def test_stop_kills_the_whole_group_after_the_grace_when_sigterm_is_ignored(
    tmp_path: Path,
) -> None:
    parent = python(tmp_path, STUBBORN_PARENT)
    child = printed_pid(parent)
    assert pid_running(child)

    assert parent.stop(grace_s=0.3) == -signal.SIGKILL
    wait_until(lambda: not pid_running(child), 5, what="the child in the group to die")
    assert not parent.alive()


def test_sigterm_ends_a_process_that_honours_it_within_the_grace(tmp_path: Path) -> None:
    sleeper = Process.start("sleep", ["sleep", "60"], log_file=tmp_path / "sleep.log")
    assert sleeper.alive() and sleeper.poll() is None
    assert sleeper.stop(grace_s=10) == -signal.SIGTERM


def test_a_record_whose_pid_now_runs_something_else_is_never_signalled(tmp_path: Path) -> None:
    sleeper = Process.start("sleep", ["sleep", "60"], log_file=tmp_path / "sleep.log")
    try:
        # The same pid, but started at another moment: what a reused pid looks like.
        stale = dataclasses.replace(sleeper, started_tick=sleeper.started_tick - 1, _popen=None)
        other_program = dataclasses.replace(sleeper, executable="/usr/bin/true", _popen=None)
        for record in (stale, other_program):
            assert not record.alive()
            assert record.stop(grace_s=0) is None
            record.kill()
        assert sleeper.alive() and sleeper.poll() is None
    finally:
        sleeper.kill()


def test_another_process_stops_it_from_its_json_record(tmp_path: Path) -> None:
    sleeper = Process.start("sleep", ["sleep", "60"], log_file=tmp_path / "sleep.log")
    found = Process.from_json(sleeper.to_json())
    assert found == sleeper and found.alive()
    assert found.stop() is None  # not its child: no exit status
    assert sleeper.wait_exit(5) == -signal.SIGTERM


def test_stop_all_shares_one_grace_period(tmp_path: Path) -> None:
    stubborn = [python(tmp_path / str(i), STUBBORN_PARENT) for i in range(3)]
    for process in stubborn:
        printed_pid(process)  # SIGTERM is ignored from here on
    stop_all(stubborn, grace_s=0.5)
    assert [p.poll() for p in stubborn] == [-signal.SIGKILL] * 3


def test_a_process_owned_by_its_starter_dies_with_it(tmp_path: Path) -> None:
    # A starter that starts a sleeper through devtools, prints its pid, then waits.
    starter_code = (
        "import sys, time; from pathlib import Path; from devtools.processes import Process; "
        f"p = Process.start('sleep', ['sleep', '60'], log_file=Path({str(tmp_path)!r}) / 's.log'); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    starter = Process.start(
        "starter", [sys.executable, "-c", starter_code], log_file=tmp_path / "starter.log", cwd=REPO
    )
    sleeper = printed_pid(starter)
    assert pid_running(sleeper)
    starter.kill()  # SIGKILL: no clean-up code of the starter runs
    wait_until(lambda: not pid_running(sleeper), 5, what="the sleeper to die with its starter")


def test_wait_until_says_what_it_waited_for_and_what_it_saw() -> None:
    seen = iter(range(1000))
    with pytest.raises(WaitTimeoutError, match="the answer; last 0"):
        wait_until(lambda: None, 0.05, what=lambda: f"the answer; last {next(seen)}")
    assert wait_until(lambda: 42) == 42
