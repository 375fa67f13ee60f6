"""The test run itself: started with SIGINT ignored (as a shell starts a background job),
it still starts its children with SIGINT at its default, so tests that stop a child with
SIGINT (`info --watch`, a worker) work the same in the background."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"


def test_children_of_the_test_run_can_be_stopped_with_sigint() -> None:
    child = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert child.stdout == "True\n", "a child of this test run ignores SIGINT"


def test_a_test_run_started_with_sigint_ignored_starts_children_with_sigint() -> None:
    probe = test_children_of_the_test_run_can_be_stopped_with_sigint.__name__
    this = f"{Path(__file__).relative_to(REPO)}::{probe}"
    background = (
        "import os, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `&` does to a job\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'pytest', '-q', '-p',"
        f" 'no:cacheprovider', {this!r}])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", background],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
