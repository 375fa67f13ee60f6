"""`blueque-operator`'s options."""

from __future__ import annotations

import subprocess
import sys
import time

import click
import pytest

from blueque_operator.cli import parse_options
from blueque_operator.options import DEFAULT_METRICS_PORT


def test_repeatable_namespaces() -> None:
    options = parse_options(["-n", "jobs", "--namespace", "batch", "-n", "jobs"])
    assert options.namespaces == ("jobs", "batch")
    assert options.metrics_port == 8000
    assert not options.all_namespaces


def test_all_namespaces_and_metrics_port() -> None:
    options = parse_options(["--all-namespaces", "--metrics-port", "9100"])
    assert options.all_namespaces
    assert options.metrics_port == 9100
    assert parse_options(["-A"]).metrics_port == DEFAULT_METRICS_PORT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], r"give --namespace NS \(repeatable\) or --all-namespaces"),
        (["-A", "-n", "jobs"], "not both"),
        (["-n", "Jobs_1"], "not a Kubernetes namespace name"),
        (["-A", "--metrics-port", "70000"], "70000"),
    ],
)
def test_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        parse_options(args)


def test_the_lease_lives_in_the_pods_namespace_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert parse_options(["-A"]).lease_namespace == "default"
    monkeypatch.setenv("POD_NAMESPACE", "blueque-system")
    options = parse_options(["-A", "--lease-name", "ops"])
    assert (options.lease_namespace, options.lease_name) == ("blueque-system", "ops")
    assert parse_options(["-A", "--lease-namespace", "mine"]).lease_namespace == "mine"
    with pytest.raises(click.UsageError, match="not a Kubernetes namespace name"):
        parse_options(["-A", "--lease-namespace", "Not_One"])


def test_the_command_reports_usage_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blueque_operator"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--all-namespaces" in result.stderr
    assert "Traceback" not in result.stderr


# serve() stands in: it leaves a call in a worker thread that never returns, as a Kubernetes call
# to an API server that answers nothing does (the client is synchronous), then returns or fails.
_RUN_WITH_A_CALL_LEFT = """
import asyncio, contextlib, sys, threading
from blueque_operator import app, cli
from blueque_operator.options import OperatorOptions

async def serve(options, stop=None):
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(threading.Event().wait), 0.1)
    if sys.argv[1] == "fail":
        raise RuntimeError("broken")

app.serve = serve
cli.run(OperatorOptions(namespaces=("jobs",), metrics_port=0))
"""


@pytest.mark.parametrize(
    ("ending", "code", "said"), [("stop", 0, "stopped"), ("fail", 1, "broken")]
)
def test_the_process_ends_without_waiting_for_calls_left_in_threads(
    ending: str, code: int, said: str
) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _RUN_WITH_A_CALL_LEFT, ending],
        capture_output=True,
        text=True,
        timeout=60,  # without the fix: for ever (Python joins the thread at exit)
    )
    print(f"ended in {time.monotonic() - started:.2f} s")
    assert (result.returncode, said in result.stderr) == (code, True), result.stderr
