"""`blueque-operator`'s options (the handlers behind them come in a later slice)."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from blueque_operator.cli import DEFAULT_METRICS_PORT, OperatorOptions, parse_options


def test_repeatable_namespaces() -> None:
    options = parse_options(["-n", "jobs", "--namespace", "batch", "-n", "jobs"])
    assert options == OperatorOptions(namespaces=("jobs", "batch"), metrics_port=8000)
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


def test_the_command_says_it_is_not_implemented_yet() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blueque_operator", "-n", "jobs"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "would watch jobs" in result.stderr
    assert "not implemented yet" in result.stderr


def test_the_command_reports_usage_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "blueque_operator"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "--all-namespaces" in result.stderr
    assert "Traceback" not in result.stderr
